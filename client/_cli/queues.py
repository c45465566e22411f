"""``branchwork queues ls/pause/resume/limit/purge``: see and steer queues."""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text

from .common import CliState, api_errors, pass_state, table

# The server checks the name (a bad one is a 422 with the rule, printed as one line).
queue_argument = click.argument("name")


@click.group("queues")
def queues() -> None:
    """List queues; pause, resume, limit or purge one."""


def queue_table(rows: list[dict[str, Any]], rates: dict[str, Any] | None = None) -> Any:
    columns = ["QUEUE", "STATE", "LIMIT", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED",
               "CANCELLED"]
    if rates is not None:
        columns.append("DONE/MIN")
    t = table(*columns)
    for q in rows:
        row = [q["name"], Text("paused", style="yellow") if q["paused"] else "active",
               "-" if q["concurrency_limit"] is None else str(q["concurrency_limit"]),
               str(q["queued"]), str(q["running"]), str(q["succeeded"]), str(q["failed"]),
               str(q["cancelled"])]
        if rates is not None:
            row.append(per_minute(rates.get(q["name"])))
        t.add_row(*row)
    return t if rows else Text("no queues yet (a queue appears when first used)", style="dim")


def per_minute(series: dict[str, list[int]] | None, minutes: int = 5) -> str:
    """Tasks finished per minute over the last ``minutes`` (from /v1/queues/throughput)."""
    if not series:
        return "0"
    done = sum(series["succeeded"][-minutes:]) + sum(series["failed"][-minutes:])
    return f"{done / minutes:.1f}"


@queues.command("ls")
@pass_state
def ls(state: CliState) -> None:
    """Queues with their tasks by status."""
    with api_errors():
        rows = state.client().list_queues()
    state.emit(rows, lambda: queue_table(rows))


def _configure(state: CliState, name: str, message: str, **change: Any) -> None:
    with api_errors():
        row = state.client().configure_queue(name, **change)
    limit = row["concurrency_limit"]
    state.emit(row, lambda: f"queue {row['name']}: {message} (now "
               f"{'paused' if row['paused'] else 'active'}, "
               f"limit {'none' if limit is None else limit})")


@queues.command("pause")
@queue_argument
@pass_state
def pause(state: CliState, name: str) -> None:
    """Stop handing out the queue's tasks (running ones go on)."""
    _configure(state, name, "paused", paused=True)


@queues.command("resume")
@queue_argument
@pass_state
def resume(state: CliState, name: str) -> None:
    """Hand out the queue's tasks again."""
    _configure(state, name, "resumed", paused=False)


@queues.command("limit")
@queue_argument
@click.argument("limit", metavar="N|none")
@pass_state
def limit(state: CliState, name: str, limit: str) -> None:
    """Run at most N of the queue's tasks at once, over all workers ('none': no limit)."""
    if limit.lower() == "none":
        value: int | None = None
    else:
        try:
            value = int(limit)
        except ValueError:
            raise click.BadParameter("a whole number >= 0, or 'none'",
                                     param_hint="N") from None
        if value < 0:
            raise click.BadParameter("a whole number >= 0, or 'none'", param_hint="N")
    _configure(state, name, "limit set" if value is not None else "limit removed",
               concurrency_limit=value)


@queues.command("purge")
@queue_argument
@click.option("-y", "--yes", is_flag=True, help="do not ask for confirmation")
@pass_state
def purge(state: CliState, name: str, yes: bool) -> None:
    """Cancel every queued task of the queue (running ones are left alone)."""
    if not yes and not state.as_json:
        click.confirm(f"cancel every queued task of queue {name!r}?", abort=True)
    with api_errors():
        out = state.client().purge_queue(name)
    state.emit(out, lambda: f"queue {out['queue']}: {out['purged']} queued task(s) cancelled")

"""``branchwork approvals list/approve/reject``: the people-in-the-loop step from a terminal."""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text

from .common import CliState, ago, api_errors, pass_state, table


@click.group("approvals")
def approvals() -> None:
    """Tasks waiting for a person: list them, approve or reject one."""


def _clip(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def approvals_table(rows: list[dict[str, Any]]) -> Any:
    t = table("TASK", "NAME", "QUEUE", "WAITING", "QUESTION")
    for r in rows:
        t.add_row(str(r["task_id"]), r["task_name"], r["queue"], ago(r.get("since")),
                  _clip(str(r.get("question") or ""), 80))
    return t if rows else Text("no approvals pending", style="dim")


@approvals.command("list")
@click.option("-q", "--queue", help="only tasks of this queue")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="most approvals shown, newest first")
@pass_state
def list_(state: CliState, queue: str | None, limit: int) -> None:
    """Tasks waiting for an approval, newest first, with their questions."""
    with api_errors():
        page = state.client().list_approvals(queue=queue, limit=limit)
    state.emit(page["approvals"], lambda: approvals_table(page["approvals"]))


def _decide(state: CliState, task_id: int, approved: bool, comment: str | None) -> None:
    client = state.client()
    with api_errors():
        out = (client.approve if approved else client.reject)(task_id, comment)
    state.emit(out, lambda: Text(f"task {task_id}: {out['decision']} by {out['by']}"
                                 + (f" ({out['comment']})" if out.get("comment") else "")
                                 + "; it resumes"))


@approvals.command("approve")
@click.argument("task_id", type=click.IntRange(1))
@click.option("-m", "--comment", help="why, recorded with the decision")
@pass_state
def approve(state: CliState, task_id: int, comment: str | None) -> None:
    """Approve what TASK_ID waits for; the task resumes with the decision."""
    _decide(state, task_id, True, comment)


@approvals.command("reject")
@click.argument("task_id", type=click.IntRange(1))
@click.option("-m", "--comment", help="why, recorded with the decision")
@pass_state
def reject(state: CliState, task_id: int, comment: str | None) -> None:
    """Reject what TASK_ID waits for; the task resumes with the decision."""
    _decide(state, task_id, False, comment)

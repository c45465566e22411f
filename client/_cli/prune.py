"""``branchwork prune``: delete finished tasks and runs past their retention, now."""

from __future__ import annotations

import re
from typing import Any

import click

from .common import CliState, api_errors, pass_state

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class Duration(click.ParamType):
    """``30s``, ``10m``, ``2h``, ``7d``, ``1w`` (or plain seconds) as seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", str(value))
        if not match:
            self.fail(f"{value!r} is no duration (like 30s, 10m, 2h, 7d, 1w)", param, ctx)
        return float(match.group(1)) * UNITS[match.group(2) or "s"]


DURATION = Duration()


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def summary(out: dict[str, Any]) -> str:
    """One line saying what a prune did (or would do)."""
    verb = "would delete" if out["dry_run"] else "deleted"
    return (f"{verb} {_plural(out['tasks'], 'task')}, {_plural(out['runs'], 'workflow run')} "
            f"and {_plural(out['kv'], 'expired KV entry', 'expired KV entries')}")


@click.command("prune")
@click.option("--older-than", "older_than", type=DURATION,
              help="delete what finished more than this long ago (30s, 10m, 2h, 7d), whatever "
              "the retention settings say; default: each queue's retention")
@click.option("-q", "--queue", help="only this queue's tasks and runs")
@click.option("--dry-run", is_flag=True, help="count what would be deleted; delete nothing")
@pass_state
def prune(state: CliState, older_than: float | None, queue: str | None, dry_run: bool) -> None:
    """Delete finished tasks (with history and logs), finished workflow runs and expired KV
    entries past their retention."""
    with api_errors():
        out = state.client().prune(older_than, queue=queue, dry_run=dry_run)
    state.emit(out, lambda: summary(out))

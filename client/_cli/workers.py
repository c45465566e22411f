"""``branchwork workers ls``: who is serving which queues."""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text

from .common import CliState, ago, api_errors, pass_state, table


@click.group("workers")
def workers() -> None:
    """See the workers."""


def worker_table(rows: list[dict[str, Any]]) -> Any:
    t = table("WORKER", "STATE", "QUEUES", "RUNNING", "TASKS", "LAST SEEN", "STARTED")
    for w in rows:
        state = (Text("online", style="green") if w.get("online")
                 else "stopped" if w.get("stopped_at") else Text("offline", style="red"))
        names = w.get("task_names") or []
        t.add_row(w["id"], state, ", ".join(w.get("queues") or []), str(w.get("running", 0)),
                  ", ".join(names[:4]) + (f" (+{len(names) - 4})" if len(names) > 4 else ""),
                  ago(w.get("last_seen_at")), ago(w.get("started_at")))
    return t if rows else Text("no workers have registered", style="dim")


@workers.command("ls")
@click.option("--all", "show_all", is_flag=True, help="include stopped and offline workers")
@pass_state
def ls(state: CliState, show_all: bool) -> None:
    """Workers, online first."""
    with api_errors():
        rows = state.client().list_workers()
    if not show_all:
        rows = [w for w in rows if w.get("online")]
    state.emit(rows, lambda: worker_table(rows))

"""``branchwork status``: the whole service on one screen (what ``rq info`` and
``celery inspect`` give): queues with depths and rates, workers, recent failures."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Group
from rich.text import Text

from .common import CliState, api_errors, pass_state
from .queues import queue_table
from .tasks import task_table
from .workers import worker_table


@click.command("status")
@click.option("--failures", type=click.IntRange(0, 100), default=5, show_default=True,
              help="how many recent failures to show")
@pass_state
def status(state: CliState, failures: int) -> None:
    """Queues (depths, rates), online workers and recent failures."""
    client = state.client()
    with api_errors():
        health = client.health()
        queues = client.list_queues()
        rates = client.queue_throughput()["queues"]
        workers = [w for w in client.list_workers() if w.get("online")]
        failed = (client.list_tasks(status="failed", limit=failures)["tasks"]
                  if failures else [])
    data: dict[str, Any] = {"url": client.url, "health": health, "queues": queues,
                            "throughput": rates, "workers": workers, "recent_failures": failed}

    def render() -> Any:
        head = Text.assemble(("server ", "bold"), client.url, "  ",
                             ("healthy", "green") if health.get("status") == "ok"
                             else (str(health), "red"))
        return Group(head, Text(""), Text("queues", style="bold"), queue_table(queues, rates),
                     Text(""), Text(f"workers online: {len(workers)}", style="bold"),
                     worker_table(workers), Text(""),
                     Text("recent failures", style="bold"), task_table(failed))

    state.emit(data, render)

"""``branchwork runs rerun``: act on workflow runs."""

from __future__ import annotations

import click

from .common import CliState, api_errors, pass_state


@click.group("runs")
def runs() -> None:
    """Act on workflow runs."""


@runs.command("rerun")
@click.argument("run_id", type=click.IntRange(1))
@click.option("--from", "from_node", required=True, metavar="NODE",
              help="the node to run again, with everything downstream of it")
@pass_state
def rerun(state: CliState, run_id: int, from_node: str) -> None:
    """Re-run a finished workflow run from a node: that node and everything downstream run
    again, upstream results are kept."""
    with api_errors():
        out = state.client().rerun_workflow_run(run_id, from_node)
    state.emit(out, lambda: f"run {out['run_id']} running again from {out['from_node']}: "
               f"{', '.join(out['nodes'])} (queued now: {', '.join(out['queued'])})")

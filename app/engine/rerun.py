"""Re-run a finished workflow run from one of its nodes (docs/workflows.md, "Re-running a run").

The chosen node and everything downstream of it run again; upstream nodes keep their results
(their tasks are not sent again, and the chosen node's inputs are what they produced). Nodes
that the run's failure or cancellation stopped elsewhere (cancelled or failed, and what was
skipped below them) run again too, so the re-run can finish the way a first run would.
Dynamic nodes below the chosen node are dropped: the directives that made them run again with
it and make them anew. Everything happens under the run's row lock, in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..store import workflow_nodes as node_store
from ..store import workflows as run_store
from .advance import RunAdvance, descendants
from .errors import Conflict, NotFound
from .tx import transaction

if TYPE_CHECKING:
    from ..state import ServerState
    from ..store.workflow_nodes import NodeState

STOPPED = ("cancelled", "failed")


@dataclass(frozen=True, slots=True)
class Rerun:
    run_id: int
    from_node: str
    nodes: list[str]  # every node that runs again, in name order
    queued: list[str]  # those queued now (the others wait for their inputs)


def plan(nodes: dict[str, NodeState], start: str) -> tuple[set[str], set[str]]:
    """(nodes that run again, dynamic nodes to drop) for a re-run from ``start``."""
    below = descendants(nodes, start)
    drop = {n for n in below if nodes[n]["dynamic"]}
    again = {start} | (below - drop)
    for name, node in nodes.items():
        if node["status"] in STOPPED and name not in again and name not in drop:
            again.add(name)
            again |= {d for d in descendants(nodes, name)
                      if nodes[d]["status"] != "succeeded" and d not in drop}
    return again, drop


async def rerun_from(state: ServerState, run_id: int, from_node: str) -> Rerun:
    """Run ``from_node`` of finished run ``run_id`` and everything downstream again."""
    async with transaction(state.pool) as cur:
        run = await run_store.lock_run(cur, run_id)
        if run is None:
            raise NotFound.of("workflow run", run_id)
        if run["status"] == "running":
            raise Conflict(f"workflow run {run_id} is still running; cancel it first or wait",
                           {"status": run["status"]}, code="run_running")
        nodes = await node_store.states(cur, run_id)
        if from_node not in nodes:
            raise NotFound(f"workflow run {run_id} has no node {from_node!r}",
                           {"run_id": run_id, "node": from_node, "nodes": sorted(nodes)})
        waiting = [u for u in nodes[from_node]["upstream"]
                   if nodes[u]["status"] != "succeeded"]
        if waiting:
            raise Conflict(f"node {from_node!r} needs {', '.join(sorted(waiting))} to have "
                           "succeeded; re-run from there", {"upstream": sorted(waiting)},
                           code="upstream_not_succeeded")
        again, drop = plan(nodes, from_node)
        ready = sorted(n for n in again if all(
            u not in again and u not in drop and nodes[u]["status"] == "succeeded"
            for u in nodes[n]["upstream"]))
        await run_store.reopen_run(cur, run_id)
        await node_store.delete_nodes(cur, run_id, drop)
        await node_store.reset_for_rerun(cur, run_id, again)
        await RunAdvance(cur, state.metrics).queue_nodes(
            dict(run), [(n, dict(nodes[n]["task"])) for n in ready])
    return Rerun(run_id=run_id, from_node=from_node, nodes=sorted(again), queued=ready)

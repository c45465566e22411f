"""Workflow runs: start one, cancel one, and the two background duties of the advancer
(runs past their timeout; node tasks that finished outside the report path).

A run start inserts the run, its nodes and the entry nodes' tasks in one transaction, so a
run is never seen half created; ``create_run`` works in the caller's transaction (a cron
fire), ``start_run`` owns one (the API).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg import AsyncConnection, AsyncCursor

from ..store import queues as queue_store
from ..store import workflow_nodes as node_store
from ..store import workflows as store
from .advance import RunAdvance
from .errors import Conflict, NotFound
from .payload import check_size
from .tx import transaction
from .workflows import check_args, task_spec

if TYPE_CHECKING:
    from ..metrics import Metrics
    from ..state import ServerState


def node_spec(node: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """What a node's task is sent with: node config over the run's queue and priority."""
    spec = task_spec(node, node["task"], node.get("queue") or run["queue"])
    if node.get("priority") is None:
        spec["priority"] = run["priority"]
    if "args" in node and node["args"] is not None:
        spec["args"] = node["args"]
    return spec


async def create_run(cur: AsyncCursor, name: str, args: Any, *, queue: str | None = None,
                     priority: int | None = None, timeout_seconds: float | None = None,
                     idempotency_key: str | None = None,
                     metrics: Metrics | None = None) -> tuple[int, bool]:
    """Insert the run and its nodes and queue the entry nodes, in the caller's transaction.

    Returns (run id, duplicate): a start with the idempotency key of an existing run of this
    workflow answers that run's id."""
    wf = await store.get_definition(cur.connection, name)
    if wf is None:
        raise NotFound.of("workflow", name)
    check_args(name, wf["args_schema"], args)
    run_queue = queue or wf["queue"]
    run_priority = priority if priority is not None else wf["priority"]
    timeout = timeout_seconds if timeout_seconds is not None else wf["timeout_seconds"]
    run_id = await store.insert_run(cur, name, args, wf["definition"], run_queue, run_priority,
                                    timeout, idempotency_key)
    if run_id is None:
        assert idempotency_key is not None
        existing = await store.run_by_key(cur, name, idempotency_key)
        assert existing is not None
        return existing, True
    run = {"id": run_id, "queue": run_queue, "priority": run_priority, "args": args}
    definition = wf["definition"]
    ups: dict[str, list[str]] = {n: [] for n in definition["nodes"]}
    for src, dst in definition["edges"]:
        ups[dst].append(src)
    nodes = [{"node": n, "task": node_spec(cfg, run), "upstream": ups[n],
              "max_cycles": cfg.get("max_cycles") or 1}
             for n, cfg in definition["nodes"].items()]
    await queue_store.ensure(cur, [n["task"]["queue"] for n in nodes])
    await node_store.insert_nodes(cur, run_id, nodes)
    await RunAdvance(cur, metrics).queue_nodes(
        run, [(n["node"], n["task"]) for n in nodes if not n["upstream"]])
    return run_id, False


async def start_run(state: ServerState, name: str, args: Any, *,
                    queue: str | None = None, priority: int | None = None,
                    timeout_seconds: float | None = None,
                    idempotency_key: str | None = None) -> tuple[int, bool]:
    check_size(args, state.settings.max_payload_bytes, "args of the run")
    async with transaction(state.pool) as cur:
        return await create_run(cur, name, args, queue=queue, priority=priority,
                                timeout_seconds=timeout_seconds,
                                idempotency_key=idempotency_key, metrics=state.metrics)


async def cancel_run(state: ServerState, run_id: int, reason: str,
                     error: Any = None) -> dict[str, Any]:
    """Cancel a running run: its queued tasks now, its running ones asked to stop."""
    async with transaction(state.pool) as cur:
        run = await store.lock_run(cur, run_id)
        if run is None:
            raise NotFound.of("workflow run", run_id)
        if run["status"] != "running":
            raise Conflict(f"workflow run {run_id} is already {run['status']}",
                           {"status": run["status"]}, code="run_finished")
        await RunAdvance(cur, state.metrics).finish_run(run_id, "cancelled", reason=reason,
                                                        error=error)
    return {"id": run_id, "status": "cancelled", "reason": reason}


async def reconcile(conn: AsyncConnection, limit: int = 500,
                    metrics: Metrics | None = None) -> int:
    """Apply node tasks that finished outside the report path (lease sweep, task cancel),
    one transaction per run; a run another transaction holds is left for the next round."""
    rows = await node_store.finished_unapplied(conn, limit)
    await conn.commit()  # each run below is then its own transaction
    by_run: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_run.setdefault(row["run_id"], []).append(row)
    for run_id, items in sorted(by_run.items()):
        async with conn.transaction(), conn.cursor() as cur:
            if await store.try_lock_run(cur, run_id):
                await RunAdvance(cur, metrics).tasks_finished(run_id, items)
    return len(rows)


async def expire_runs(conn: AsyncConnection, limit: int = 100) -> list[int]:
    """Cancel runs past their deadline (the workflow timeout)."""
    async with conn.transaction(), conn.cursor() as cur:
        rows = await store.lock_expired_runs(cur, limit)
        advance = RunAdvance(cur)
        for row in rows:
            await advance.finish_run(
                row["id"], "cancelled", reason="timeout",
                error={"type": "WorkflowTimeout",
                       "message": f"the run passed its timeout of {row['timeout_seconds']} "
                                  "seconds"})
    return [r["id"] for r in rows]

"""Workflow handlers: the ``on_failure`` or ``on_success`` task of a finished run.

Every way a run ends (a node failed or was cancelled, the run's timeout, a cancel, the last
node succeeded, a ``terminate`` directive) goes through :func:`queue_handler`, in the
transaction that finishes the run and under the run's row lock. The handler's row in
``workflow_handlers`` has the run as its primary key, so even two replicas finishing the
same run (which the row lock already prevents) could queue its handler only once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg import AsyncCursor

from ..store import handlers as store
from ..store import queues as queue_store
from .send import send_in
from .workflows import task_spec

if TYPE_CHECKING:
    from ..metrics import Metrics

KINDS = ("on_failure", "on_success")


def outcome(run: dict[str, Any]) -> dict[str, Any]:
    """The handler task's args: which run, how it ended and why (for a failed node: the
    node, its task id and its error), and the run's own args."""
    return {"run_id": run["id"], "workflow": run["workflow_name"], "status": run["status"],
            "reason": run["reason"], "error": run["error"], "args": run["args"]}


async def queue_handler(cur: AsyncCursor, run_id: int,
                        metrics: Metrics | None = None) -> int | None:
    """Queue the finished run's handler, if its definition declares one for how it ended;
    the handler task's id, or None."""
    run = await store.finished_run(cur, run_id)
    if run is None or run["status"] == "running":
        return None
    kind = "on_success" if run["status"] == "succeeded" else "on_failure"
    spec = (run["handlers"] or {}).get(kind)
    if spec is None or not await store.claim(cur, run_id, kind):
        return None
    item = task_spec(spec, spec["task"], spec.get("queue") or run["queue"])
    if spec.get("priority") is None:
        item["priority"] = run["priority"]
    item["args"] = outcome(run)
    item["idempotency_key"] = f"workflow-handler:{run_id}"
    await queue_store.ensure(cur, [item["queue"]])
    out = (await send_in(cur, [item], metrics))[0]
    await store.set_task(cur, run_id, out.id)
    return out.id

"""Directives: a running node task changes its run's course (next task, next iteration,
terminate, cancel), fenced by its lease token.

All but ``cancel`` are recorded on the node and applied when the attempt succeeds
(``advance.RunAdvance``): an attempt that fails or is retried leaves no trace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..store import queues as queue_store
from ..store import workflow_nodes as node_store
from ..store import workflows as store
from .advance import RunAdvance
from .errors import Conflict, NotFound, StaleLease
from .payload import check_size
from .tx import transaction

if TYPE_CHECKING:
    from ..state import ServerState


def _merge(current: dict[str, Any], action: str, body: dict[str, Any],
           node: dict[str, Any]) -> bool:
    """Add the directive to the attempt's ``current`` one; False when it is refused (a
    next iteration past ``max_cycles``)."""
    if action == "next_task" and not body.get("goto"):
        current["extra"].append({"spec": body["spec"], "node": body.get("node")})
        return True
    if current["course"] is not None:
        raise Conflict(f"this attempt already asked for {current['course']['action']}",
                       {"course": current["course"]["action"]}, code="course_already_set")
    course: dict[str, Any] = {"action": "goto" if action == "next_task" else action}
    for key in ("spec", "node", "reason"):
        if body.get(key) is not None:
            course[key] = body[key]
    if action == "next_iteration":
        if "args" in body:
            course["args"] = body["args"]
        if node["runs"] >= node["max_cycles"]:
            return False
    current["course"] = course
    return True


async def record(state: ServerState, run_id: int, task_id: int, lease_token: str,
                 body: dict[str, Any]) -> dict[str, Any]:
    """Record (or, for ``cancel``, apply) a change of course asked by a running node task.

    ``body``: ``action``, ``goto``, ``node``, ``reason``, and ``spec`` / ``args`` when given."""
    limit = state.settings.max_payload_bytes
    if "args" in body:
        check_size(body["args"], limit, "args")
    if "spec" in body:
        check_size(body["spec"].get("args"), limit, "task args")
    async with transaction(state.pool) as cur:
        exists, task_run = await store.run_of_task(cur, task_id)
        if exists and task_run != run_id:
            raise Conflict(f"task {task_id} is not part of run {run_id}", code="not_in_run")
        if not exists:
            raise NotFound.of("task", task_id)
        assert task_run is not None
        run = await store.lock_run(cur, task_run)
        if run is None:
            raise NotFound.of("workflow run", task_run)
        node = await node_store.directive_state(cur, task_id, lease_token)
        if node is None:
            raise StaleLease(f"task {task_id} is not running under this lease token; the "
                             "directive was not recorded")
        if run["status"] != "running":
            raise Conflict(f"workflow run {task_run} is already {run['status']}",
                           {"status": run["status"]}, code="run_finished")
        if body["action"] == "cancel":
            await RunAdvance(cur).finish_run(
                task_run, "cancelled", reason=body.get("reason"),
                error={"type": "WorkflowCancelled", "node": node["node"], "task_id": task_id,
                       "message": body.get("reason") or ""})
            return {"run_id": task_run, "accepted": True, "run_status": "cancelled"}
        same = (node["directive_task_id"] == task_id
                and node["directive_attempt"] == node["attempts"])
        previous = node["directive"] if same and node["directive"] else {}
        current = {"extra": list(previous.get("extra", [])), "course": previous.get("course")}
        accepted = _merge(current, body["action"], body, node)
        if accepted:
            course = current["course"]
            await queue_store.ensure(cur, [x["spec"]["queue"] for x in current["extra"]] + (
                [course["spec"]["queue"]] if course and "spec" in course else []))
            await node_store.save_directive(cur, task_run, node["node"], current, task_id,
                                            node["attempts"])
        return {"run_id": task_run, "accepted": accepted, "runs": node["runs"],
                "max_cycles": node["max_cycles"]}

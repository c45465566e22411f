"""Advancing workflow runs: the server, not the worker, decides what runs next.

Every entry point holds the run's row lock (``workflows.lock_run`` / ``lock_runs_of_tasks``)
before it touches the run's nodes or tasks, so completions of parallel nodes are applied one
after another and a join node is queued exactly once. The work per call is bounded by the
size of the run (its ``workflow_nodes`` rows, read by primary key), never by the task table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from psycopg import AsyncConnection, AsyncCursor

from ..errors import ApiError
from ..jsonutil import dumps
from ..metrics import count_server_sent
from . import tasks as task_store
from .workflows import ensure_queues, lock_run

TERMINAL_NODE = ("succeeded", "failed", "skipped", "cancelled")


async def queue_nodes(cur: AsyncCursor, run: dict[str, Any],
                      nodes: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Send one task per node (its spec, the run's args unless the spec has its own)."""
    if not nodes:
        return
    items = []
    for node, spec in nodes:
        item = {k: v for k, v in spec.items() if k != "args"}
        item["args"] = spec["args"] if "args" in spec else run["args"]
        item.update(workflow_run_id=run["id"], workflow_node=node)
        items.append(item)
    outs = await task_store.send(cur.connection, items)
    count_server_sent(items, outs)
    await cur.execute(
        """UPDATE workflow_nodes n SET status = 'queued', task_id = x.task_id,
               task = x.task, runs = n.runs + 1, directive = NULL, directive_task_id = NULL,
               directive_attempt = NULL, updated_at = now()
           FROM jsonb_to_recordset(%(rows)s::jsonb) AS x(node text, task_id bigint, task jsonb)
           WHERE n.run_id = %(run)s AND n.node = x.node""",
        {"run": run["id"], "rows": dumps([
            {"node": node, "task_id": out.id, "task": spec}
            for (node, spec), out in zip(nodes, outs, strict=True)])})


async def _nodes(cur: AsyncCursor, run_id: int) -> dict[str, dict[str, Any]]:
    await cur.execute(
        "SELECT node, status, task, upstream, dynamic, max_cycles, runs, task_id, directive, "
        "directive_task_id, directive_attempt FROM workflow_nodes WHERE run_id = %s", (run_id,))
    return {r["node"]: r for r in await cur.fetchall()}


async def _set_status(cur: AsyncCursor, run_id: int, names: Iterable[str], status: str) -> None:
    names = sorted(set(names))
    if names:
        await cur.execute(
            "UPDATE workflow_nodes SET status = %s, updated_at = now() "
            "WHERE run_id = %s AND node = ANY(%s)", (status, run_id, names))


def _descendants(nodes: dict[str, dict[str, Any]], start: str) -> set[str]:
    down: dict[str, list[str]] = {}
    for name, node in nodes.items():
        for up in node["upstream"]:
            down.setdefault(up, []).append(name)
    seen: set[str] = set()
    stack = list(down.get(start, []))
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(down.get(name, []))
    return seen


async def _stop_run_tasks(cur: AsyncCursor, run_id: int, keep: int | None = None) -> None:
    """Cancel the run's queued tasks and ask its running ones to stop."""
    await cur.execute(
        "SELECT id FROM tasks WHERE workflow_run_id = %s AND status IN ('queued', 'running')",
        (run_id,))
    ids = [r["id"] for r in await cur.fetchall() if r["id"] != keep]
    if ids:
        await task_store.cancel(cur.connection, ids)


async def finish_run(cur: AsyncCursor, run_id: int, status: str, *, reason: str | None = None,
                     error: Any = None, keep_task: int | None = None) -> None:
    """End a run: pending and unfinished nodes are skipped or cancelled, its tasks stopped."""
    await cur.execute(
        "UPDATE workflow_runs SET status = %s, reason = %s, error = %s::jsonb, "
        "finished_at = now(), deadline_at = NULL WHERE id = %s",
        (status, reason, dumps(error), run_id))
    await cur.execute(
        "UPDATE workflow_nodes SET status = 'skipped', updated_at = now() "
        "WHERE run_id = %s AND status = 'pending'", (run_id,))
    await cur.execute(
        "UPDATE workflow_nodes SET status = 'cancelled', updated_at = now() "
        "WHERE run_id = %s AND status = 'queued' AND task_id IS DISTINCT FROM %s",
        (run_id, keep_task))
    await _stop_run_tasks(cur, run_id, keep=keep_task)


async def cancel_run(conn: AsyncConnection, run_id: int, reason: str,
                     error: Any = None) -> dict[str, Any]:
    async with conn.cursor() as cur:
        run = await lock_run(cur, run_id)
        if run["status"] != "running":
            raise ApiError(409, "run_finished", f"workflow run {run_id} is already "
                           f"{run['status']}", {"status": run["status"]})
        await finish_run(cur, run_id, "cancelled", reason=reason, error=error)
    return {"id": run_id, "status": "cancelled", "reason": reason}


async def _maybe_complete(cur: AsyncCursor, run_id: int) -> None:
    """With nothing queued, pending nodes can never become ready: skip them and finish."""
    nodes = await _nodes(cur, run_id)
    if not any(n["status"] == "queued" for n in nodes.values()):
        await _set_status(cur, run_id, [n for n, v in nodes.items() if v["status"] == "pending"],
                          "skipped")
        await cur.execute(
            "UPDATE workflow_runs SET status = 'succeeded', finished_at = now(), "
            "deadline_at = NULL WHERE id = %s AND status = 'running'", (run_id,))


async def _advance(cur: AsyncCursor, run: dict[str, Any], done: str,
                   skip_successors: bool = False) -> None:
    """Queue the pending successors of ``done`` whose inputs all succeeded; skip the ones
    that can no longer run (an input skipped), transitively."""
    nodes = await _nodes(cur, run["id"])
    ready: list[tuple[str, dict[str, Any]]] = []
    skipped: set[str] = set()
    frontier = [done]
    while frontier:
        current = frontier.pop()
        for name, node in nodes.items():
            if current not in node["upstream"] or node["status"] != "pending" or name in skipped:
                continue
            ups = [nodes[u]["status"] if u not in skipped else "skipped" for u in node["upstream"]]
            if (skip_successors and current == done) or any(
                    s in ("failed", "skipped", "cancelled") for s in ups):
                skipped.add(name)
                frontier.append(name)
            elif all(s == "succeeded" for s in ups):
                ready.append((name, node["task"]))
    await _set_status(cur, run["id"], skipped, "skipped")
    await queue_nodes(cur, run, ready)


def _unique_name(nodes: dict[str, Any], base: str) -> str:
    if base not in nodes:
        return base
    k = 2
    while f"{base}#{k}" in nodes:
        k += 1
    return f"{base}#{k}"


async def _add_dynamic(cur: AsyncCursor, run: dict[str, Any], after: str,
                       name: str, spec: dict[str, Any]) -> None:
    await ensure_queues(cur, [spec["queue"]])
    await cur.execute(
        "INSERT INTO workflow_nodes (run_id, node, status, task, upstream, dynamic, max_cycles) "
        "VALUES (%s, %s, 'pending', %s::jsonb, %s, true, 1)",
        (run["id"], name, dumps(spec), [after]))
    await queue_nodes(cur, run, [(name, spec)])


async def _rerun(cur: AsyncCursor, run: dict[str, Any], nodes: dict[str, dict[str, Any]],
                 name: str, args: Any, has_args: bool) -> None:
    """Queue a graph node again; its finished descendants go back to pending to follow it."""
    spec = dict(nodes[name]["task"])
    if has_args:
        spec["args"] = args
    again = [d for d in _descendants(nodes, name)
             if nodes[d]["status"] in TERMINAL_NODE and d != name]
    await _set_status(cur, run["id"], again, "pending")
    await queue_nodes(cur, run, [(name, spec)])


async def _on_success(cur: AsyncCursor, run: dict[str, Any], node: dict[str, Any],
                      attempt: int) -> None:
    directive = node["directive"] if (node["directive_task_id"] == node["task_id"]
                                      and node["directive_attempt"] == attempt) else None
    name = node["node"]
    await _set_status(cur, run["id"], [name], "succeeded")
    if run["status"] != "running":
        return
    directive = directive or {}
    nodes = await _nodes(cur, run["id"])
    for extra in directive.get("extra", []):
        new = _unique_name(nodes, extra.get("node") or extra["spec"]["name"])
        await _add_dynamic(cur, run, name, new, dict(extra["spec"]))
        nodes = await _nodes(cur, run["id"])
    course = directive.get("course")
    action = course["action"] if course else None
    if action == "terminate":
        await finish_run(cur, run["id"], "succeeded", reason=course.get("reason"))
        return
    if action == "next_iteration" and nodes[name]["runs"] < nodes[name]["max_cycles"]:
        await _rerun(cur, run, nodes, name, course.get("args"), "args" in course)
        return
    if action == "goto":
        target: str | None = course.get("node") or course["spec"]["name"]
        existing = nodes.get(target) if target else None
        if existing is not None:
            if existing["status"] == "queued" or existing["runs"] >= existing["max_cycles"]:
                await _advance(cur, run, name)  # refused: the run goes on as declared
                return
            await _rerun(cur, run, nodes, target, course["spec"].get("args"),
                         "args" in course["spec"])
        else:
            await _add_dynamic(cur, run, name, _unique_name(nodes, target or name),
                               course["spec"])
            target = None  # a new node: nothing of the graph follows it
        keep = ({target} | _descendants(nodes, target)) if target else set()
        skip = {d for d in _descendants(nodes, name)
                if d not in keep and nodes[d]["status"] == "pending"}
        await _set_status(cur, run["id"], skip, "skipped")
        return
    await _advance(cur, run, name)


async def on_tasks_finished(cur: AsyncCursor, run_id: int,
                            finished: Sequence[dict[str, Any]]) -> None:
    """Apply finished node tasks (``id``, ``status``) of one run whose row the caller locked."""
    await cur.execute("SELECT id, status, args, queue, priority FROM workflow_runs WHERE id = %s",
                      (run_id,))
    run = await cur.fetchone()
    if run is None:
        return
    for item in finished:
        await cur.execute(
            "SELECT n.*, t.attempts, t.error AS task_error FROM workflow_nodes n "
            "JOIN tasks t ON t.id = n.task_id WHERE n.task_id = %s AND n.run_id = %s "
            "AND n.status = 'queued'", (item["id"], run_id))
        node = await cur.fetchone()
        if node is None:
            continue  # stale: that node has moved on, or this was already applied
        status = item["status"]
        if status == "succeeded":
            await _on_success(cur, run, node, node["attempts"])
        elif status in ("failed", "cancelled"):
            await _set_status(cur, run_id, [node["node"]], status)
            if run["status"] == "running":
                error = {"node": node["node"], "task_id": item["id"],
                         "error": node["task_error"]}
                run_status = "failed" if status == "failed" else "cancelled"
                reason = (f"node {node['node']} failed" if status == "failed"
                          else f"the task of node {node['node']} was cancelled")
                await finish_run(cur, run_id, run_status, reason=reason, error=error)
        else:
            continue
        await cur.execute("SELECT status FROM workflow_runs WHERE id = %s", (run_id,))
        run = {**run, **(await cur.fetchone() or {})}
    if run["status"] == "running":
        await _maybe_complete(cur, run_id)


async def after_report(cur: AsyncCursor, rows: Sequence[dict[str, Any]]) -> None:
    """The report path's hook: rows from ``REPORT_SQL`` (runs already locked by the caller)."""
    by_run: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        if row["applied"] and row["workflow_run_id"] and row["new_status"] in task_store.TERMINAL:
            by_run.setdefault(row["workflow_run_id"], []).append(
                {"id": row["id"], "status": row["new_status"]})
    for run_id in sorted(by_run):
        await on_tasks_finished(cur, run_id, by_run[run_id])


RECONCILE_SQL = """
SELECT n.run_id, n.task_id AS id, t.status
FROM workflow_nodes n JOIN tasks t ON t.id = n.task_id
WHERE n.status = 'queued' AND t.status IN ('succeeded', 'failed', 'cancelled')
ORDER BY n.run_id LIMIT %s
"""


async def reconcile(conn: AsyncConnection, limit: int = 500) -> int:
    """Apply node tasks that finished outside the report path (lease sweep, task cancel)."""
    async with conn.cursor() as cur:
        await cur.execute(RECONCILE_SQL, (limit,))
        rows = await cur.fetchall()
    await conn.commit()  # each run below is then its own transaction
    by_run: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_run.setdefault(row["run_id"], []).append(row)
    for run_id, items in sorted(by_run.items()):
        async with conn.transaction(), conn.cursor() as cur:
            await cur.execute("SELECT id FROM workflow_runs WHERE id = %s FOR UPDATE SKIP LOCKED",
                              (run_id,))
            if await cur.fetchone() is not None:
                await on_tasks_finished(cur, run_id, items)
    return len(rows)


async def expire_runs(conn: AsyncConnection, limit: int = 100) -> list[int]:
    """Cancel runs past their deadline (the workflow timeout)."""
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(
            "SELECT id, timeout_seconds FROM workflow_runs WHERE status = 'running' "
            "AND deadline_at <= now() ORDER BY deadline_at LIMIT %s FOR UPDATE SKIP LOCKED",
            (limit,))
        rows = await cur.fetchall()
        for row in rows:
            await finish_run(
                cur, row["id"], "cancelled", reason="timeout",
                error={"type": "WorkflowTimeout",
                       "message": f"the run passed its timeout of {row['timeout_seconds']} "
                                  "seconds"})
    return [r["id"] for r in rows]


# --- directives from a task inside a run (fenced by its lease token) --------------------------

async def directive(conn: AsyncConnection, task_id: int, lease_token: str,
                    body: dict[str, Any]) -> dict[str, Any]:
    """Record (or, for ``cancel``, apply) a change of course asked by a running node task."""
    async with conn.cursor() as cur:
        await cur.execute("SELECT workflow_run_id FROM tasks WHERE id = %s", (task_id,))
        row = await cur.fetchone()
        if row is None:
            raise ApiError(404, "not_found", f"task {task_id} does not exist", {"id": task_id})
        if row["workflow_run_id"] is None:
            raise ApiError(409, "not_in_workflow", f"task {task_id} is not part of a workflow run")
        run_id = row["workflow_run_id"]
        run = await lock_run(cur, run_id)
        await cur.execute(
            "SELECT t.attempts, n.node, n.directive, n.directive_task_id, n.directive_attempt, "
            "n.runs, n.max_cycles FROM tasks t JOIN workflow_nodes n ON n.task_id = t.id "
            "WHERE t.id = %s AND t.lease_token = %s::uuid AND t.status = 'running'",
            (task_id, lease_token))
        cur_node = await cur.fetchone()
        if cur_node is None:
            raise ApiError(409, "stale_lease", f"task {task_id} is not running under this "
                           "lease token; the directive was not recorded")
        if run["status"] != "running":
            raise ApiError(409, "run_finished", f"workflow run {run_id} is already "
                           f"{run['status']}", {"status": run["status"]})
        action = body["action"]
        if action == "cancel":
            await finish_run(cur, run_id, "cancelled", reason=body.get("reason"),
                             error={"type": "WorkflowCancelled", "node": cur_node["node"],
                                    "task_id": task_id, "message": body.get("reason") or ""})
            return {"run_id": run_id, "accepted": True, "run_status": "cancelled"}
        same = (cur_node["directive_task_id"] == task_id
                and cur_node["directive_attempt"] == cur_node["attempts"])
        current = cur_node["directive"] if same and cur_node["directive"] else {}
        current = {"extra": list(current.get("extra", [])), "course": current.get("course")}
        accepted = True
        if action == "next_task" and not body.get("goto"):
            current["extra"].append({"spec": body["spec"], "node": body.get("node")})
        else:
            if current["course"] is not None:
                raise ApiError(409, "course_already_set",
                               f"this attempt already asked for {current['course']['action']}",
                               {"course": current["course"]["action"]})
            course: dict[str, Any] = {"action": "goto" if action == "next_task" else action}
            for key in ("spec", "node", "reason"):
                if body.get(key) is not None:
                    course[key] = body[key]
            if action == "next_iteration":
                if "args" in body:
                    course["args"] = body["args"]
                accepted = cur_node["runs"] < cur_node["max_cycles"]
            if accepted:
                current["course"] = course
        if accepted:
            await ensure_queues(cur, [x["spec"]["queue"] for x in current["extra"]] + (
                [current["course"]["spec"]["queue"]] if current["course"]
                and "spec" in current["course"] else []))
            await cur.execute(
                "UPDATE workflow_nodes SET directive = %s::jsonb, directive_task_id = %s, "
                "directive_attempt = %s WHERE run_id = %s AND node = %s",
                (dumps(current), task_id, cur_node["attempts"], run_id, cur_node["node"]))
        return {"run_id": run_id, "accepted": accepted, "runs": cur_node["runs"],
                "max_cycles": cur_node["max_cycles"]}

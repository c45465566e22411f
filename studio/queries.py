"""The studio's SQL: read-only views over the same tables the API writes.

Writes (cancel, retry, pause, resume) go through the ``app/store`` functions the API uses.
Every query here is bounded (LIMIT, an indexed key, or a small table) so that a page render
stays cheap on a large database; ``bench/studio_render.py`` measures them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from ..app.store.like import escape_like

# --- change markers (the live observer) --------------------------------------------------

MARKERS_SQL = """
SELECT
  (SELECT COALESCE(max(id), 0) FROM tasks) AS tasks,
  (SELECT COALESCE(max(id), 0) FROM task_events) AS task_events,
  (SELECT COALESCE(max(last_seen_at)::text, '') || '/' || count(*) || '/' || count(stopped_at)
     FROM workers) AS workers,
  (SELECT COALESCE(sum(hashtext(name || '/' || COALESCE(concurrency_limit::text, '-')
     || '/' || paused::text)), 0) || '/' || count(*) FROM queues) AS queues,
  (SELECT COALESCE(sum(hashtext(name || '/' || paused::text || '/' || next_fire_at::text
     || '/' || COALESCE(last_fire_at::text, '-'))), 0) || '/' || count(*)
     FROM schedules) AS schedules,
  (SELECT COALESCE(max(updated_at)::text, '') || '/' || count(*) FROM workflows) AS workflows,
  (SELECT COALESCE(max(updated_at)::text, '') || '/' || count(*)
     FROM task_definitions) AS definitions,
  (SELECT COALESCE(max(id), 0) FROM workflow_runs) || '/'
     || (SELECT count(*) FROM workflow_runs WHERE status = 'running') AS workflow_runs
"""


async def change_markers(conn: AsyncConnection) -> dict[str, Any]:
    async with conn.cursor() as cur:
        await cur.execute(MARKERS_SQL)
        row = await cur.fetchone()
        assert row is not None
        return dict(row)


CHANGED_TASKS_SQL = """
WITH ids AS (
    (SELECT task_id AS id FROM task_events WHERE id > %(event_id)s ORDER BY id LIMIT %(n)s)
    UNION
    (SELECT id FROM tasks WHERE id > %(task_id)s ORDER BY id LIMIT %(n)s)
)
SELECT t.id, t.root_id, t.workflow_run_id FROM tasks t JOIN ids USING (id) LIMIT %(n)s
"""


async def changed_task_topics(conn: AsyncConnection, task_id: int, event_id: int,
                              limit: int) -> set[str]:
    """Topics for the tasks that were created or changed state since the given marks."""
    async with conn.cursor() as cur:
        await cur.execute(CHANGED_TASKS_SQL, {"task_id": task_id, "event_id": event_id,
                                              "n": limit + 1})
        rows = await cur.fetchall()
    if len(rows) > limit:
        return {"*"}
    topics: set[str] = set()
    for r in rows:
        topics.add(f"task:{r['id']}")
        topics.add(f"root:{r['root_id']}")
        if r["workflow_run_id"] is not None:
            topics.add(f"run:{r['workflow_run_id']}")
    return topics


# --- overview -------------------------------------------------------------------------------

# One scan of the task table for both the status counts and the last hour's throughput.
OVERVIEW_SQL = """
SELECT queue, status,
       CASE WHEN finished_at > now() - interval '1 hour'
                 AND status IN ('succeeded', 'failed')
            THEN LEAST(59, floor(extract(epoch FROM now() - finished_at) / 60))::int
       END AS minutes_ago,
       count(*) AS n
FROM tasks
GROUP BY 1, 2, 3
"""


async def overview(conn: AsyncConnection) -> tuple[list[dict[str, Any]],
                                                   dict[str, dict[str, list[int]]]]:
    """Queue rows with counts by status, and finished tasks per minute over the last hour."""
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT name, concurrency_limit, paused FROM queues ORDER BY name LIMIT 1000")
        queues = {r["name"]: {**r, "queued": 0, "running": 0, "succeeded": 0, "failed": 0,
                              "cancelled": 0} for r in await cur.fetchall()}
        await cur.execute(OVERVIEW_SQL)
        rows = await cur.fetchall()
    series: dict[str, dict[str, list[int]]] = {}
    for r in rows:
        q = queues.get(r["queue"])
        if q is not None:
            q[r["status"]] += r["n"]
        if r["minutes_ago"] is not None:
            s = series.setdefault(r["queue"], {"succeeded": [0] * 60, "failed": [0] * 60})
            s[r["status"]][59 - r["minutes_ago"]] += r["n"]
    return list(queues.values()), series


async def workers_online(conn: AsyncConnection, offline_after: float) -> int:
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT count(*) AS n FROM workers WHERE stopped_at IS NULL "
            "AND last_seen_at > now() - make_interval(secs => %s)", (offline_after,))
        row = await cur.fetchone()
        return int(row["n"]) if row else 0


# --- tasks ----------------------------------------------------------------------------------

LIST_COLUMNS = """id, name, queue, status, priority, attempts, max_retries, parent_id, root_id,
    depth, worker_id, workflow_run_id, workflow_node, created_at, started_at, finished_at,
    run_at, left(args::text, 160) AS args_preview"""


def _like(text: str) -> str:
    return "%" + escape_like(text) + "%"


async def list_tasks(conn: AsyncConnection, *, status: str | None = None,
                     queue: str | None = None, name: str | None = None,
                     since: datetime | None = None, until: datetime | None = None,
                     before_id: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Newest first, filtered; ``before_id`` is the cursor (the last id already shown)."""
    where: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    if status:
        where.append("status = %(status)s")
        params["status"] = status
    if queue:
        where.append("queue = %(queue)s")
        params["queue"] = queue
    if name:
        where.append("name ILIKE %(name)s")
        params["name"] = _like(name)
    if since:
        where.append("created_at >= %(since)s")
        params["since"] = since
    if until:
        where.append("created_at < %(until)s")
        params["until"] = until
    if before_id is not None:
        where.append("id < %(before_id)s")
        params["before_id"] = before_id
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    async with conn.cursor() as cur:
        await cur.execute(
            f"SELECT {LIST_COLUMNS} FROM tasks {clause} ORDER BY id DESC LIMIT %(limit)s",
            params)
        return await cur.fetchall()


async def queue_names(conn: AsyncConnection) -> list[str]:
    async with conn.cursor() as cur:
        await cur.execute("SELECT name FROM queues ORDER BY name LIMIT 1000")
        return [r["name"] for r in await cur.fetchall()]


async def task_brief(conn: AsyncConnection, task_id: int) -> dict[str, Any] | None:
    async with conn.cursor() as cur:
        await cur.execute("SELECT id, name, status, queue FROM tasks WHERE id = %s", (task_id,))
        return await cur.fetchone()


async def children(conn: AsyncConnection, parent_id: int, limit: int) -> list[dict[str, Any]]:
    async with conn.cursor() as cur:
        await cur.execute(
            f"SELECT {LIST_COLUMNS} FROM tasks WHERE parent_id = %s ORDER BY id LIMIT %s",
            (parent_id, limit))
        return await cur.fetchall()


async def child_count(conn: AsyncConnection, parent_id: int) -> int:
    async with conn.cursor() as cur:
        await cur.execute("SELECT count(*) AS n FROM tasks WHERE parent_id = %s", (parent_id,))
        row = await cur.fetchone()
        return int(row["n"]) if row else 0


# --- trees ----------------------------------------------------------------------------------

async def tree_rollup(conn: AsyncConnection, root_id: int) -> list[dict[str, Any]]:
    """Counts by depth and status for a whole tree (one index range on tasks_root_idx)."""
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT depth, status, count(*) AS n FROM tasks WHERE root_id = %s "
            "GROUP BY depth, status ORDER BY depth", (root_id,))
        return await cur.fetchall()


# Roots that have children, newest first: a loose index scan over tasks_parent_idx visits
# each distinct parent once (not every child), and stops as soon as enough roots are found.
ROOTS_SQL = """
WITH RECURSIVE parents(id) AS (
    (SELECT parent_id FROM tasks WHERE parent_id < %(before)s
     ORDER BY parent_id DESC LIMIT 1)
    UNION ALL
    SELECT (SELECT t.parent_id FROM tasks t WHERE t.parent_id < p.id
            ORDER BY t.parent_id DESC LIMIT 1)
    FROM parents p WHERE p.id IS NOT NULL
)
SELECT t.id, t.name, t.queue, t.status, t.created_at, t.finished_at
FROM parents p JOIN tasks t ON t.id = p.id
WHERE p.id IS NOT NULL AND t.parent_id IS NULL
LIMIT %(limit)s
"""


async def tree_roots(conn: AsyncConnection, before_id: int | None,
                     limit: int) -> list[dict[str, Any]]:
    async with conn.cursor() as cur:
        await cur.execute(ROOTS_SQL, {"before": before_id or 2**63 - 1, "limit": limit})
        return await cur.fetchall()


TREE_NODE_COLUMNS = """id, name, status, queue, parent_id, depth, attempts, worker_id,
    created_at, started_at, finished_at"""

TREE_CHILDREN_SQL = f"""
SELECT o.ord, c.* FROM unnest(%(ids)s::bigint[], %(lims)s::int[]) WITH ORDINALITY
    AS o(id, lim, ord)
CROSS JOIN LATERAL (
    SELECT {TREE_NODE_COLUMNS} FROM tasks t WHERE t.parent_id = o.id ORDER BY t.id LIMIT o.lim
) c
ORDER BY o.ord, c.id
"""


async def tree_children(conn: AsyncConnection, limits: dict[int, int]) -> list[dict[str, Any]]:
    """The first ``limit`` children of each open node (tasks_parent_idx, one range each)."""
    if not limits:
        return []
    ids = list(limits)
    async with conn.cursor() as cur:
        await cur.execute(TREE_CHILDREN_SQL, {"ids": ids, "lims": [limits[i] for i in ids]})
        return await cur.fetchall()


async def tree_node(conn: AsyncConnection, task_id: int) -> dict[str, Any] | None:
    async with conn.cursor() as cur:
        await cur.execute(f"SELECT {TREE_NODE_COLUMNS}, root_id FROM tasks WHERE id = %s",
                          (task_id,))
        return await cur.fetchone()


async def child_status_counts(conn: AsyncConnection,
                              parent_ids: list[int]) -> dict[int, dict[str, int]]:
    """Direct children of each node, counted by status."""
    if not parent_ids:
        return {}
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT parent_id, status, count(*) AS n FROM tasks WHERE parent_id = ANY(%s) "
            "GROUP BY parent_id, status", (parent_ids,))
        rows = await cur.fetchall()
    out: dict[int, dict[str, int]] = {}
    for r in rows:
        out.setdefault(r["parent_id"], {})[r["status"]] = r["n"]
    return out


# --- workers, definitions, schedules -------------------------------------------------------

async def running_by_worker(conn: AsyncConnection,
                            worker_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    if not worker_ids:
        return {}
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT id, name, queue, worker_id, started_at FROM tasks WHERE status = 'running' "
            "AND worker_id = ANY(%s) ORDER BY id LIMIT 2000", (worker_ids,))
        rows = await cur.fetchall()
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["worker_id"], []).append(r)
    return out


async def schedules(conn: AsyncConnection) -> list[dict[str, Any]]:
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT name, kind, target, cron, timezone, args, misfire, paused, source, "
            "next_fire_at, last_fire_at, last_sent_id FROM schedules ORDER BY name LIMIT 1000")
        return await cur.fetchall()


# --- workflows ------------------------------------------------------------------------------

async def workflow_definitions(conn: AsyncConnection) -> list[dict[str, Any]]:
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT name, queue, definition, args_schema, timeout_seconds, priority, updated_at "
            "FROM workflows ORDER BY name LIMIT 1000")
        return await cur.fetchall()


async def workflow_runs(conn: AsyncConnection, *, name: str | None, before_id: int | None,
                        limit: int) -> list[dict[str, Any]]:
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT id, workflow_name, status, queue, reason, created_at, finished_at "
            "FROM workflow_runs WHERE (%(name)s::text IS NULL OR workflow_name = %(name)s) "
            "AND (%(before)s::bigint IS NULL OR id < %(before)s) ORDER BY id DESC "
            "LIMIT %(n)s", {"name": name, "before": before_id, "n": limit})
        return await cur.fetchall()


async def workflow_run(conn: AsyncConnection, run_id: int) -> dict[str, Any] | None:
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT id, workflow_name, status, args, queue, priority, reason, error, "
            "deadline_at, created_at, finished_at FROM workflow_runs WHERE id = %s", (run_id,))
        return await cur.fetchone()


async def workflow_nodes(conn: AsyncConnection, run_id: int) -> list[dict[str, Any]]:
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT n.node, n.status, n.upstream, n.dynamic, n.runs, n.max_cycles, n.task_id, "
            "t.status AS task_status, n.updated_at FROM workflow_nodes n "
            "LEFT JOIN tasks t ON t.id = n.task_id WHERE n.run_id = %s ORDER BY n.node",
            (run_id,))
        return await cur.fetchall()


async def workflow_channel(conn: AsyncConnection, run_id: int) -> list[dict[str, Any]]:
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT key, value, updated_at FROM workflow_channel WHERE run_id = %s "
            "ORDER BY key LIMIT 1000", (run_id,))
        return await cur.fetchall()

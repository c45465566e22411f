"""Cross-table statements for the studio's dashboard and live updates: change markers, the
tasks changed since a mark, counts and throughput per queue, running tasks per worker.

Every statement is bounded (LIMIT, an indexed key, or a small table) so that a page render
stays cheap on a large database; ``bench/studio_render.py`` measures them.
"""

from __future__ import annotations

from typing import Any, TypedDict

from psycopg import AsyncConnection

# One row of cheap fingerprints; a moved marker names what changed.
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
     || (SELECT count(*) FROM workflow_runs WHERE status = 'running') AS workflow_runs,
  -- progress and streams: the topic "streams" (the task page's progress refetches on it)
  (SELECT COALESCE(max(updated_at)::text, '') FROM task_streams) AS streams
"""

CHANGED_TASKS_SQL = """
WITH ids AS (
    (SELECT task_id AS id FROM task_events WHERE id > %(event_id)s ORDER BY id LIMIT %(n)s)
    UNION
    (SELECT id FROM tasks WHERE id > %(task_id)s ORDER BY id LIMIT %(n)s)
)
SELECT t.id, t.root_id, t.workflow_run_id FROM tasks t JOIN ids USING (id) LIMIT %(n)s
"""

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


class ChangedTask(TypedDict):
    id: int
    root_id: int
    workflow_run_id: int | None


class StatusMinute(TypedDict):
    queue: str
    status: str
    minutes_ago: int | None  # finished (succeeded or failed) this many minutes ago, in the hour
    n: int


class RunningTask(TypedDict):
    id: int
    name: str
    queue: str
    worker_id: str
    started_at: Any


async def change_markers(conn: AsyncConnection) -> dict[str, Any]:
    async with conn.cursor() as cur:
        await cur.execute(MARKERS_SQL)
        row = await cur.fetchone()
        assert row is not None
        return dict(row)


async def changed_tasks(conn: AsyncConnection, task_id: int, event_id: int,
                        limit: int) -> list[ChangedTask]:
    """Tasks created after task ``task_id`` or with an event after ``event_id`` (at most
    ``limit``)."""
    async with conn.cursor() as cur:
        await cur.execute(CHANGED_TASKS_SQL, {"task_id": task_id, "event_id": event_id,
                                              "n": limit})
        return await cur.fetchall()  # type: ignore[return-value]


async def queue_settings(conn: AsyncConnection, limit: int = 1000) -> list[dict[str, Any]]:
    """Every queue (``name``, ``concurrency_limit``, ``paused``) by name."""
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT name, concurrency_limit, paused FROM queues ORDER BY name LIMIT %s",
            (limit,))
        return await cur.fetchall()


async def status_minutes(conn: AsyncConnection) -> list[StatusMinute]:
    """Task counts per queue and status, the last hour's finishes split by minute."""
    async with conn.cursor() as cur:
        await cur.execute(OVERVIEW_SQL)
        return await cur.fetchall()  # type: ignore[return-value]


async def running_by_worker(conn: AsyncConnection, worker_ids: list[str],
                            limit: int = 2000) -> list[RunningTask]:
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT id, name, queue, worker_id, started_at FROM tasks WHERE status = 'running' "
            "AND worker_id = ANY(%s) ORDER BY id LIMIT %s", (worker_ids, limit))
        return await cur.fetchall()  # type: ignore[return-value]


# --- charts (the studio's Queues and Performance pages, Gantt timelines) ---------------------

# Arrivals (created) and departures (claimed, or cancelled before a claim) per queue and
# minute over the last ``minutes``: with today's queued count they give the depth curve.
# One pass over the task table, like the overview's aggregate.
QUEUE_FLOW_SQL = """
SELECT queue,
       CASE WHEN created_at > now() - make_interval(mins => %(m)s)
            THEN floor(extract(epoch FROM now() - created_at) / 60)::int END AS arrived_ago,
       CASE WHEN COALESCE(started_at, finished_at) > now() - make_interval(mins => %(m)s)
            THEN floor(extract(epoch FROM now() - COALESCE(started_at, finished_at)) / 60)::int
       END AS left_ago,
       count(*) AS n
FROM tasks
WHERE created_at > now() - make_interval(mins => %(m)s)
   OR COALESCE(started_at, finished_at) > now() - make_interval(mins => %(m)s)
GROUP BY 1, 2, 3
"""

QUEUED_NOW_SQL = "SELECT queue, count(*) AS n FROM tasks WHERE status = 'queued' GROUP BY queue"

# Per task name over the window: finished attempts' outcome and run time percentiles.
RUN_TIMES_SQL = """
SELECT name,
       count(*) AS finished,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
         AS p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
         AS p95
FROM tasks
WHERE finished_at > now() - make_interval(secs => %(secs)s)
  AND status IN ('succeeded', 'failed') AND started_at IS NOT NULL
GROUP BY name
ORDER BY count(*) DESC, name
LIMIT %(limit)s
"""

SPAN_COLUMNS = """t.id, t.name, t.status, t.parent_id, t.depth, t.workflow_node, t.created_at,
    t.started_at, t.finished_at, left(t.args::text, 1000) AS args_preview"""

TREE_SPANS_SQL = f"""
SELECT {SPAN_COLUMNS} FROM tasks t WHERE t.root_id = %s ORDER BY t.id LIMIT %s
"""

RUN_SPANS_SQL = f"""
SELECT {SPAN_COLUMNS} FROM workflow_nodes n JOIN tasks t ON t.id = n.task_id
WHERE n.run_id = %s ORDER BY t.id LIMIT %s
"""


class QueueFlow(TypedDict):
    queue: str
    arrived_ago: int | None
    left_ago: int | None
    n: int


class RunTimes(TypedDict):
    name: str
    finished: int
    failed: int
    p50: float | None
    p95: float | None


class Span(TypedDict):
    id: int
    name: str
    status: str
    parent_id: int | None
    depth: int
    workflow_node: str | None
    created_at: Any
    started_at: Any
    finished_at: Any
    args_preview: str


async def queue_flow(conn: AsyncConnection, minutes: int) -> list[QueueFlow]:
    async with conn.cursor() as cur:
        await cur.execute(QUEUE_FLOW_SQL, {"m": minutes})
        return await cur.fetchall()  # type: ignore[return-value]


async def queued_now(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Queued tasks per queue (``tasks_status_idx``)."""
    async with conn.cursor() as cur:
        await cur.execute(QUEUED_NOW_SQL)
        return await cur.fetchall()


async def run_times(conn: AsyncConnection, seconds: float, limit: int) -> list[RunTimes]:
    async with conn.cursor() as cur:
        await cur.execute(RUN_TIMES_SQL, {"secs": seconds, "limit": limit})
        return await cur.fetchall()  # type: ignore[return-value]


async def tree_spans(conn: AsyncConnection, root_id: int, limit: int) -> list[Span]:
    """The first ``limit`` tasks of a tree by id (``tasks_root_idx``)."""
    async with conn.cursor() as cur:
        await cur.execute(TREE_SPANS_SQL, (root_id, limit))
        return await cur.fetchall()  # type: ignore[return-value]


async def run_spans(conn: AsyncConnection, run_id: int, limit: int) -> list[Span]:
    """The current task of each node of a workflow run."""
    async with conn.cursor() as cur:
        await cur.execute(RUN_SPANS_SQL, (run_id, limit))
        return await cur.fetchall()  # type: ignore[return-value]


async def args_previews(conn: AsyncConnection, ids: list[int]) -> list[dict[str, Any]]:
    """``id`` and ``args_preview`` (the first 1,000 characters of the args) by primary key."""
    async with conn.cursor() as cur:
        await cur.execute("SELECT id, left(args::text, 1000) AS args_preview FROM tasks "
                          "WHERE id = ANY(%s)", (ids,))
        return await cur.fetchall()

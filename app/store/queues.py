"""Queue rows: created on first use, carrying the concurrency limit and pause flag."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypedDict, cast

from psycopg import AsyncConnection, AsyncCursor

from .sql import notify_all, notify_config_changed

Cursor = AsyncCursor[Any]
Conn = AsyncConnection[Any]

QUEUE_STATS_SQL = """
SELECT q.name, q.concurrency_limit, q.paused, q.stuck_after_seconds, q.stuck_action,
    q.retention_succeeded_seconds, q.retention_failed_seconds, q.retention_cancelled_seconds,
    COALESCE(s.queued, 0) AS queued, COALESCE(s.running, 0) AS running,
    COALESCE(s.waiting, 0) AS waiting, COALESCE(s.succeeded, 0) AS succeeded, COALESCE(s.failed, 0) AS failed,
    COALESCE(s.cancelled, 0) AS cancelled
FROM queues q LEFT JOIN (
    SELECT queue,
        count(*) FILTER (WHERE status = 'queued') AS queued,
        count(*) FILTER (WHERE status = 'running') AS running,
        count(*) FILTER (WHERE status = 'waiting') AS waiting,
        count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
        count(*) FILTER (WHERE status = 'failed') AS failed,
        count(*) FILTER (WHERE status = 'cancelled') AS cancelled
    FROM tasks GROUP BY queue
) s ON s.queue = q.name
ORDER BY q.name
"""

# Both counts use partial indexes (tasks_claim_idx, tasks_running_idx), not the whole table.
DEPTH_SQL = """
SELECT q.name AS queue, s.status, COALESCE(c.n, 0) AS n
FROM queues q CROSS JOIN (VALUES ('queued'), ('running')) AS s(status)
LEFT JOIN (
    SELECT queue, 'queued' AS status, count(*) AS n FROM tasks WHERE status = 'queued'
    GROUP BY queue
    UNION ALL
    SELECT queue, 'running', count(*) FROM tasks WHERE status = 'running' GROUP BY queue
) c ON c.queue = q.name AND c.status = s.status
ORDER BY q.name, s.status
"""


class QueueRow(TypedDict, total=False):
    name: str
    concurrency_limit: int | None
    paused: bool
    stuck_after_seconds: float | None
    stuck_action: str | None
    flow: bool
    keyed: bool
    rate_limit: str | None
    retention_succeeded_seconds: float | None
    retention_failed_seconds: float | None
    retention_cancelled_seconds: float | None


# A queue's retention per finished status (docs/operations.md, "Retention"); None: the
# server's.
RETENTION_COLUMNS = ("retention_succeeded_seconds", "retention_failed_seconds",
                     "retention_cancelled_seconds")


class QueueStats(QueueRow):
    queued: int
    running: int
    waiting: int  # durable tasks waiting on an event, a signal... (docs/durable.md)
    succeeded: int
    failed: int
    cancelled: int


class DepthRow(TypedDict):
    queue: str
    status: str
    n: int


async def ensure(cur: Cursor, names: Iterable[str]) -> None:
    """Queue rows in the caller's transaction (glob claims and the studio list need them)."""
    await cur.execute("INSERT INTO queues (name) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
                      (sorted(set(names)),))


async def special(cur: Cursor) -> list[QueueRow]:
    """The queues whose settings differ from the default: a concurrency limit, paused, or
    under flow control (docs/flow-control.md: ``flow``, ``rate_limit``)."""
    await cur.execute(
        "SELECT name, concurrency_limit, paused, flow, keyed, rate_limit FROM queues "
        "WHERE paused OR concurrency_limit IS NOT NULL OR flow OR rate_limit IS NOT NULL")
    return cast(list[QueueRow], await cur.fetchall())


async def upsert(cur: Cursor, name: str, *, concurrency_limit: int | None,
                 set_limit: bool, paused: bool | None,
                 stuck: Mapping[str, Any] | None = None,
                 retention: Mapping[str, Any] | None = None) -> QueueRow:
    """Create or change a queue; ``set_limit`` False keeps its limit as it is; ``stuck``
    (``stuck_after_seconds``, ``stuck_action``) and ``retention`` (``RETENTION_COLUMNS``)
    hold the settings to change."""
    stuck = stuck or {}
    retention = retention or {}
    await cur.execute(
        """INSERT INTO queues (name, concurrency_limit, paused, stuck_after_seconds,
               stuck_action, retention_succeeded_seconds, retention_failed_seconds,
               retention_cancelled_seconds)
           VALUES (%(name)s, %(limit)s, COALESCE(%(paused)s, false), %(after)s, %(action)s,
               %(retention_succeeded_seconds)s, %(retention_failed_seconds)s,
               %(retention_cancelled_seconds)s)
           ON CONFLICT (name) DO UPDATE SET
             concurrency_limit = CASE WHEN %(set_limit)s THEN EXCLUDED.concurrency_limit
                                      ELSE queues.concurrency_limit END,
             paused = COALESCE(%(paused)s, queues.paused),
             stuck_after_seconds = CASE WHEN %(set_after)s THEN EXCLUDED.stuck_after_seconds
                                        ELSE queues.stuck_after_seconds END,
             stuck_action = CASE WHEN %(set_action)s THEN EXCLUDED.stuck_action
                                 ELSE queues.stuck_action END,
             retention_succeeded_seconds = CASE WHEN %(set_retention_succeeded_seconds)s
                 THEN EXCLUDED.retention_succeeded_seconds
                 ELSE queues.retention_succeeded_seconds END,
             retention_failed_seconds = CASE WHEN %(set_retention_failed_seconds)s
                 THEN EXCLUDED.retention_failed_seconds ELSE queues.retention_failed_seconds END,
             retention_cancelled_seconds = CASE WHEN %(set_retention_cancelled_seconds)s
                 THEN EXCLUDED.retention_cancelled_seconds
                 ELSE queues.retention_cancelled_seconds END
           RETURNING name, concurrency_limit, paused, stuck_after_seconds, stuck_action,
               retention_succeeded_seconds, retention_failed_seconds,
               retention_cancelled_seconds""",
        {"name": name, "limit": concurrency_limit, "set_limit": set_limit, "paused": paused,
         "after": stuck.get("stuck_after_seconds"), "action": stuck.get("stuck_action"),
         "set_after": "stuck_after_seconds" in stuck, "set_action": "stuck_action" in stuck,
         **{c: retention.get(c) for c in RETENTION_COLUMNS},
         **{f"set_{c}": c in retention for c in RETENTION_COLUMNS}})
    row = await cur.fetchone()
    assert row is not None
    # A raised limit or a resumed queue may let waiting claims through now; every
    # replica drops its cached queue settings.
    await notify_all(cur, name)
    await notify_config_changed(cur)
    return cast(QueueRow, row)


async def stats(conn: Conn) -> list[QueueStats]:
    async with conn.cursor() as cur:
        await cur.execute(QUEUE_STATS_SQL)
        return cast(list[QueueStats], await cur.fetchall())


async def names(conn: Conn, limit: int = 1000) -> list[str]:
    async with conn.cursor() as cur:
        await cur.execute("SELECT name FROM queues ORDER BY name LIMIT %s", (limit,))
        return [r["name"] for r in await cur.fetchall()]


async def depth(conn: Conn) -> list[DepthRow]:
    """Queued and running tasks per queue (the metrics gauges)."""
    async with conn.cursor() as cur:
        await cur.execute(DEPTH_SQL)
        return cast(list[DepthRow], await cur.fetchall())

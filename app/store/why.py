"""The facts "why isn't it running?", the studio's Limits page and the flow gauges of
``/metrics`` are computed from, across ``tasks``, ``queues``, ``workers``, ``task_waits`` and
the rate-limit buckets (grouped by purpose, like ``insights.py``). Statements only;
``app/read/why.py`` turns them into reasons, ``app/read/flow.py`` into the page and gauges.

The rate-limit and concurrency-key facts are ``app/store/limits.py``'s (``rate_holds``,
``key_holders``), the same rules the claim uses.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict, cast

from psycopg import AsyncConnection

from .sql import STUCK_SQL

Conn = AsyncConnection[Any]

# How many ids a reason names at most (the holders of a queue's slots, a parent's children).
IDS_SHOWN = 20
# Counting the tasks ahead in line stops here: "more than 10,000 ahead" says enough.
AHEAD_CAP = 10_000


class TaskFacts(TypedDict):
    id: int
    name: str
    queue: str
    status: str
    priority: int
    run_at: datetime
    attempts: int
    debounce_key: str | None
    started_at: datetime | None
    now: datetime
    due: bool  # run_at <= now()
    last_event: str | None
    paused: bool
    concurrency_limit: int | None
    children_open: int
    children_ids: list[int]


class SlotHolders(TypedDict):
    running: int
    ids: list[int]
    stuck_ids: list[int]


class SeenWorker(TypedDict):
    id: str
    queues: Any
    task_names: Any


class WaitRow(TypedDict):
    kind: str
    key: str | None
    step: str
    deadline: datetime | None
    detail: Any


FACTS_SQL = f"""
SELECT t.id, t.name, t.queue, t.status, t.priority, t.run_at, t.attempts, t.debounce_key,
    t.started_at, now() AS now, t.run_at <= now() AS due,
    (SELECT e.event FROM task_events e WHERE e.task_id = t.id ORDER BY e.id DESC LIMIT 1)
        AS last_event,
    COALESCE(q.paused, false) AS paused, q.concurrency_limit,
    c.open AS children_open, c.ids AS children_ids
FROM tasks t
LEFT JOIN queues q ON q.name = t.queue
CROSS JOIN LATERAL (
    SELECT count(*) AS open,
        COALESCE((array_agg(k.id ORDER BY k.id))[1:{IDS_SHOWN}], '{{}}') AS ids
    FROM tasks k
    WHERE k.parent_id = t.id AND k.status NOT IN ('succeeded', 'failed', 'cancelled')
) c
WHERE t.id = %s
"""

HOLDERS_SQL = f"""
SELECT count(*) AS running,
    COALESCE((array_agg(tasks.id ORDER BY tasks.id))[1:{IDS_SHOWN}], '{{}}') AS ids,
    COALESCE((array_agg(tasks.id ORDER BY tasks.id) FILTER (WHERE {STUCK_SQL}))[1:{IDS_SHOWN}],
             '{{}}') AS stuck_ids
FROM tasks WHERE tasks.queue = %s AND tasks.status = 'running'
"""

STUCK_AMONG_SQL = f"""
SELECT COALESCE(array_agg(tasks.id ORDER BY tasks.id), '{{}}') AS ids
FROM tasks WHERE tasks.id = ANY(%s) AND {STUCK_SQL}
"""

AHEAD_SQL = f"""
SELECT count(*) AS n FROM (
    SELECT 1 FROM tasks a
    WHERE a.status = 'queued' AND a.queue = %(queue)s AND a.run_at <= now()
      AND (a.priority > %(priority)s
           OR (a.priority = %(priority)s AND (a.run_at, a.id) < (%(run_at)s, %(id)s)))
    LIMIT {AHEAD_CAP}
) x
"""


async def facts(conn: Conn, task_id: int) -> TaskFacts | None:
    """The task, its queue's settings, its last history event and its unfinished children."""
    async with conn.cursor() as cur:
        await cur.execute(FACTS_SQL, (task_id,))
        return cast(TaskFacts | None, await cur.fetchone())


async def slot_holders(conn: Conn, queue: str) -> SlotHolders:
    """What runs in ``queue`` now: how many, the first ids, and which of them are stuck."""
    async with conn.cursor() as cur:
        await cur.execute(HOLDERS_SQL, (queue,))
        return cast(SlotHolders, await cur.fetchone())


async def stuck_among(conn: Conn, ids: list[int]) -> list[int]:
    """Which of ``ids`` are running and stuck (no progress past their stuck_after)."""
    if not ids:
        return []
    async with conn.cursor() as cur:
        await cur.execute(STUCK_AMONG_SQL, (ids,))
        row = await cur.fetchone()
        return list(row["ids"]) if row else []


async def ahead(conn: Conn, task: TaskFacts) -> int:
    """Ready tasks of the queue that the claim takes before this one (capped)."""
    async with conn.cursor() as cur:
        await cur.execute(AHEAD_SQL, {"queue": task["queue"], "priority": task["priority"],
                                      "run_at": task["run_at"], "id": task["id"]})
        row = await cur.fetchone()
        return int(row["n"]) if row else 0


async def online_workers(conn: Conn, offline_after: float) -> list[SeenWorker]:
    """Workers seen within ``offline_after`` seconds and not stopped, with what they serve."""
    async with conn.cursor() as cur:
        await cur.execute(
            """SELECT id, queues, task_names FROM workers
               WHERE stopped_at IS NULL AND last_seen_at > now() - make_interval(secs => %s)
               ORDER BY id LIMIT 10000""", (offline_after,))
        return cast(list[SeenWorker], await cur.fetchall())


async def waits(conn: Conn, task_id: int) -> list[WaitRow]:
    """What a ``waiting`` task waits for (``task_waits``, helper C1's durable waits)."""
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT kind, key, step, deadline, detail FROM task_waits WHERE task_id = %s",
            (task_id,))
        return cast(list[WaitRow], await cur.fetchall())


# -- flow control in use: the Limits page and the /metrics gauges -----------------------------

# How many rows one read of flow state scans or shows at most (bounded like every list).
FLOW_SCAN = 100_000
KEYS_SHOWN = 200
BUCKETS_SHOWN = 10_000


class KeyUseRow(TypedDict):
    queue: str
    key: str
    limit: int | None
    running: int
    ready: int  # queued and due: held back while running >= limit
    later: int
    next_id: int | None  # the first ready task (its page says why it waits)


class BucketUseRow(TypedDict):
    limit_name: str
    key: str
    tat: datetime
    units: int
    period_seconds: float
    burst: int
    now: datetime


class HeldRow(TypedDict):
    queue: str
    key_limit: int
    rate_limit: int


KEY_USE_SQL = f"""
SELECT t.queue, t.concurrency_key AS key, max(t.concurrency_limit) AS limit,
    count(*) FILTER (WHERE t.status = 'running') AS running,
    count(*) FILTER (WHERE t.status = 'queued' AND t.run_at <= now()) AS ready,
    count(*) FILTER (WHERE t.status = 'queued' AND t.run_at > now()) AS later,
    min(t.id) FILTER (WHERE t.status = 'queued' AND t.run_at <= now()) AS next_id
FROM (SELECT queue, concurrency_key, concurrency_limit, status, run_at, id FROM tasks
      WHERE concurrency_key IS NOT NULL AND status IN ('queued', 'running')
      LIMIT {FLOW_SCAN}) t
GROUP BY t.queue, t.concurrency_key
ORDER BY running DESC, ready DESC, t.queue, t.concurrency_key
"""

# Buckets still draining (tat in the future: units in use), newest use first.
BUCKET_USE_SQL = f"""
SELECT b.limit_name, b.key, b.tat, l.units, l.period_seconds, l.burst, now() AS now
FROM rate_limit_buckets b JOIN rate_limits l ON l.name = b.limit_name
WHERE b.tat > now()
ORDER BY b.tat DESC LIMIT {BUCKETS_SHOWN}
"""

# Due queued tasks held back, per queue: by their key's limit (as many running as it
# allows) or by a rate limit with no unit free for them (the claim's rule, in SQL).
HELD_SQL = f"""
WITH due AS (
    SELECT id, queue, concurrency_key, concurrency_limit, rate_limits FROM tasks
    WHERE status = 'queued' AND run_at <= now()
      AND (concurrency_key IS NOT NULL OR rate_limits IS NOT NULL
           OR queue IN (SELECT name FROM queues WHERE rate_limit IS NOT NULL))
    LIMIT {FLOW_SCAN}
), running AS (
    SELECT queue, concurrency_key, count(*) AS n FROM tasks
    WHERE status = 'running' AND concurrency_key IS NOT NULL GROUP BY 1, 2
)
SELECT d.queue,
    count(*) FILTER (WHERE d.concurrency_limit IS NOT NULL
                     AND COALESCE(r.n, 0) >= d.concurrency_limit) AS key_limit,
    count(*) FILTER (WHERE EXISTS (
        SELECT 1 FROM (
            SELECT x->>'limit' AS name, COALESCE(x->>'key', '') AS key,
                COALESCE((x->>'units')::int, 1) AS units
            FROM jsonb_array_elements(COALESCE(d.rate_limits, '[]'::jsonb)) x
            UNION ALL
            SELECT q.rate_limit, '', 1 FROM queues q
            WHERE q.name = d.queue AND q.rate_limit IS NOT NULL
        ) u
        JOIN rate_limits l ON l.name = u.name
        JOIN rate_limit_buckets b ON b.limit_name = u.name AND b.key = u.key
        WHERE b.tat + make_interval(secs => l.period_seconds / l.units
                                    * (u.units - l.burst - 1)) > now())) AS rate_limit
FROM due d
LEFT JOIN running r ON r.queue = d.queue AND r.concurrency_key = d.concurrency_key
GROUP BY d.queue ORDER BY d.queue
"""


async def key_use(conn: Conn) -> list[KeyUseRow]:
    """Each concurrency key with unfinished tasks: running, ready (held back when at its
    limit) and later, busiest first."""
    async with conn.cursor() as cur:
        await cur.execute(KEY_USE_SQL)
        return cast(list[KeyUseRow], await cur.fetchall())


async def bucket_use(conn: Conn) -> list[BucketUseRow]:
    """Rate-limit buckets with units in use now, with their limit's settings."""
    async with conn.cursor() as cur:
        await cur.execute(BUCKET_USE_SQL)
        return cast(list[BucketUseRow], await cur.fetchall())


async def held_back(conn: Conn) -> list[HeldRow]:
    """Per queue, how many due tasks a key's limit or a rate limit holds back now."""
    async with conn.cursor() as cur:
        await cur.execute(HELD_SQL)
        return cast(list[HeldRow], await cur.fetchall())


async def db_now(conn: Conn) -> datetime:
    """The database's clock (the one run_at, buckets and windows are measured on)."""
    async with conn.cursor() as cur:
        await cur.execute("SELECT now() AS now")
        row = await cur.fetchone()
        assert row is not None
        return cast(datetime, row["now"])

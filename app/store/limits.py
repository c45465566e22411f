"""Flow-control statements (docs/flow-control.md): named rate limits and their GCRA buckets,
concurrency keys and their fair tags, and the flow claim's reads and writes.

Statements only, in the caller's transaction; the rules (which task may start, what a send
with a strategy does) are in ``app/engine/limits.py`` and ``app/engine/flow_claim.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypedDict, cast

from psycopg import AsyncCursor

from .sql import notify_all, notify_config_changed

Cursor = AsyncCursor[Any]

LIMIT_COLUMNS = "name, units, period_seconds, burst, created_at, updated_at"


class RateLimitRow(TypedDict):
    name: str
    units: int
    period_seconds: float
    burst: int
    created_at: datetime
    updated_at: datetime


class BucketRow(TypedDict):
    limit_name: str
    key: str
    tat: datetime  # created as now(): a full bucket
    units: int
    period_seconds: float
    burst: int


class Candidate(TypedDict):
    id: int
    concurrency_key: str | None
    concurrency_limit: int | None
    rate_limits: list[dict[str, Any]] | None
    fair_tag: int | None
    priority: int
    key_running: int


class RateHold(TypedDict):
    limit: str
    key: str
    units: int
    next_unit_at: datetime | None


class KeyHold(TypedDict):
    queue: str
    key: str
    limit: int | None
    running_ids: list[int]


# --- named limits ----------------------------------------------------------------------

async def upsert_limit(cur: Cursor, name: str, units: int, period_seconds: float,
                       burst: int) -> RateLimitRow:
    """Create or change a limit; its buckets keep their state (a changed rate applies from
    the next grant on)."""
    await cur.execute(
        f"""INSERT INTO rate_limits (name, units, period_seconds, burst)
            VALUES (%s, %s, %s, %s)
            ON CONFLICT (name) DO UPDATE SET units = EXCLUDED.units,
                period_seconds = EXCLUDED.period_seconds, burst = EXCLUDED.burst,
                updated_at = now()
            RETURNING {LIMIT_COLUMNS}""", (name, units, period_seconds, burst))
    return cast(RateLimitRow, await cur.fetchone())


async def delete_limit(cur: Cursor, name: str) -> bool:
    """Drop a limit and its buckets; queues that named it lose their rate limit."""
    await cur.execute("UPDATE queues SET rate_limit = NULL WHERE rate_limit = %s", (name,))
    await cur.execute("DELETE FROM rate_limits WHERE name = %s RETURNING name", (name,))
    return await cur.fetchone() is not None


async def list_limits(cur: Cursor) -> list[RateLimitRow]:
    await cur.execute(f"SELECT {LIMIT_COLUMNS} FROM rate_limits ORDER BY name")
    return cast(list[RateLimitRow], await cur.fetchall())


async def get_limits(cur: Cursor, names: Iterable[str]) -> dict[str, RateLimitRow]:
    """The limits of those names that exist, by name."""
    await cur.execute(f"SELECT {LIMIT_COLUMNS} FROM rate_limits WHERE name = ANY(%s)",
                      (sorted(set(names)),))
    return {r["name"]: cast(RateLimitRow, r) for r in await cur.fetchall()}


async def set_queue_limit(cur: Cursor, queue: str, limit: str | None) -> None:
    """Name the rate limit every task of ``queue`` consumes (None: none); every replica
    drops its cached queue settings and waiting claims look again."""
    await cur.execute(
        "INSERT INTO queues (name, rate_limit) VALUES (%s, %s) "
        "ON CONFLICT (name) DO UPDATE SET rate_limit = EXCLUDED.rate_limit", (queue, limit))
    await notify_all(cur, queue)
    await notify_config_changed(cur)


async def bucket_use(cur: Cursor, name: str) -> list[dict[str, Any]]:
    """Each key's theoretical arrival time (the moment its bucket is full again)."""
    await cur.execute(
        "SELECT key, tat FROM rate_limit_buckets WHERE limit_name = %s ORDER BY key LIMIT 1000",
        (name,))
    return list(await cur.fetchall())


# --- send ------------------------------------------------------------------------------

TAGS_SQL = """
WITH x AS (
    SELECT * FROM unnest(%(keys)s::text[], %(counts)s::int[]) AS x(key, n)
), clock AS (
    SELECT COALESCE((SELECT fair_clock FROM queues WHERE name = %(queue)s), 0) AS c
)
INSERT INTO concurrency_keys AS k (queue, key, last_tag)
SELECT %(queue)s, x.key, clock.c + x.n FROM x, clock ORDER BY x.key
ON CONFLICT (queue, key) DO UPDATE
    SET last_tag = GREATEST(k.last_tag, (SELECT c FROM clock)) + EXCLUDED.last_tag
        - (SELECT c FROM clock)
RETURNING key, last_tag, (SELECT c FROM clock) AS clock
"""


async def take_tags(cur: Cursor, queue: str,
                    counts: Mapping[str, int]) -> tuple[dict[str, int], int]:
    """Reserve ``counts[key]`` fair tags for each key (locking its row until commit, which
    serialises racing sends of one key); answers each key's last tag and the queue clock."""
    keys = sorted(counts)
    if not keys:
        await cur.execute("SELECT COALESCE((SELECT fair_clock FROM queues WHERE name = %s), 0)"
                          " AS c", (queue,))
        row = await cur.fetchone()
        return {}, int(row["c"]) if row else 0
    await cur.execute(TAGS_SQL, {"queue": queue, "keys": keys,
                                 "counts": [counts[k] for k in keys]})
    rows = await cur.fetchall()
    return {r["key"]: int(r["last_tag"]) for r in rows}, int(rows[0]["clock"])


async def key_active_ids(cur: Cursor, queue: str, key: str) -> list[int]:
    """The queued and running tasks of a concurrency key, oldest first."""
    await cur.execute(
        "SELECT id FROM tasks WHERE queue = %s AND concurrency_key = %s "
        "AND status IN ('queued', 'running') ORDER BY id", (queue, key))
    return [r["id"] for r in await cur.fetchall()]


async def flag_flow(cur: Cursor, queues: Sequence[str], keyed: Sequence[str]) -> bool:
    """Mark queues as holding flow-controlled tasks, ``keyed`` ones as holding tasks with a
    key limit (both sticky); True when a flag was new, and then every replica drops its
    cached queue settings."""
    await cur.execute(
        "UPDATE queues SET flow = true, keyed = keyed OR name = ANY(%(keyed)s) "
        "WHERE name = ANY(%(all)s) AND (NOT flow OR (NOT keyed AND name = ANY(%(keyed)s))) "
        "RETURNING name", {"all": sorted(set(queues)), "keyed": sorted(set(keyed))})
    if not await cur.fetchall():
        return False
    await notify_config_changed(cur)
    return True


# --- the flow claim ---------------------------------------------------------------------

async def lock_queue(cur: Cursor, queue: str) -> None:
    """Serialise the flow claims of a queue whose tasks have key limits (or which has a
    concurrency limit) on its row, so the running counts they read next cannot be raced.
    Nothing is fetched: in pipeline mode the lock goes out with the next statement (one
    round trip less), yet stays a statement of its own, so the next one's snapshot is taken
    once the lock is held; an error here is raised by the next fetch."""
    await cur.execute("SELECT 1 FROM queues WHERE name = %s FOR UPDATE", (queue,))


# The candidates statement is prepared (psycopg, after five runs), but PostgreSQL's "auto"
# plan cache mode keeps planning it afresh on each run (its generic plan is costed higher,
# the ``LIMIT`` being a parameter), and that planning cost more than the run itself. The
# generic plan has the same shape (the claim indexes by queue, a key's running count by
# key), so the flow claim asks for it, for its own transaction only.
# JIT off with them: a generic plan's row estimates (a LIMIT by parameter, a queue of
# unknown size) can put its cost past ``jit_above_cost``, and compiling the claim on every
# call cost ~20 ms with a million rows in the table (bench/compare.py --flat).
GENERIC_PLANS_SQL = """SELECT set_config('plan_cache_mode', 'force_generic_plan', true),
    set_config('jit', 'off', true)"""


async def generic_plans(cur: Cursor) -> None:
    """Run this transaction's prepared statements on their generic plans, without JIT
    (nothing fetched: in pipeline mode it goes out with the next statement)."""
    await cur.execute(GENERIC_PLANS_SQL)


CANDIDATES_SQL = """
WITH qs AS (
    SELECT fair_clock, rate_limit, paused, concurrency_limit FROM queues WHERE name = %(queue)s
), flow AS (
    SELECT t.id, t.concurrency_key, t.concurrency_limit, t.rate_limits, t.fair_tag,
        t.priority, t.run_at, k.running AS key_running
    FROM tasks t CROSS JOIN LATERAL (
        SELECT CASE WHEN t.concurrency_limit IS NULL THEN 0 ELSE (
            SELECT count(*) FROM tasks r WHERE r.queue = t.queue
              AND r.concurrency_key = t.concurrency_key AND r.status = 'running') END
        AS running
    ) k
    WHERE t.queue = %(queue)s AND t.status = 'queued' AND t.fair_tag IS NOT NULL
      AND t.run_at <= now()
      AND (%(names)s::text[] IS NULL OR t.name = ANY(%(names)s::text[]))
      -- a key at its limit is passed over in the scan itself
      AND (t.concurrency_limit IS NULL OR k.running < t.concurrency_limit)
    ORDER BY t.fair_tag, t.id
    LIMIT %(n)s
    FOR UPDATE OF t SKIP LOCKED
), plain AS (
    SELECT t.id, NULL::text, NULL::int, NULL::jsonb, NULL::bigint, t.priority, t.run_at,
        0::bigint
    FROM tasks t
    WHERE t.queue = %(queue)s AND t.status = 'queued' AND t.fair_tag IS NULL
      AND t.run_at <= now()
      AND (%(names)s::text[] IS NULL OR t.name = ANY(%(names)s::text[]))
    ORDER BY t.priority DESC, t.run_at, t.id
    LIMIT %(n)s
    FOR UPDATE OF t SKIP LOCKED
), c AS MATERIALIZED (
    SELECT * FROM flow UNION ALL SELECT * FROM plain
), pairs AS (
    SELECT r->>'limit' AS name, COALESCE(r->>'key', '') AS key
    FROM c CROSS JOIN LATERAL jsonb_array_elements(c.rate_limits) r
    UNION
    SELECT rate_limit, '' FROM qs WHERE rate_limit IS NOT NULL
), b AS (
    -- Lock (creating when new: a full bucket) the buckets in play, always in one order, so
    -- claims of two queues sharing a limit cannot deadlock. A deleted limit has none. The
    -- conflict arm returns the latest committed row, whatever this statement's snapshot.
    INSERT INTO rate_limit_buckets AS b (limit_name, key, tat)
    SELECT l.name, p.key, now() FROM pairs p JOIN rate_limits l ON l.name = p.name
    WHERE EXISTS (SELECT 1 FROM c)
    ORDER BY l.name, p.key
    ON CONFLICT (limit_name, key) DO UPDATE SET tat = b.tat
    RETURNING b.limit_name, b.key, b.tat
)
SELECT c.id, c.concurrency_key, c.concurrency_limit, c.rate_limits, c.fair_tag, c.priority,
    c.key_running, qs.fair_clock, qs.rate_limit AS queue_rate_limit, qs.paused,
    qs.concurrency_limit AS queue_limit, now() AS now,
    -- the buckets once (on the row of the highest id), not once per row
    CASE WHEN c.id = (SELECT max(id) FROM c) THEN (
        SELECT jsonb_agg(jsonb_build_object('limit_name', b.limit_name, 'key', b.key,
            'tat', b.tat, 'units', l.units, 'period_seconds', l.period_seconds,
            'burst', l.burst))
        FROM b JOIN rate_limits l ON l.name = b.limit_name) END AS buckets
FROM c CROSS JOIN qs
ORDER BY COALESCE(c.fair_tag, qs.fair_clock + 1), c.priority DESC, c.run_at, c.id
"""


class View(TypedDict):
    """What a flow claim sees of its queue, with the candidates."""

    fair_clock: int
    queue_rate_limit: str | None
    paused: bool
    queue_limit: int | None
    now: datetime


async def candidates(cur: Cursor, queue: str, task_names: Sequence[str] | None, n: int
                     ) -> tuple[list[Candidate], dict[tuple[str, str], BucketRow], View | None]:
    """Up to ``n`` flow tasks (fair tag order, keys at their limit passed over) and ``n``
    plain ones (priority order) that are ready, locked (``SKIP LOCKED``) and merged: a plain
    task counts as tagged with the queue's next clock. Each comes with its key's running
    count; with them, the rate-limit buckets they (and the queue's own limit) draw on,
    locked until commit, and the queue's state (None: no candidates)."""
    await cur.execute(CANDIDATES_SQL, {"queue": queue, "n": n,
                                       "names": list(task_names) if task_names else None})
    rows = await cur.fetchall()
    if not rows:
        return [], {}, None
    buckets: dict[tuple[str, str], BucketRow] = {}
    for b in next((r["buckets"] for r in rows if r["buckets"] is not None), []):
        b["tat"] = datetime.fromisoformat(b["tat"])
        buckets[(b["limit_name"], b["key"])] = cast(BucketRow, b)
    return cast(list[Candidate], rows), buckets, cast(View, rows[0])


# --- "why is it not running" --------------------------------------------------------------

RATE_HOLDS_SQL = """
SELECT x.limit_name AS limit, x.key, x.units, b.tat, l.units AS limit_units,
    l.period_seconds, l.burst, now() AS now
FROM tasks t
LEFT JOIN queues q ON q.name = t.queue
CROSS JOIN LATERAL (
    SELECT r->>'limit' AS limit_name, COALESCE(r->>'key', '') AS key,
        COALESCE((r->>'units')::int, 1) AS units
    FROM jsonb_array_elements(COALESCE(t.rate_limits, '[]'::jsonb)) r
    UNION ALL
    SELECT q.rate_limit, '', 1 WHERE q.rate_limit IS NOT NULL
) x
JOIN rate_limits l ON l.name = x.limit_name
LEFT JOIN rate_limit_buckets b ON b.limit_name = x.limit_name AND b.key = x.key
WHERE t.id = %s
ORDER BY x.limit_name, x.key
"""


async def rate_holds(cur: Cursor, task_id: int) -> list[RateHold]:
    """The rate limits task ``task_id`` consumes, each with when its units are next free
    (None: now). The same GCRA rule as the claim (``engine/limits.next_free``)."""
    await cur.execute(RATE_HOLDS_SQL, (task_id,))
    out: list[RateHold] = []
    for r in await cur.fetchall():
        at = None if r["tat"] is None else next_free(
            r["tat"], r["now"], r["units"], emission_us(r["period_seconds"], r["limit_units"]),
            r["burst"])
        out.append(RateHold(limit=r["limit"], key=r["key"], units=r["units"],
                            next_unit_at=at))
    return out


# GCRA (docs/flow-control.md): a limit of ``units`` per ``period`` spaces units ``step``
# apart and lets ``burst + 1`` go at once. A bucket's ``tat`` is when it is full again; a
# grant of ``c`` units at ``now`` moves it to ``max(tat, now) + c * step`` and is allowed
# while that stays within ``now + (burst + 1) * step``. The claim (engine/flow_claim.py) and
# "why" (rate_holds) share these two functions so they cannot disagree.

def emission_us(period: float, units: int) -> int:
    """The spacing of units in whole microseconds, rounded up (never faster than the rate)."""
    return -(-round(period * 1_000_000) // units)


def next_free(tat: datetime, now: datetime, units: int, step_us: int,
              burst: int) -> datetime | None:
    """When ``units`` can next be granted from a bucket at ``tat`` (None: now)."""
    at = tat + timedelta(microseconds=step_us * (units - burst - 1))
    return at if at > now else None


async def key_holders(cur: Cursor, task_id: int) -> KeyHold | None:
    """Task ``task_id``'s concurrency key, its limit, and the tasks running under it."""
    await cur.execute(
        """SELECT t.queue, t.concurrency_key AS key, t.concurrency_limit AS limit,
               COALESCE((SELECT array_agg(r.id ORDER BY r.id) FROM tasks r
                   WHERE r.queue = t.queue AND r.concurrency_key = t.concurrency_key
                     AND r.status = 'running'), '{}') AS running_ids
           FROM tasks t WHERE t.id = %s AND t.concurrency_key IS NOT NULL""", (task_id,))
    row = await cur.fetchone()
    return cast(KeyHold | None, row)


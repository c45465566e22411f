"""Lease statements: claim (lease ready tasks), heartbeat (extend), release (hand back).

Statements only, in the caller's transaction; the claim's plan (which queues, how many from
each) is worked out by ``app/engine/claim.py`` and passed in as one :class:`LeasePlan`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, cast

from psycopg import AsyncCursor

from .sql import ASYNC_COMMIT, dumps

Cursor = AsyncCursor[Any]

# Columns a worker gets with a claimed task (from the claim's ``upd``), and ``replay``: the
# task has stored durable steps (docs/durable.md), so its worker reads them before replaying;
# a first run (the common case) is spared that request.
CLAIM_COLUMNS = """id, name, queue, args, priority, attempts, max_retries, timeout_seconds,
    lease_token, lease_expires_at, parent_id, root_id, depth, workflow_run_id, workflow_node,
    run_at, created_at"""
STEPS_STORED = "EXISTS (SELECT 1 FROM task_steps s WHERE s.task_id = upd.id)"
# The plain claim looks for steps only where there can be some: a step is written only under
# a lease (a running attempt, or the wait of a suspended one), so a task that never started
# (``started_at`` null before this claim; nothing clears it) has none. The candidates that
# started before are read as the claim found them (``cand``), once per statement.
REPLAY_OF_RERUNS = f"""CASE
        WHEN upd.id = ANY(ARRAY(SELECT id FROM cand WHERE started_at IS NOT NULL))
        THEN {STEPS_STORED} ELSE false END"""

# Queues come as names with caps, plus LIKE patterns expanded here to the queues that exist,
# leaving out ``skip`` (queues with a limit or paused, which the caller listed or left out).
# Claims and heartbeats commit without waiting for the WAL flush. Losing one in a database
# crash is safe: the task is simply still queued (or its lease shorter), the worker's later
# report is refused as stale, and the task runs again (execution is at-least-once). Sends
# and reports, whose loss would lose a task or an outcome, keep synchronous commit. A later
# synchronous commit flushes the WAL up to itself, so a durable report implies its claim.
# (``ASYNC_COMMIT`` in sql.py.)

# What leasing writes on a task row, and what a claim answers with the leased rows (its
# history event, asynchronous commit): shared by the plain claim and the flow claim.
LEASE_UPDATE = """UPDATE tasks t SET status = 'running', attempts = t.attempts + 1,
        worker_id = %(worker_id)s, lease_token = gen_random_uuid(),
        lease_expires_at = now() + make_interval(secs => %(lease)s),
        started_at = now(), last_progress_at = now(),
        timeout_at = now() + make_interval(secs => t.timeout_seconds)"""


def _leased(replay: str) -> str:
    """The claim's tail after ``upd``: the history event, the answer (``replay`` computed by
    the SQL expression given), asynchronous commit."""
    return f"""ev AS (
    INSERT INTO task_events (task_id, attempt, event, status, worker_id)
    SELECT id, attempts, 'claimed', 'running', worker_id FROM upd
)
SELECT {CLAIM_COLUMNS}, {replay} AS replay FROM upd, ({ASYNC_COMMIT}) AS async_commit"""


CLAIM_SQL = f"""
WITH q AS (
    SELECT * FROM unnest(%(queues)s::text[], %(caps)s::int[]) AS q(name, cap)
    UNION ALL
    SELECT name, %(n)s FROM queues
    WHERE name LIKE ANY(%(patterns)s::text[])
      AND name <> ALL(%(queues)s::text[]) AND name <> ALL(%(skip)s::text[])
), cand AS (
    SELECT c.id, c.priority, c.run_at, c.started_at FROM q CROSS JOIN LATERAL (
        SELECT t.id, t.priority, t.run_at, t.started_at FROM tasks t
        WHERE t.status = 'queued' AND t.queue = q.name AND t.run_at <= now()
          AND t.fair_tag IS NULL  -- flow-controlled rows go through engine/flow_claim.py
          AND (%(names)s::text[] IS NULL OR t.name = ANY(%(names)s::text[]))
        ORDER BY t.priority DESC, t.run_at, t.id
        LIMIT LEAST(q.cap, %(n)s)
        FOR UPDATE SKIP LOCKED
    ) c
    ORDER BY c.priority DESC, c.run_at, c.id
    LIMIT %(n)s
), upd AS (
    -- By primary key from the array: a join on cand (a LIMIT by parameter, of unknown size
    -- in the generic plan) would hash the whole table.
    {LEASE_UPDATE}
    WHERE t.id = ANY(ARRAY(SELECT id FROM cand))
    RETURNING t.*
), {_leased(REPLAY_OF_RERUNS)}
ORDER BY priority DESC, run_at, id
"""

# The flow claim (engine/flow_claim.py) has chosen its tasks already: lease those ids, if
# still queued (a cancel may have come between), and in the same statement write what the
# choice used up: the rate-limit buckets' new arrival times and the queue's fair clock.
LEASE_IDS_SQL = f"""
WITH bk AS (
    UPDATE rate_limit_buckets b SET tat = x.tat
    FROM unnest(%(names)s::text[], %(keys)s::text[], %(tats)s::timestamptz[])
        AS x(name, key, tat)
    WHERE b.limit_name = x.name AND b.key = x.key
), qc AS (
    UPDATE queues SET fair_clock = %(clock)s
    WHERE name = %(queue)s AND fair_clock < %(clock)s
), upd AS (
    {LEASE_UPDATE}
    WHERE t.id = ANY(%(ids)s) AND t.status = 'queued'
    RETURNING t.*
), {_leased(STEPS_STORED)}
ORDER BY array_position(%(ids)s::bigint[], id)
"""

HEARTBEAT_SQL = f"""
WITH hb AS (
    SELECT * FROM jsonb_to_recordset(%(items)s::jsonb)
        AS x(id bigint, lease_token uuid, idle_seconds float8)
), upd AS (
    UPDATE tasks t SET lease_expires_at = now() + make_interval(secs => %(lease)s),
        last_progress_at = now() - make_interval(secs => COALESCE(hb.idle_seconds, 0))
    -- The ids as an array too, for the primary key: a join on hb alone (estimated at 100
    -- rows) read every running row.
    FROM hb WHERE t.id = ANY(ARRAY(SELECT id FROM hb))
      AND t.id = hb.id AND t.lease_token = hb.lease_token AND t.status = 'running'
    RETURNING t.id, t.cancel_requested, t.lease_expires_at
)
SELECT hb.id, upd.id IS NOT NULL AS held, COALESCE(upd.cancel_requested, false) AS cancel,
       upd.lease_expires_at
FROM hb LEFT JOIN upd ON upd.id = hb.id, ({ASYNC_COMMIT}) AS async_commit
"""

RELEASE_SQL = """
WITH x AS (
    SELECT * FROM jsonb_to_recordset(%(items)s::jsonb) AS x(id bigint, lease_token uuid)
), upd AS (
    -- Back in line where it was (run_at kept): a released task runs again first.
    UPDATE tasks t SET status = 'queued', attempts = t.attempts - 1,
        run_at = LEAST(t.run_at, now()),
        worker_id = NULL, lease_token = NULL, lease_expires_at = NULL, timeout_at = NULL
    FROM x WHERE t.id = ANY(ARRAY(SELECT id FROM x))  -- by primary key, as the heartbeat
      AND t.id = x.id AND t.lease_token = x.lease_token AND t.status = 'running'
    RETURNING t.id, t.attempts, t.queue, %(worker_id)s::text AS worker_id
), ev AS (
    INSERT INTO task_events (task_id, attempt, event, status, worker_id)
    SELECT id, attempts + 1, 'released', 'queued', worker_id FROM upd
)
SELECT id, queue FROM upd
"""


@dataclass(frozen=True, slots=True)
class LeasePlan:
    """One claim statement's input: ``caps`` (queue name -> most tasks to take from it),
    ``expand`` (LIKE patterns of further queues, each capped at ``limit``), ``skip`` (names the
    patterns must not expand to), the task names served (None: any) and the batch size."""

    worker_id: str
    caps: dict[str, int]
    expand: Sequence[str]
    skip: Sequence[str]
    task_names: Sequence[str] | None
    limit: int
    lease_seconds: float


class ClaimedTask(TypedDict):
    id: int
    name: str
    queue: str
    args: Any
    priority: int
    attempts: int
    max_retries: int
    timeout_seconds: float | None
    lease_token: Any
    lease_expires_at: datetime
    parent_id: int | None
    root_id: int
    depth: int
    workflow_run_id: int | None
    workflow_node: str | None
    run_at: datetime
    created_at: datetime
    replay: bool  # durable steps are stored: a re-run reads them (docs/durable.md)


class HeartbeatRow(TypedDict):
    id: int
    held: bool
    cancel: bool
    lease_expires_at: datetime | None


class ReleasedRow(TypedDict):
    id: int
    queue: str


async def lock_limits(cur: Cursor, names: Sequence[str]) -> dict[str, int | None]:
    """Lock the rows of limited queues (claimers of one queue serialise here), name -> limit."""
    await cur.execute(
        "SELECT name, concurrency_limit FROM queues WHERE name = ANY(%s) "
        "ORDER BY name FOR UPDATE", (list(names),))
    return {r["name"]: r["concurrency_limit"] for r in await cur.fetchall()}


async def running_counts(cur: Cursor, queues: Sequence[str]) -> dict[str, int]:
    """Running tasks per queue, for the queues named."""
    await cur.execute(
        "SELECT queue, count(*) AS n FROM tasks WHERE status = 'running' "
        "AND queue = ANY(%s) GROUP BY queue", (list(queues),))
    return {r["queue"]: r["n"] for r in await cur.fetchall()}


async def claim(cur: Cursor, plan: LeasePlan) -> None:
    """Lease up to ``plan.limit`` ready tasks (priority, then run_at, then id). Nothing is
    fetched: the rows are read with :func:`leased` (in pipeline mode, after the COMMIT is
    sent with it)."""
    order = sorted(plan.caps)
    await cur.execute(CLAIM_SQL, {
        "queues": order, "caps": [plan.caps[q] for q in order],
        "patterns": list(plan.expand), "skip": list(plan.skip),
        "names": list(plan.task_names) if plan.task_names else None,
        "n": plan.limit, "worker_id": plan.worker_id, "lease": plan.lease_seconds,
    })


async def lease_ids(cur: Cursor, ids: Sequence[int], worker_id: str, lease_seconds: float,
                    queue: str, clock: int, tats: Mapping[tuple[str, str], datetime]) -> None:
    """Lease the tasks ``ids`` still queued, in the order given; move the buckets ``tats``
    ((limit, key) -> arrival time) and ``queue``'s fair clock forward. The leased rows are
    read with :func:`leased` (in pipeline mode, after the COMMIT is sent with it)."""
    keys = sorted(tats)
    await cur.execute(LEASE_IDS_SQL, {
        "ids": list(ids), "worker_id": worker_id, "lease": lease_seconds, "queue": queue,
        "clock": clock, "names": [k[0] for k in keys], "keys": [k[1] for k in keys],
        "tats": [tats[k] for k in keys]})


async def leased(cur: Cursor) -> list[ClaimedTask]:
    """The rows :func:`claim` or :func:`lease_ids` leased."""
    return cast(list[ClaimedTask], await cur.fetchall())


async def heartbeat(cur: Cursor, items: Sequence[dict[str, Any]],
                    lease_seconds: float) -> list[HeartbeatRow]:
    """Extend the leases still held (``id``, ``lease_token``); say which are held or cancelled."""
    await cur.execute(HEARTBEAT_SQL, {"items": dumps(items), "lease": lease_seconds})
    return cast(list[HeartbeatRow], await cur.fetchall())


async def release(cur: Cursor, worker_id: str,
                  items: Sequence[dict[str, Any]]) -> list[ReleasedRow]:
    """Queue leased tasks again without spending an attempt (fenced by lease token)."""
    await cur.execute(RELEASE_SQL, {"items": dumps(items), "worker_id": worker_id})
    return cast(list[ReleasedRow], await cur.fetchall())

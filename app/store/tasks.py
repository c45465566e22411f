"""Task life-cycle statements on ``tasks`` and its history: send, report, sweep, cancel, retry.

Statements only: each function runs in the caller's transaction (it takes the cursor), returns
typed rows and decides nothing; ``app/engine`` composes them into use cases. The lease
statements (claim, heartbeat, release) are in :mod:`.leases`, the reads in :mod:`.task_reads`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, cast

from psycopg import AsyncCursor

from .sql import (
    CHANNEL,
    LOGS_UPSERT_SQL,
    OUTCOME_ROWS_SQL,
    RUNS_OF_TASKS_SQL,
    STUCK_ACTION_JOINED_SQL,
    STUCK_AFTER_JOINED_SQL,
    STUCK_JOIN,
    STUCK_JOINED_SQL,
    dumps,
)

Cursor = AsyncCursor[Any]

# The delay before retry number ``attempts`` under the task's stored policy. The exponent is
# capped so that 1,000 retries cannot overflow float8 (which would wedge the sweep).
BACKOFF_SQL = """LEAST(t.retry_max_delay_seconds, CASE t.retry_backoff
        WHEN 'fixed' THEN t.retry_delay_seconds
        WHEN 'linear' THEN t.retry_delay_seconds * t.attempts
        ELSE t.retry_delay_seconds * power(2, LEAST(GREATEST(t.attempts - 1, 0), 60)) END)"""

# A send's items as rows (``idx`` numbers them, ``id`` is drawn here), and the INSERT that
# writes them: written once for the plain send and the debounced one.
SEND_INPUT_SQL = """
    SELECT nextval('tasks_id_seq') AS id, x.*
    FROM jsonb_to_recordset(%(items)s::jsonb) AS x(
        idx int, name text, queue text, args jsonb, priority int, max_retries int,
        retry_delay_seconds float8, retry_backoff text, retry_max_delay_seconds float8,
        timeout_seconds float8, idempotency_key text, parent_id bigint, spawn_key text,
        delay_seconds float8, run_at timestamptz, workflow_run_id bigint, workflow_node text,
        stuck_after_seconds float8, stuck_action text, debounce_key text, unique_key text,
        unique_for float8, debounce_max_seconds float8, concurrency_key text, concurrency_limit int, rate_limits jsonb,
        fair_tag bigint)"""

SEND_INSERT_SQL = """
    INSERT INTO tasks (id, name, queue, status, args, priority, run_at, max_retries,
        retry_delay_seconds, retry_backoff, retry_max_delay_seconds, timeout_seconds,
        idempotency_key, parent_id, root_id, depth, spawn_key, workflow_run_id, workflow_node,
        stuck_after_seconds, stuck_action, debounce_key, unique_key, unique_until,
        debounce_deadline, concurrency_key, concurrency_limit, rate_limits, fair_tag)
    SELECT i.id, i.name, i.queue, 'queued', i.args, i.priority,
        COALESCE(i.run_at, now() + make_interval(secs => COALESCE(i.delay_seconds, 0))),
        i.max_retries, i.retry_delay_seconds, i.retry_backoff, i.retry_max_delay_seconds,
        i.timeout_seconds, i.idempotency_key, i.parent_id, COALESCE(p.root_id, i.id),
        COALESCE(p.depth + 1, 0), i.spawn_key, i.workflow_run_id, i.workflow_node,
        i.stuck_after_seconds, i.stuck_action, i.debounce_key, i.unique_key,
        now() + make_interval(secs => i.unique_for),
        now() + make_interval(secs => i.debounce_max_seconds), i.concurrency_key, i.concurrency_limit,
        i.rate_limits, i.fair_tag
    FROM input i LEFT JOIN tasks p ON p.id = i.parent_id"""

# One NOTIFY per queue of the rows ``ins`` returned, in the statement (no extra round trip):
# ready now, or the earliest time something becomes ready, and how many (sql.encode's format).
SEND_NOTE_SQL = """
    SELECT pg_notify(%(channel)s, CASE
        WHEN bool_or(wake_at IS NULL)
        THEN queue || E'\t\t' || count(*) FILTER (WHERE wake_at IS NULL)
        ELSE queue || E'\t' || round(extract(epoch FROM min(wake_at))::numeric, 3)::text
            || E'\t' || count(*) END)
    FROM ins GROUP BY queue"""

SEND_SQL = f"""
WITH input AS MATERIALIZED ({SEND_INPUT_SQL}
), keys AS (
    -- Expiring idempotency keys (unique_for): a new key, or one whose time is up, is taken
    -- by this send; the key row's lock decides between racing sends.
    INSERT INTO task_unique_keys AS k (name, key, task_id, expires_at)
    SELECT name, unique_key, id, now() + make_interval(secs => unique_for) FROM input
    WHERE unique_for IS NOT NULL
    ON CONFLICT (name, key) DO UPDATE SET task_id = EXCLUDED.task_id,
        expires_at = EXCLUDED.expires_at
    WHERE k.expires_at <= now()
    RETURNING task_id
), ins AS ({SEND_INSERT_SQL}
    WHERE i.unique_for IS NULL OR i.id IN (SELECT task_id FROM keys)
    ORDER BY i.idx
    ON CONFLICT DO NOTHING
    RETURNING id, queue, CASE WHEN run_at > now() THEN run_at END AS wake_at
), note AS ({SEND_NOTE_SQL}
)
SELECT i.idx, i.id, ins.id IS NOT NULL AS inserted, ins.queue, ins.wake_at,
    (SELECT count(*) FROM note) AS notified
FROM input i LEFT JOIN ins ON ins.id = i.id
ORDER BY i.idx
"""

# The same for a batch in which no item has a key (idempotency, spawn or while-active /
# expiring key), the common case: no unique index but the primary key (a fresh id) can refuse
# a row, so the plain INSERT skips ON CONFLICT's arbiter look-ups and speculative insertion
# (about a tenth of the send's database CPU) and the key rows.
SEND_UNKEYED_SQL = f"""
WITH input AS MATERIALIZED ({SEND_INPUT_SQL}
), ins AS ({SEND_INSERT_SQL}
    ORDER BY i.idx
    RETURNING id, queue, CASE WHEN run_at > now() THEN run_at END AS wake_at
), note AS ({SEND_NOTE_SQL}
)
SELECT i.idx, i.id, true AS inserted, ins.queue, ins.wake_at,
    (SELECT count(*) FROM note) AS notified
FROM input i JOIN ins ON ins.id = i.id
ORDER BY i.idx
"""
# The item keys that a unique index holds (the debounce key's items go to DEBOUNCE_SQL).
UNIQUE_KEYS = ("idempotency_key", "spawn_key", "unique_key", "unique_for")

# Debounced sends (one item per task name and key; the engine keeps the last): a new task,
# or the open window's queued task taking the latest args and its run_at pushed out. The
# unique index tasks_debounce_idx makes racing sends of any replica fold into one row.
DEBOUNCE_SQL = f"""
WITH input AS MATERIALIZED ({SEND_INPUT_SQL}
), ins AS ({SEND_INSERT_SQL}
    ORDER BY i.idx
    ON CONFLICT (name, debounce_key)
        WHERE debounce_key IS NOT NULL AND status = 'queued' AND started_at IS NULL
    DO UPDATE SET args = EXCLUDED.args,
        run_at = LEAST(EXCLUDED.run_at, COALESCE(tasks.debounce_deadline, 'infinity'))
    RETURNING id, name, debounce_key, queue, (xmax = 0) AS inserted,
        CASE WHEN run_at > now() THEN run_at END AS wake_at
), ev AS (
    INSERT INTO task_events (task_id, attempt, event, status)
    SELECT id, 0, 'send_folded', 'queued' FROM ins WHERE NOT inserted
), note AS ({SEND_NOTE_SQL}
)
SELECT i.idx, ins.id, ins.inserted, ins.queue, ins.wake_at,
    (SELECT count(*) FROM note) AS notified
FROM input i JOIN ins ON ins.name = i.name AND ins.debounce_key = i.debounce_key
ORDER BY i.idx
"""

# The task each refused item is a duplicate of: same idempotency key, same parent and spawn
# key, the holder of an expiring key, or the unfinished holder of a while-active key.
EXISTING_SQL = """
SELECT x.idx, t.id
FROM jsonb_to_recordset(%(items)s::jsonb) AS x(idx int, name text, idempotency_key text,
    parent_id bigint, spawn_key text, unique_key text, unique_for float8)
CROSS JOIN LATERAL (
    SELECT t.id FROM tasks t
    WHERE x.idempotency_key IS NOT NULL AND t.name = x.name
      AND t.idempotency_key = x.idempotency_key
    UNION ALL
    SELECT t.id FROM tasks t
    WHERE x.spawn_key IS NOT NULL AND t.parent_id = x.parent_id AND t.spawn_key = x.spawn_key
    UNION ALL
    SELECT k.task_id FROM task_unique_keys k
    WHERE x.unique_for IS NOT NULL AND k.name = x.name AND k.key = x.unique_key
    UNION ALL
    SELECT t.id FROM tasks t
    WHERE x.unique_key IS NOT NULL AND x.unique_for IS NULL AND t.name = x.name
      AND t.unique_key = x.unique_key AND t.unique_until IS NULL
      AND t.status NOT IN ('succeeded', 'failed', 'cancelled')
    LIMIT 1
) t
"""

# One statement applies a batch of outcomes. A row changes only while it is running under
# the reported lease token; everything else is answered from its current state.
#
# It first locks the workflow runs of the request's tasks (``lock_ids``: the suspended items'
# too), as ``store.workflows.lock_runs_of_tasks`` would in a statement of its own (one round
# trip and one statement less per report): the update's one-time filter reads ``runs``, so
# every run lock is held before the update touches a task row (the advancer's lock order,
# runs before tasks), and a task row an advancer changed meanwhile is re-checked at its
# latest version (READ COMMITTED), fenced by status and lease token as ever.
REPORT_SQL = f"""
WITH x AS (
    SELECT * FROM jsonb_to_recordset(%(items)s::jsonb) AS x(idx int, id bigint,
        lease_token uuid, outcome text, result jsonb, error jsonb, retry_delay_seconds float8,
        logs text)
), runs AS (
    {RUNS_OF_TASKS_SQL.format(ids="%(lock_ids)s::bigint[]")}
), upd AS (
    UPDATE tasks t SET
        status = CASE
            WHEN x.outcome = 'succeeded' THEN 'succeeded'
            WHEN x.outcome = 'cancelled' OR t.cancel_requested THEN 'cancelled'
            WHEN t.attempts <= t.max_retries THEN 'queued'
            ELSE 'failed' END,
        result = CASE WHEN x.outcome = 'succeeded' THEN x.result ELSE t.result END,
        error = CASE WHEN x.outcome = 'succeeded' THEN NULL ELSE x.error END,
        run_at = CASE
            WHEN x.outcome = 'failed' AND NOT t.cancel_requested AND t.attempts <= t.max_retries
            THEN now() + make_interval(secs => COALESCE(x.retry_delay_seconds, {BACKOFF_SQL}))
            ELSE t.run_at END,
        finished_at = CASE
            WHEN x.outcome = 'failed' AND NOT t.cancel_requested AND t.attempts <= t.max_retries
            THEN NULL ELSE now() END,
        lease_expires_at = NULL, timeout_at = NULL
    FROM x
    -- The ids as an array too: the rows are found by primary key whatever the plan (a
    -- join on x alone, estimated at 100 rows, read every running row by status).
    WHERE (SELECT count(*) FROM runs) >= 0
      AND t.id = ANY(ARRAY(SELECT id FROM x)) AND t.id = x.id
      AND t.lease_token = x.lease_token AND t.status = 'running'
    RETURNING t.id, t.status, t.attempts, t.worker_id, t.queue, t.error, t.run_at,
        t.workflow_run_id, t.name, EXTRACT(EPOCH FROM now() - t.started_at) AS run_seconds
), ev AS (
    INSERT INTO task_events (task_id, attempt, event, status, worker_id, error)
    SELECT id, attempts, CASE WHEN status = 'queued' THEN 'retry_scheduled' ELSE status END,
        status, worker_id, error
    FROM upd
), lg AS (
    -- The captured output is written only with the outcome it belongs to: a stale or forged
    -- lease token, or a repeated report, changes no log.
    INSERT INTO task_logs (task_id, attempt, output)
    SELECT upd.id, upd.attempts, x.logs FROM upd JOIN x ON x.id = upd.id
    WHERE x.logs IS NOT NULL
    {LOGS_UPSERT_SQL}
)
{OUTCOME_ROWS_SQL}"""

# The most attempts one pass of the sweep (or of the stuck sweeper) ends; a full pass means
# more may be due, and the service runs the next one without its pause.
SWEEP_BATCH = 1000

# The end of an attempt the server ends itself (sweep, stuck): the lease is cleared, the row
# is returned as the rescuer's hooks read it, and the history records it under ``reason``.
# ``due`` holds the ids (locked, still running when selected).
ENDED_ATTEMPT_SQL = """finished_at = CASE WHEN t.cancel_requested OR t.attempts > t.max_retries
                           THEN now() END,
        lease_token = NULL, lease_expires_at = NULL, timeout_at = NULL
    FROM due WHERE t.id = due.id AND t.status = 'running'
    RETURNING t.id, t.status, t.attempts, t.worker_id, t.queue, t.error, {reason} AS reason,
        t.workflow_run_id,
        CASE WHEN t.status = 'queued' AND t.run_at > now() THEN t.run_at END AS wake_at
), ev AS (
    INSERT INTO task_events (task_id, attempt, event, status, worker_id, error)
    SELECT id, attempts, reason, status, worker_id, error FROM upd
)
SELECT * FROM upd
"""

# Leases that ran out (the worker died) and attempts past their timeout, in one sweep.
SWEEP_SQL = f"""
WITH due AS (
    SELECT id, CASE WHEN timeout_at <= now() THEN 'timed_out' ELSE 'lost' END AS reason
    FROM tasks
    WHERE status = 'running' AND (lease_expires_at <= now() OR timeout_at <= now())
    ORDER BY id LIMIT {SWEEP_BATCH}
    FOR UPDATE SKIP LOCKED
), upd AS (
    UPDATE tasks t SET
        status = CASE WHEN t.cancel_requested THEN 'cancelled'
                      WHEN t.attempts <= t.max_retries THEN 'queued' ELSE 'failed' END,
        -- A lost attempt keeps its place in line (its run_at, in the past): it was first
        -- in line before the worker died, and must not wait behind the backlog since.
        run_at = CASE WHEN due.reason = 'lost' THEN LEAST(t.run_at, now())
                      ELSE now() + make_interval(secs => {BACKOFF_SQL}) END,
        error = jsonb_build_object(
            'type', CASE WHEN due.reason = 'lost' THEN 'LeaseExpired' ELSE 'TimeoutError' END,
            'message', CASE WHEN due.reason = 'lost'
                THEN 'the worker stopped heartbeating; its lease ran out'
                ELSE format('the attempt ran past its timeout of %%s seconds', t.timeout_seconds)
                END),
        {ENDED_ATTEMPT_SQL.format(reason="due.reason")}"""

# Stuck attempts whose rule says "fail" (docs/operations.md, "Stuck tasks"): failed as
# ``Stuck`` and retried per the task's policy, like a timeout. Rows shaped as the sweep's.
FAIL_STUCK_SQL = f"""
WITH due AS (
    SELECT tasks.id, {STUCK_AFTER_JOINED_SQL} AS after FROM tasks {STUCK_JOIN}
    WHERE tasks.status = 'running' AND {STUCK_ACTION_JOINED_SQL} = 'fail'
      AND {STUCK_JOINED_SQL}
    ORDER BY tasks.id LIMIT {SWEEP_BATCH}
    FOR UPDATE OF tasks SKIP LOCKED
), upd AS (
    UPDATE tasks t SET
        status = CASE WHEN t.cancel_requested THEN 'cancelled'
                      WHEN t.attempts <= t.max_retries THEN 'queued' ELSE 'failed' END,
        run_at = now() + make_interval(secs => {BACKOFF_SQL}),
        error = jsonb_build_object('type', 'Stuck', 'message',
            'the attempt showed no progress for ' || due.after || ' seconds (stuck_after)'),
        {ENDED_ATTEMPT_SQL.format(reason="'stuck'")}"""

# Queued and waiting tasks (docs/durable.md) are cancelled at once (a waiting one's wait is
# dropped); running ones are asked to stop.
CANCEL_SQL = """
WITH upd AS (
    UPDATE tasks SET
        status = CASE WHEN status IN ('queued', 'waiting') THEN 'cancelled' ELSE status END,
        cancel_requested = true,
        finished_at = CASE WHEN status IN ('queued', 'waiting') THEN now() ELSE finished_at END
    WHERE id = ANY(%(ids)s) AND status IN ('queued', 'running', 'waiting')
    RETURNING id, status, attempts, queue, workflow_run_id
), ev AS (
    INSERT INTO task_events (task_id, attempt, event, status)
    SELECT id, attempts, CASE WHEN status = 'cancelled' THEN 'cancelled'
        ELSE 'cancel_requested' END, status FROM upd
), dw AS (
    DELETE FROM task_waits WHERE task_id IN (SELECT id FROM upd WHERE status = 'cancelled')
)
SELECT * FROM upd
"""

PURGE_SQL = """
WITH upd AS (
    UPDATE tasks SET status = 'cancelled', cancel_requested = true, finished_at = now()
    WHERE queue = %(queue)s AND status = 'queued'
    RETURNING id, attempts
), ev AS (
    INSERT INTO task_events (task_id, attempt, event, status)
    SELECT id, attempts, 'cancelled', 'cancelled' FROM upd
)
SELECT count(*) AS n FROM upd
"""

# True when another unfinished task of the same name holds ``tasks``' while-active key: a
# finished task cannot be queued again then (tasks_unique_active_idx). For any re-queue.
ACTIVE_KEY_HELD_SQL = """(tasks.unique_key IS NOT NULL AND tasks.unique_until IS NULL
    AND EXISTS (SELECT 1 FROM tasks holder WHERE holder.name = tasks.name
        AND holder.unique_key = tasks.unique_key AND holder.unique_until IS NULL
        AND holder.status NOT IN ('succeeded', 'failed', 'cancelled')))"""

RETRY_SQL = f"""
WITH upd AS (
    UPDATE tasks SET status = 'queued', run_at = now(), finished_at = NULL,
        cancel_requested = false, lease_token = NULL, worker_id = NULL,
        max_retries = GREATEST(max_retries, attempts)
    WHERE id = ANY(%(ids)s) AND status IN ('failed', 'cancelled')
      AND NOT {ACTIVE_KEY_HELD_SQL}
      -- of several selected tasks sharing a while-active key, only the newest is queued
      AND NOT (tasks.unique_key IS NOT NULL AND tasks.unique_until IS NULL
               AND EXISTS (SELECT 1 FROM tasks sib WHERE sib.id = ANY(%(ids)s)
                   AND sib.id > tasks.id AND sib.name = tasks.name
                   AND sib.unique_key = tasks.unique_key AND sib.unique_until IS NULL
                   AND sib.status IN ('failed', 'cancelled')))
    RETURNING id, attempts, queue
), ev AS (
    INSERT INTO task_events (task_id, attempt, event, status)
    SELECT id, attempts, 'retried_manually', 'queued' FROM upd
)
SELECT * FROM upd
"""


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What became of one sent item: its task, whether that task was already there (a
    repeated key), and for a debounced send whether it folded into an open window's task."""

    id: int
    duplicate: bool
    debounced: bool = False
    folded_into: int | None = None


class SendRow(TypedDict):
    idx: int
    id: int
    inserted: bool
    queue: str | None
    wake_at: datetime | None
    notified: int


class ReportRow(TypedDict):
    idx: int
    id: int
    applied: bool
    new_status: str | None
    queue: str | None
    wake_at: datetime | None
    workflow_run_id: int | None
    name: str | None
    run_seconds: Any
    current_status: str | None
    same_lease: bool | None
    parent_id: int | None


class SweptRow(TypedDict):
    id: int
    status: str
    attempts: int
    worker_id: str | None
    queue: str
    error: Any
    reason: str
    workflow_run_id: int | None
    wake_at: datetime | None


class CancelledRow(TypedDict):
    id: int
    status: str
    attempts: int
    queue: str
    workflow_run_id: int | None


class RetriedRow(TypedDict):
    id: int
    attempts: int
    queue: str


def rows_json(items: Sequence[dict[str, Any]]) -> str:
    """Items for ``jsonb_to_recordset``, their null fields left out: a missing key reads as
    NULL just as a JSON null does, and most fields of a send are null (they were two thirds
    of the text the statement parses, and about a quarter of the send's database CPU)."""
    return dumps([{k: v for k, v in item.items() if v is not None} for item in items])


async def missing_parents(cur: Cursor, parent_ids: Sequence[int]) -> list[int]:
    """Which of ``parent_ids`` name no task, ascending."""
    await cur.execute("SELECT id FROM tasks WHERE id = ANY(%s)", (list(parent_ids),))
    found = {r["id"] for r in await cur.fetchall()}
    return sorted(set(parent_ids) - found)


async def insert(cur: Cursor, items: Sequence[dict[str, Any]]) -> list[SendRow]:
    """Insert a batch (``idx`` numbers each item) and NOTIFY its queues, in one statement.
    Rows refused by a unique key (idempotency or spawn key) come back ``inserted`` false."""
    keyed = any(i.get(k) is not None for i in items for k in UNIQUE_KEYS)
    await cur.execute(SEND_SQL if keyed else SEND_UNKEYED_SQL,
                      {"items": rows_json(items), "channel": CHANNEL})
    return cast(list[SendRow], await cur.fetchall())


async def insert_debounced(cur: Cursor, items: Sequence[dict[str, Any]]) -> list[SendRow]:
    """Insert debounced items (one per task name and ``debounce_key``), or fold each into its
    open window's task (latest args, later run_at); ``inserted`` false for a fold, whose
    ``id`` is then the task folded into. NOTIFYs its queues, in one statement."""
    await cur.execute(DEBOUNCE_SQL, {"items": rows_json(items), "channel": CHANNEL})
    return cast(list[SendRow], await cur.fetchall())


async def existing_ids(cur: Cursor, keys: Sequence[dict[str, Any]]) -> dict[int, int]:
    """For items refused as duplicates (``idx``, name, idempotency_key, parent_id, spawn_key,
    unique_key, unique_for): idx -> the id of the task already there."""
    await cur.execute(EXISTING_SQL, {"items": dumps(keys)})
    return {r["idx"]: r["id"] for r in await cur.fetchall()}


async def report(cur: Cursor, items: Sequence[dict[str, Any]], lock_ids: Sequence[int],
                 max_log: int = 65_536) -> list[ReportRow]:
    """Lock the workflow runs of tasks ``lock_ids``, then apply outcomes, and the logs they
    carry, fenced by lease token; each row says what happened to its item. ``max_log``:
    characters of an attempt's logs kept."""
    await cur.execute(REPORT_SQL, {"items": rows_json(items), "lock_ids": list(lock_ids),
                                   "max_log": max_log})
    return cast(list[ReportRow], await cur.fetchall())


async def sweep(cur: Cursor) -> list[SweptRow]:
    """End up to 1,000 attempts whose lease ran out or which ran past their timeout."""
    await cur.execute(SWEEP_SQL)
    return cast(list[SweptRow], await cur.fetchall())


async def fail_stuck(cur: Cursor) -> list[SweptRow]:
    """Fail (and retry per policy) up to 1,000 stuck attempts whose rule says "fail"."""
    await cur.execute(FAIL_STUCK_SQL)
    return cast(list[SweptRow], await cur.fetchall())


async def cancel(cur: Cursor, ids: Sequence[int]) -> list[CancelledRow]:
    """Cancel queued tasks and flag running ones; finished ones are left out of the answer."""
    await cur.execute(CANCEL_SQL, {"ids": list(ids)})
    return cast(list[CancelledRow], await cur.fetchall())


async def purge(cur: Cursor, queue: str) -> int:
    """Cancel every queued task of ``queue`` (history kept; running tasks untouched)."""
    await cur.execute(PURGE_SQL, {"queue": queue})
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def retry(cur: Cursor, task_id: int) -> RetriedRow | None:
    """Queue a failed or cancelled task again; None when it is in no such state (or absent)."""
    rows = await retry_many(cur, [task_id])
    return rows[0] if rows else None


async def retry_many(cur: Cursor, ids: Sequence[int]) -> list[RetriedRow]:
    """Queue again those of ``ids`` that are failed or cancelled (bulk retry)."""
    await cur.execute(RETRY_SQL, {"ids": list(ids)})
    return cast(list[RetriedRow], await cur.fetchall())

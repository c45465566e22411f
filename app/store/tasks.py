"""The task life cycle in SQL: send, claim, heartbeat, report, release, cancel, sweep."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from ..errors import ApiError, not_found
from ..jsonutil import dumps
from ..notifier import CHANNEL
from .notify import notify

TERMINAL = ("succeeded", "failed", "cancelled")

# Columns a worker gets with a claimed task, and a reader with a task.
CLAIM_COLUMNS = """id, name, queue, args, priority, attempts, max_retries, timeout_seconds,
    lease_token, lease_expires_at, parent_id, root_id, depth, workflow_run_id, workflow_node,
    run_at, created_at"""

TASK_COLUMNS = """id, name, queue, status, args, priority, run_at, attempts, max_retries,
    retry_delay_seconds, retry_backoff, retry_max_delay_seconds, timeout_seconds,
    idempotency_key, parent_id, root_id, depth, spawn_key, workflow_run_id, workflow_node,
    worker_id, lease_expires_at, cancel_requested, result, error, created_at, started_at,
    finished_at"""

# The delay before retry number ``attempts`` under the task's stored policy. The exponent is
# capped so that 1,000 retries cannot overflow float8 (which would wedge the sweep).
BACKOFF_SQL = """LEAST(t.retry_max_delay_seconds, CASE t.retry_backoff
        WHEN 'fixed' THEN t.retry_delay_seconds
        WHEN 'linear' THEN t.retry_delay_seconds * t.attempts
        ELSE t.retry_delay_seconds * power(2, LEAST(GREATEST(t.attempts - 1, 0), 60)) END)"""

SEND_SQL = """
WITH input AS MATERIALIZED (
    SELECT nextval('tasks_id_seq') AS id, x.*
    FROM jsonb_to_recordset(%(items)s::jsonb) AS x(
        idx int, name text, queue text, args jsonb, priority int, max_retries int,
        retry_delay_seconds float8, retry_backoff text, retry_max_delay_seconds float8,
        timeout_seconds float8, idempotency_key text, parent_id bigint, spawn_key text,
        delay_seconds float8, run_at timestamptz, workflow_run_id bigint, workflow_node text)
), ins AS (
    INSERT INTO tasks (id, name, queue, status, args, priority, run_at, max_retries,
        retry_delay_seconds, retry_backoff, retry_max_delay_seconds, timeout_seconds,
        idempotency_key, parent_id, root_id, depth, spawn_key, workflow_run_id, workflow_node)
    SELECT i.id, i.name, i.queue, 'queued', i.args, i.priority,
        COALESCE(i.run_at, now() + make_interval(secs => COALESCE(i.delay_seconds, 0))),
        i.max_retries, i.retry_delay_seconds, i.retry_backoff, i.retry_max_delay_seconds,
        i.timeout_seconds, i.idempotency_key, i.parent_id, COALESCE(p.root_id, i.id),
        COALESCE(p.depth + 1, 0), i.spawn_key, i.workflow_run_id, i.workflow_node
    FROM input i LEFT JOIN tasks p ON p.id = i.parent_id
    ORDER BY i.idx
    ON CONFLICT DO NOTHING
    RETURNING id, queue, CASE WHEN run_at > now() THEN run_at END AS wake_at
), note AS (
    -- One NOTIFY per queue, in this statement (no extra round trip): ready now, or the
    -- earliest time something becomes ready (the payload format of notifier.encode).
    SELECT pg_notify(%(channel)s, CASE WHEN bool_or(wake_at IS NULL) THEN queue
        ELSE queue || E'\t' || round(extract(epoch FROM min(wake_at))::numeric, 3)::text END)
    FROM ins GROUP BY queue
)
SELECT i.idx, i.id, ins.id IS NOT NULL AS inserted, ins.queue, ins.wake_at,
    (SELECT count(*) FROM note) AS notified
FROM input i LEFT JOIN ins ON ins.id = i.id
ORDER BY i.idx
"""

EXISTING_SQL = """
SELECT x.idx, t.id
FROM jsonb_to_recordset(%(items)s::jsonb) AS x(idx int, name text, idempotency_key text,
    parent_id bigint, spawn_key text)
JOIN tasks t ON (x.idempotency_key IS NOT NULL AND t.name = x.name
                 AND t.idempotency_key = x.idempotency_key)
             OR (x.spawn_key IS NOT NULL AND t.parent_id = x.parent_id
                 AND t.spawn_key = x.spawn_key)
"""

# Queues come as names with caps, plus LIKE patterns expanded here to the queues that exist,
# leaving out ``skip`` (queues with a limit or paused, which the caller listed or left out).
# Claims and heartbeats commit without waiting for the WAL flush. Losing one in a database
# crash is safe: the task is simply still queued (or its lease shorter), the worker's later
# report is refused as stale, and the task runs again (execution is at-least-once). Sends
# and reports, whose loss would lose a task or an outcome, keep synchronous commit. A later
# synchronous commit flushes the WAL up to itself, so a durable report implies its claim.
ASYNC_COMMIT = "SELECT set_config('synchronous_commit', 'off', true)"

CLAIM_SQL = f"""
WITH q AS (
    SELECT * FROM unnest(%(queues)s::text[], %(caps)s::int[]) AS q(name, cap)
    UNION ALL
    SELECT name, %(n)s FROM queues
    WHERE name LIKE ANY(%(patterns)s::text[])
      AND name <> ALL(%(queues)s::text[]) AND name <> ALL(%(skip)s::text[])
), cand AS (
    SELECT c.id, c.priority, c.run_at FROM q CROSS JOIN LATERAL (
        SELECT t.id, t.priority, t.run_at FROM tasks t
        WHERE t.status = 'queued' AND t.queue = q.name AND t.run_at <= now()
          AND (%(names)s::text[] IS NULL OR t.name = ANY(%(names)s::text[]))
        ORDER BY t.priority DESC, t.run_at, t.id
        LIMIT LEAST(q.cap, %(n)s)
        FOR UPDATE SKIP LOCKED
    ) c
    ORDER BY c.priority DESC, c.run_at, c.id
    LIMIT %(n)s
), upd AS (
    UPDATE tasks t SET status = 'running', attempts = t.attempts + 1,
        worker_id = %(worker_id)s, lease_token = gen_random_uuid(),
        lease_expires_at = now() + make_interval(secs => %(lease)s),
        started_at = now(),
        timeout_at = now() + make_interval(secs => t.timeout_seconds)
    FROM cand WHERE t.id = cand.id
    RETURNING t.*
), ev AS (
    INSERT INTO task_events (task_id, attempt, event, status, worker_id)
    SELECT id, attempts, 'claimed', 'running', worker_id FROM upd
)
SELECT {CLAIM_COLUMNS} FROM upd, ({ASYNC_COMMIT}) AS async_commit
ORDER BY priority DESC, run_at, id
"""

HEARTBEAT_SQL = f"""
WITH hb AS (
    SELECT * FROM jsonb_to_recordset(%(items)s::jsonb) AS x(id bigint, lease_token uuid)
), upd AS (
    UPDATE tasks t SET lease_expires_at = now() + make_interval(secs => %(lease)s)
    FROM hb WHERE t.id = hb.id AND t.lease_token = hb.lease_token AND t.status = 'running'
    RETURNING t.id, t.cancel_requested, t.lease_expires_at
)
SELECT hb.id, upd.id IS NOT NULL AS held, COALESCE(upd.cancel_requested, false) AS cancel,
       upd.lease_expires_at
FROM hb LEFT JOIN upd ON upd.id = hb.id, ({ASYNC_COMMIT}) AS async_commit
"""

# One statement applies a batch of outcomes. A row changes only while it is running under
# the reported lease token; everything else is answered from its current state.
REPORT_SQL = f"""
WITH x AS (
    SELECT * FROM jsonb_to_recordset(%(items)s::jsonb) AS x(idx int, id bigint,
        lease_token uuid, outcome text, result jsonb, error jsonb, retry_delay_seconds float8)
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
    WHERE t.id = x.id AND t.lease_token = x.lease_token AND t.status = 'running'
    RETURNING t.id, t.status, t.attempts, t.worker_id, t.queue, t.error, t.run_at,
        t.workflow_run_id, t.name, EXTRACT(EPOCH FROM now() - t.started_at) AS run_seconds
), ev AS (
    INSERT INTO task_events (task_id, attempt, event, status, worker_id, error)
    SELECT id, attempts, CASE WHEN status = 'queued' THEN 'retry_scheduled' ELSE status END,
        status, worker_id, error
    FROM upd
)
SELECT x.idx, x.id, upd.id IS NOT NULL AS applied, upd.status AS new_status, upd.queue,
    CASE WHEN upd.status = 'queued' AND upd.run_at > now() THEN upd.run_at END AS wake_at,
    upd.workflow_run_id, upd.name, upd.run_seconds, cur.status AS current_status,
    (cur.lease_token = x.lease_token) AS same_lease
FROM x
LEFT JOIN upd ON upd.id = x.id
LEFT JOIN tasks cur ON cur.id = x.id
ORDER BY x.idx
"""

LOGS_SQL = """
INSERT INTO task_logs (task_id, attempt, output)
SELECT x.id, t.attempts, x.output
FROM jsonb_to_recordset(%(items)s::jsonb) AS x(id bigint, output text)
JOIN tasks t ON t.id = x.id
ON CONFLICT (task_id, attempt) DO UPDATE SET output = EXCLUDED.output, at = now()
"""

RELEASE_SQL = """
WITH x AS (
    SELECT * FROM jsonb_to_recordset(%(items)s::jsonb) AS x(id bigint, lease_token uuid)
), upd AS (
    UPDATE tasks t SET status = 'queued', attempts = t.attempts - 1, run_at = now(),
        worker_id = NULL, lease_token = NULL, lease_expires_at = NULL, timeout_at = NULL
    FROM x WHERE t.id = x.id AND t.lease_token = x.lease_token AND t.status = 'running'
    RETURNING t.id, t.attempts, t.queue, %(worker_id)s::text AS worker_id
), ev AS (
    INSERT INTO task_events (task_id, attempt, event, status, worker_id)
    SELECT id, attempts + 1, 'released', 'queued', worker_id FROM upd
)
SELECT id, queue FROM upd
"""

# Leases that ran out (the worker died) and attempts past their timeout, in one sweep.
SWEEP_SQL = f"""
WITH due AS (
    SELECT id, CASE WHEN timeout_at <= now() THEN 'timed_out' ELSE 'lost' END AS reason
    FROM tasks
    WHERE status = 'running' AND (lease_expires_at <= now() OR timeout_at <= now())
    ORDER BY id LIMIT 1000
    FOR UPDATE SKIP LOCKED
), upd AS (
    UPDATE tasks t SET
        status = CASE WHEN t.cancel_requested THEN 'cancelled'
                      WHEN t.attempts <= t.max_retries THEN 'queued' ELSE 'failed' END,
        run_at = CASE WHEN due.reason = 'lost' THEN now()
                      ELSE now() + make_interval(secs => {BACKOFF_SQL}) END,
        error = jsonb_build_object(
            'type', CASE WHEN due.reason = 'lost' THEN 'LeaseExpired' ELSE 'TimeoutError' END,
            'message', CASE WHEN due.reason = 'lost'
                THEN 'the worker stopped heartbeating; its lease ran out'
                ELSE format('the attempt ran past its timeout of %%s seconds', t.timeout_seconds)
                END),
        finished_at = CASE WHEN t.cancel_requested OR t.attempts > t.max_retries
                           THEN now() END,
        lease_token = NULL, lease_expires_at = NULL, timeout_at = NULL
    FROM due WHERE t.id = due.id
    RETURNING t.id, t.status, t.attempts, t.worker_id, t.queue, t.error, due.reason,
        t.workflow_run_id,
        CASE WHEN t.status = 'queued' AND t.run_at > now() THEN t.run_at END AS wake_at
), ev AS (
    INSERT INTO task_events (task_id, attempt, event, status, worker_id, error)
    SELECT id, attempts, reason, status, worker_id, error FROM upd
)
SELECT * FROM upd
"""

CANCEL_SQL = """
WITH upd AS (
    UPDATE tasks SET
        status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,
        cancel_requested = true,
        finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END
    WHERE id = ANY(%(ids)s) AND status IN ('queued', 'running')
    RETURNING id, status, attempts, queue, workflow_run_id
), ev AS (
    INSERT INTO task_events (task_id, attempt, event, status)
    SELECT id, attempts, CASE WHEN status = 'cancelled' THEN 'cancelled'
        ELSE 'cancel_requested' END, status FROM upd
)
SELECT * FROM upd
"""

RETRY_SQL = """
WITH upd AS (
    UPDATE tasks SET status = 'queued', run_at = now(), finished_at = NULL,
        cancel_requested = false, lease_token = NULL, worker_id = NULL,
        max_retries = GREATEST(max_retries, attempts)
    WHERE id = %(id)s AND status IN ('failed', 'cancelled')
    RETURNING id, attempts, queue
), ev AS (
    INSERT INTO task_events (task_id, attempt, event, status)
    SELECT id, attempts, 'retried_manually', 'queued' FROM upd
)
SELECT * FROM upd
"""


@dataclass(frozen=True)
class SendOutcome:
    id: int
    duplicate: bool


async def send(conn: AsyncConnection, items: Sequence[dict[str, Any]]) -> list[SendOutcome]:
    """Insert a batch in the caller's transaction; duplicates come back with their ids."""
    for idx, item in enumerate(items):
        item["idx"] = idx
    payload = dumps(items)
    parent_ids = {i["parent_id"] for i in items if i.get("parent_id") is not None}
    async with conn.cursor() as cur:
        if parent_ids:
            await cur.execute("SELECT id FROM tasks WHERE id = ANY(%s)", (list(parent_ids),))
            found = {r["id"] for r in await cur.fetchall()}
            missing = sorted(parent_ids - found)
            if missing:
                raise ApiError(422, "unknown_parent", f"parent task {missing[0]} does not exist",
                               {"parent_ids": missing})
        await cur.execute(SEND_SQL, {"items": payload, "channel": CHANNEL})
        rows = await cur.fetchall()
        ids = [r["id"] for r in rows]
        dup_idx = [r["idx"] for r in rows if not r["inserted"]]
        if dup_idx:
            keys = [
                {k: items[i].get(k) for k in ("idx", "name", "idempotency_key", "parent_id",
                                               "spawn_key")}
                for i in dup_idx
            ]
            await cur.execute(EXISTING_SQL, {"items": dumps(keys)})
            for r in await cur.fetchall():
                ids[r["idx"]] = r["id"]
    dups = set(dup_idx)
    return [SendOutcome(id=ids[i], duplicate=i in dups) for i in range(len(items))]


async def queue_settings(conn: AsyncConnection, queues: Sequence[str],
                         patterns: Sequence[str]) -> list[dict[str, Any]]:
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT name, concurrency_limit, paused FROM queues "
            "WHERE name = ANY(%s) OR name LIKE ANY(%s) ORDER BY name",
            (list(queues), list(patterns)),
        )
        return await cur.fetchall()


async def claim(
    pool: AsyncConnectionPool,
    *,
    worker_id: str,
    queues: Sequence[str],
    patterns: Sequence[str],
    task_names: Sequence[str] | None,
    limit: int,
    lease_seconds: float,
    special: dict[str, dict[str, Any]] | None = None,
    globs: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Lease up to ``limit`` ready tasks in one transaction, honouring queue limits.

    ``special`` (from :class:`QueueSettingsCache`, with the claim's glob ``globs``) saves the
    settings query: then a claim on queues without limits is a single statement.
    """
    async with pool.connection() as conn:
        if special is None:
            settings = await queue_settings(conn, queues, patterns)
            expand: list[str] = []
            skip: list[str] = []
        else:
            exact = set(queues)
            settings = [r for name, r in special.items()
                        if name in exact or any(fnmatchcase(name, g) for g in globs)]
            expand, skip = list(patterns), sorted(special)
        names = set(queues) | {s["name"] for s in settings}
        paused = {s["name"] for s in settings if s["paused"]}
        limited = sorted(s["name"] for s in settings
                         if s["concurrency_limit"] is not None and s["name"] not in paused)
        caps = {name: limit for name in names if name not in paused}
        if not limited and special is not None:
            # A single statement: autocommit saves the COMMIT round trip.
            await conn.set_autocommit(True)
        try:
            return await _claim_in(conn, caps, limited, expand, sorted(set(skip) | names),
                                   task_names, limit, worker_id, lease_seconds)
        finally:
            if conn.autocommit:
                await conn.set_autocommit(False)


async def _claim_in(conn: AsyncConnection, caps: dict[str, int], limited: list[str],
                    expand: list[str], skip: list[str], task_names: Sequence[str] | None,
                    limit: int, worker_id: str, lease_seconds: float) -> list[dict[str, Any]]:
    async with conn.cursor() as cur:
        if limited:
            # Serialise claimers of a limited queue on its row, then count what runs.
            await cur.execute(
                "SELECT name, concurrency_limit FROM queues WHERE name = ANY(%s) "
                "ORDER BY name FOR UPDATE", (limited,))
            limits = {r["name"]: r["concurrency_limit"] for r in await cur.fetchall()}
            await cur.execute(
                "SELECT queue, count(*) AS n FROM tasks WHERE status = 'running' "
                "AND queue = ANY(%s) GROUP BY queue", (limited,))
            running = {r["queue"]: r["n"] for r in await cur.fetchall()}
            for name, cap in limits.items():
                if cap is not None:
                    caps[name] = max(0, min(limit, cap - running.get(name, 0)))
        caps = {k: v for k, v in caps.items() if v > 0}
        if not caps and not expand:
            return []
        order = sorted(caps)
        await cur.execute(CLAIM_SQL, {
            "queues": order, "caps": [caps[q] for q in order],
            "patterns": expand, "skip": skip,
            "names": list(task_names) if task_names else None,
            "n": limit, "worker_id": worker_id, "lease": lease_seconds,
        })
        return await cur.fetchall()


async def heartbeat(pool: AsyncConnectionPool, items: Sequence[dict[str, Any]],
                    lease_seconds: float) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        await conn.set_autocommit(True)  # one statement: no separate COMMIT round trip
        try:
            async with conn.cursor() as cur:
                await cur.execute(HEARTBEAT_SQL, {"items": dumps(items), "lease": lease_seconds})
                return await cur.fetchall()
        finally:
            await conn.set_autocommit(False)


async def report(pool: AsyncConnectionPool, items: Sequence[dict[str, Any]],
                 logs: Sequence[dict[str, Any]],
                 limited: Collection[str] | None = None) -> list[dict[str, Any]]:
    """Apply a batch of outcomes fenced by lease token; the answer says what each did.

    Waiting claims are woken for retries, and for finished tasks only in queues with a
    concurrency limit (``limited``; None: every queue), where a slot has just come free.
    Waking every idle worker on each completion would have them all query for nothing.
    """
    from . import workflow_engine, workflows  # they import this module

    for idx, item in enumerate(items):
        item["idx"] = idx
    async with pool.connection() as conn, conn.cursor() as cur:
        if logs:
            await cur.execute(LOGS_SQL, {"items": dumps(logs)})
        # Workflow runs are locked before their tasks (the advancer's lock order), and
        # advanced in this same transaction: a finished node queues its successors atomically.
        runs = await workflows.lock_runs_of_tasks(cur, [i["id"] for i in items])
        await cur.execute(REPORT_SQL, {"items": dumps(items)})
        rows = await cur.fetchall()
        if runs:
            await workflow_engine.after_report(cur, rows)
        await notify(cur, ((r["queue"], r["wake_at"]) for r in rows if r["applied"] and (
            limited is None or r["new_status"] == "queued" or r["queue"] in limited)))
        return rows


async def release(pool: AsyncConnectionPool, worker_id: str,
                  items: Sequence[dict[str, Any]]) -> list[int]:
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(RELEASE_SQL, {"items": dumps(items), "worker_id": worker_id})
        rows = await cur.fetchall()
        await notify(cur, ((r["queue"], None) for r in rows))
        return [r["id"] for r in rows]


async def sweep(pool: AsyncConnectionPool) -> list[dict[str, Any]]:
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(SWEEP_SQL)
        rows = await cur.fetchall()
        await notify(cur, ((r["queue"], r["wake_at"]) for r in rows if r["status"] == "queued"))
        return rows


async def cancel(conn: AsyncConnection, ids: Sequence[int]) -> list[dict[str, Any]]:
    async with conn.cursor() as cur:
        await cur.execute(CANCEL_SQL, {"ids": list(ids)})
        return await cur.fetchall()


async def retry(pool: AsyncConnectionPool, task_id: int) -> dict[str, Any] | None:
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(RETRY_SQL, {"id": task_id})
        row = await cur.fetchone()
        if row:
            await notify(cur, [(row["queue"], None)])
        return row


async def get(conn: AsyncConnection, task_id: int) -> dict[str, Any]:
    async with conn.cursor() as cur:
        await cur.execute(f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = %s", (task_id,))
        row = await cur.fetchone()
        if row is None:
            raise not_found("task", task_id)
        return row


async def history(conn: AsyncConnection, task_id: int) -> list[dict[str, Any]]:
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT attempt, event, status, worker_id, error, at FROM task_events "
            "WHERE task_id = %s ORDER BY id", (task_id,))
        return await cur.fetchall()


async def logs(conn: AsyncConnection, task_id: int) -> list[dict[str, Any]]:
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT attempt, output, at FROM task_logs WHERE task_id = %s ORDER BY attempt",
            (task_id,))
        return await cur.fetchall()


LIST_FILTERS = ("status", "queue", "name", "root_id", "parent_id", "workflow_run_id")


async def list_tasks(conn: AsyncConnection, *, filters: dict[str, Any], before_id: int | None,
                     limit: int) -> list[dict[str, Any]]:
    """Newest first; ``before_id`` is the cursor (the last id of the previous page)."""
    where = []
    params: dict[str, Any] = {"limit": limit}
    for key in LIST_FILTERS:
        if filters.get(key) is not None:
            where.append(f"{key} = %({key})s")
            params[key] = filters[key]
    if before_id is not None:
        where.append("id < %(before_id)s")
        params["before_id"] = before_id
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    async with conn.cursor() as cur:
        await cur.execute(
            f"SELECT {TASK_COLUMNS} FROM tasks {clause} ORDER BY id DESC LIMIT %(limit)s", params)
        return await cur.fetchall()

"""Statements on ``task_waits`` and the task rows they hold: suspend an attempt, resume a
waiting task, find waits past their timeout (docs/durable.md).

Both ends are fenced by the rows themselves: a suspend changes a task only while it runs
under the reported lease token (like every outcome), and a resume deletes the wait row, so
of two resolutions of one wait (an event and its timeout, two approvals) exactly one finds
the row and queues the task.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypedDict, cast

from psycopg import AsyncConnection, AsyncCursor

from .sql import LOGS_UPSERT_SQL, OUTCOME_ROWS_SQL, dumps

Conn = AsyncConnection[Any]
Cursor = AsyncCursor[Any]

# An attempt ends suspended: a sleep queues the task again at its due time, any other wait
# leaves it ``waiting`` with a ``task_waits`` row; the attempt is given back (attempts - 1,
# like a release), and a task whose cancel was asked ends cancelled instead. The rows come
# back shaped as ``store.tasks.report``'s, so one verdict rule answers both.
SUSPEND_SQL = f"""
WITH x AS (
    SELECT * FROM jsonb_to_recordset(%(items)s::jsonb) AS x(idx int, id bigint,
        lease_token uuid, kind text, step text, key text, until timestamptz,
        seconds float8, timeout_seconds float8, since_seconds float8, detail jsonb, logs text)
), held AS (
    SELECT t.id, t.worker_id FROM tasks t JOIN x ON x.id = t.id
), upd AS (
    UPDATE tasks t SET
        status = CASE WHEN t.cancel_requested THEN 'cancelled'
                      WHEN x.kind = 'sleep' THEN 'queued' ELSE 'waiting' END,
        attempts = CASE WHEN t.cancel_requested THEN t.attempts ELSE t.attempts - 1 END,
        run_at = CASE WHEN x.kind = 'sleep' AND NOT t.cancel_requested
                      THEN COALESCE(x.until, now() + make_interval(secs => x.seconds))
                      ELSE t.run_at END,
        finished_at = CASE WHEN t.cancel_requested THEN now() END,
        error = CASE WHEN t.cancel_requested THEN jsonb_build_object('type', 'Cancelled',
            'message', format('task %%s was cancelled while it suspended', t.id)) END,
        worker_id = CASE WHEN t.cancel_requested THEN t.worker_id END,
        -- The token stays (as after a report): a repeated report is answered already_recorded.
        lease_expires_at = NULL, timeout_at = NULL
    FROM x
    WHERE t.id = x.id AND t.lease_token = x.lease_token AND t.status = 'running'
    RETURNING t.id, t.status, t.attempts, t.queue, t.run_at, t.workflow_run_id, t.name,
        EXTRACT(EPOCH FROM now() - t.started_at) AS run_seconds
), w AS (
    INSERT INTO task_waits (task_id, step, kind, key, detail, deadline, since)
    SELECT x.id, x.step, x.kind, x.key, x.detail,
        now() + make_interval(secs => x.timeout_seconds),
        now() - make_interval(secs => x.since_seconds)
    FROM upd JOIN x ON x.id = upd.id WHERE upd.status = 'waiting'
    ON CONFLICT (task_id) DO UPDATE SET step = EXCLUDED.step, kind = EXCLUDED.kind,
        key = EXCLUDED.key, detail = EXCLUDED.detail, deadline = EXCLUDED.deadline,
        since = EXCLUDED.since, created_at = now()
), slept AS (
    -- The sleep is recorded now: when the task runs again (at its due time), it returns.
    INSERT INTO task_steps (task_id, name, kind, position, result, attempt, started_at)
    SELECT upd.id, x.step, 'sleep',
        (SELECT count(*) FROM task_steps s WHERE s.task_id = upd.id),
        jsonb_build_object('until', upd.run_at), upd.attempts + 1, now()
    FROM upd JOIN x ON x.id = upd.id WHERE upd.status = 'queued'
    ON CONFLICT (task_id, name) DO NOTHING
), ev AS (
    INSERT INTO task_events (task_id, attempt, event, status, worker_id)
    SELECT upd.id, CASE WHEN upd.status = 'cancelled' THEN upd.attempts ELSE upd.attempts + 1
        END, CASE WHEN upd.status = 'cancelled' THEN 'cancelled' ELSE 'suspended' END,
        upd.status, held.worker_id
    FROM upd JOIN held ON held.id = upd.id
), lg AS (
    -- The run's output and a line saying where it stopped; the run that resumes the
    -- attempt appends its own.
    INSERT INTO task_logs (task_id, attempt, output)
    SELECT upd.id, CASE WHEN upd.status = 'cancelled' THEN upd.attempts
        ELSE upd.attempts + 1 END,
        COALESCE(x.logs, '') || format(E'[suspended: waits for %%s%%s]\n', x.kind,
            COALESCE(' ' || x.key, ''))
    FROM upd JOIN x ON x.id = upd.id
    {LOGS_UPSERT_SQL}
)
{OUTCOME_ROWS_SQL}"""

# Resolve waits: each matched wait row is deleted, its result stored as the wait's step, its
# task queued again at once. ``kind``/``key`` null: any wait of that task.
RESUME_SQL = """
WITH x AS (
    SELECT DISTINCT ON (task_id) * FROM jsonb_to_recordset(%(items)s::jsonb)
        AS x(task_id bigint, result jsonb, kind text, key text)
    ORDER BY task_id
), w AS (
    DELETE FROM task_waits w USING x
    WHERE w.task_id = x.task_id AND (x.kind IS NULL OR w.kind = x.kind)
      AND (x.key IS NULL OR w.key = x.key)
    RETURNING w.task_id, w.step, w.kind, w.created_at, x.result
), upd AS (
    UPDATE tasks t SET status = 'queued', run_at = now()
    FROM w WHERE t.id = w.task_id AND t.status = 'waiting'
    RETURNING t.id, t.queue, t.attempts
), st AS (
    INSERT INTO task_steps (task_id, name, kind, position, result, attempt, started_at)
    SELECT upd.id, w.step, w.kind,
        (SELECT count(*) FROM task_steps s WHERE s.task_id = upd.id),
        w.result, upd.attempts + 1, w.created_at
    FROM upd JOIN w ON w.task_id = upd.id
    ON CONFLICT (task_id, name) DO NOTHING
), ev AS (
    INSERT INTO task_events (task_id, attempt, event, status)
    SELECT id, attempts + 1, 'resumed', 'queued' FROM upd
)
SELECT upd.id, upd.queue, w.kind, w.step FROM upd JOIN w ON w.task_id = upd.id
ORDER BY upd.id
"""


class WaitRow(TypedDict):
    task_id: int
    step: str
    kind: str
    key: str | None
    detail: Any
    deadline: datetime | None
    since: datetime | None
    created_at: datetime


class ResumedRow(TypedDict):
    id: int
    queue: str
    kind: str
    step: str


WAIT_COLUMNS = "task_id, step, kind, key, detail, deadline, since, created_at"


async def suspend(cur: Cursor, items: Sequence[dict[str, Any]],
                  max_log: int = 65_536) -> list[dict[str, Any]]:
    """End attempts suspended (fenced by lease token); rows shaped as ``tasks.report``'s.
    ``max_log``: characters of an attempt's logs kept."""
    await cur.execute(SUSPEND_SQL, {"items": dumps(items), "max_log": max_log})
    return cast(list[dict[str, Any]], await cur.fetchall())


async def resume(cur: Cursor, items: Sequence[dict[str, Any]]) -> list[ResumedRow]:
    """Resolve waits (``task_id``, ``result``, optional ``kind``/``key``); only the tasks
    actually queued again come back."""
    if not items:
        return []
    await cur.execute(RESUME_SQL, {"items": dumps(items)})
    return cast(list[ResumedRow], await cur.fetchall())


async def of_tasks(cur: Cursor, task_ids: Sequence[int]) -> list[WaitRow]:
    """The waits of these tasks (those that are waiting)."""
    await cur.execute(f"SELECT {WAIT_COLUMNS} FROM task_waits WHERE task_id = ANY(%s) "
                      "ORDER BY task_id", (list(task_ids),))
    return cast(list[WaitRow], await cur.fetchall())


async def of_task(conn: Conn, task_id: int) -> WaitRow | None:
    """What the task waits for, if it waits."""
    async with conn.cursor() as cur:
        await cur.execute(f"SELECT {WAIT_COLUMNS} FROM task_waits WHERE task_id = %s",
                          (task_id,))
        return cast(WaitRow | None, await cur.fetchone())


async def on_key(cur: Cursor, kind: str, key: str) -> list[int]:
    """The tasks waiting on ``kind``/``key`` now (an event's key, say)."""
    await cur.execute(
        "SELECT w.task_id FROM task_waits w JOIN tasks t ON t.id = w.task_id "
        "WHERE w.kind = %s AND w.key = %s AND t.status = 'waiting' ORDER BY w.task_id",
        (kind, key))
    return [r["task_id"] for r in await cur.fetchall()]


async def lock_timed_out(cur: Cursor, limit: int) -> list[WaitRow]:
    """Waits past their timeout, locked (skipping those another replica resolves now)."""
    await cur.execute(
        f"SELECT {WAIT_COLUMNS} FROM task_waits WHERE deadline <= now() "
        "ORDER BY deadline LIMIT %s FOR UPDATE SKIP LOCKED", (limit,))
    return cast(list[WaitRow], await cur.fetchall())


async def drop(cur: Cursor, task_ids: Sequence[int]) -> None:
    """Forget the waits of tasks that stopped waiting otherwise (cancelled)."""
    if task_ids:
        await cur.execute("DELETE FROM task_waits WHERE task_id = ANY(%s)", (list(task_ids),))

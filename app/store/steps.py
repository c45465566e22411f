"""Statements on ``task_steps``: the finished steps of durable tasks (docs/durable.md).

A step is written once per task and name, and only while the writer holds the task's current
lease (the ``FOR SHARE`` row lock orders the write against a sweep or report that would end
the lease: whichever commits first wins, and a stale attempt writes nothing).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict, cast

from psycopg import AsyncConnection, AsyncCursor

from .sql import dumps

Conn = AsyncConnection[Any]
Cursor = AsyncCursor[Any]

STEP_COLUMNS = "name, kind, fn, position, result, attempt, started_at, finished_at"

RECORD_SQL = f"""
WITH t AS (
    SELECT id, attempts FROM tasks
    WHERE id = %(id)s AND lease_token = %(token)s AND status = 'running'
    FOR SHARE
), ins AS (
    INSERT INTO task_steps (task_id, name, kind, fn, position, result, attempt, started_at,
        finished_at)
    SELECT t.id, %(name)s, %(kind)s, %(fn)s,
        (SELECT count(*) FROM task_steps s WHERE s.task_id = t.id),
        %(result)s::jsonb, t.attempts, now() - make_interval(secs => %(duration)s), now()
    FROM t
    ON CONFLICT (task_id, name) DO NOTHING
    RETURNING {STEP_COLUMNS}
)
SELECT (SELECT count(*) FROM t) > 0 AS held, EXISTS (SELECT 1 FROM ins) AS inserted,
    s.kind AS existing_kind, s.fn AS existing_fn, s.result AS existing_result
FROM (SELECT 1) AS one
LEFT JOIN task_steps s ON s.task_id = %(id)s AND s.name = %(name)s
"""


class StepRow(TypedDict):
    name: str
    kind: str
    fn: str | None
    position: int
    result: Any
    attempt: int
    started_at: datetime | None
    finished_at: datetime


class RecordRow(TypedDict):
    held: bool  # the lease token was current
    inserted: bool  # the step was written now
    # The step already there (written earlier), as the statement's snapshot saw it.
    existing_kind: str | None
    existing_fn: str | None
    existing_result: Any


async def record(cur: Cursor, task_id: int, lease_token: str, name: str, kind: str,
                 fn: str | None, result: Any, duration_seconds: float) -> RecordRow:
    """Write a step under a lease, unless the name is taken; say which happened."""
    await cur.execute(RECORD_SQL, {"id": task_id, "token": lease_token, "name": name,
                                   "kind": kind, "fn": fn, "result": dumps(result),
                                   "duration": duration_seconds})
    return cast(RecordRow, await cur.fetchone())


async def of_task(conn: Conn, task_id: int) -> list[StepRow]:
    """The task's steps in the order they were first written."""
    async with conn.cursor() as cur:
        await cur.execute(f"SELECT {STEP_COLUMNS} FROM task_steps WHERE task_id = %s "
                          "ORDER BY position, finished_at, name", (task_id,))
        return cast(list[StepRow], await cur.fetchall())

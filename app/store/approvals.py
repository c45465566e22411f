"""Approvals in SQL (statements only). An approval is a wait of kind ``approval`` (the
durable core's ``task_waits`` row, its question in ``detail``); its decision is the result of
the step the wait fills (a ``task_steps`` row of kind ``approval``). No table of its own."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

from psycopg import AsyncConnection, AsyncCursor

KIND = "approval"

PENDING_COLUMNS = """w.task_id, w.step, w.detail, w.deadline, w.created_at AS since,
    t.name AS task_name, t.queue, t.root_id, t.workflow_run_id"""


class PendingRow(TypedDict):
    task_id: int
    step: str
    detail: dict[str, Any] | None
    deadline: datetime | None
    since: datetime
    task_name: str
    queue: str
    root_id: int
    workflow_run_id: int | None


class DecisionRow(TypedDict):
    step: str
    result: Any
    finished_at: datetime


async def pending(conn: AsyncConnection, *, before_id: int | None, limit: int,
                  queue: str | None = None) -> list[PendingRow]:
    """Tasks waiting for an approval, newest task first (the waits' ``(kind, key)`` index)."""
    async with conn.cursor() as cur:
        await cur.execute(
            f"""SELECT {PENDING_COLUMNS} FROM task_waits w JOIN tasks t ON t.id = w.task_id
                WHERE w.kind = %(kind)s AND t.status = 'waiting' AND w.task_id < %(before)s
                  AND (%(queue)s::text IS NULL OR t.queue = %(queue)s)
                ORDER BY w.task_id DESC LIMIT %(limit)s""",
            {"kind": KIND, "before": before_id or 2**63 - 1, "limit": limit, "queue": queue})
        return await cur.fetchall()  # type: ignore[return-value]


async def pending_of(cur: AsyncCursor[Any], task_id: int) -> PendingRow | None:
    """The approval ``task_id`` waits for now, if it waits for one."""
    await cur.execute(
        f"""SELECT {PENDING_COLUMNS} FROM task_waits w JOIN tasks t ON t.id = w.task_id
            WHERE w.task_id = %s AND w.kind = %s AND t.status = 'waiting'""", (task_id, KIND))
    return await cur.fetchone()  # type: ignore[return-value]


async def last_decision(cur: AsyncCursor[Any], task_id: int) -> DecisionRow | None:
    """The latest approval step ``task_id`` recorded (its decision), if any."""
    await cur.execute(
        """SELECT name AS step, result, finished_at FROM task_steps
           WHERE task_id = %s AND kind = %s ORDER BY position DESC LIMIT 1""", (task_id, KIND))
    return await cur.fetchone()  # type: ignore[return-value]


async def decisions(conn: AsyncConnection, task_id: int) -> list[DecisionRow]:
    """Every approval step of a task, in the order it was decided."""
    async with conn.cursor() as cur:
        await cur.execute(
            """SELECT name AS step, result, finished_at FROM task_steps
               WHERE task_id = %s AND kind = %s ORDER BY position""", (task_id, KIND))
        return await cur.fetchall()  # type: ignore[return-value]


async def task_status(cur: AsyncCursor[Any], task_id: int) -> str | None:
    await cur.execute("SELECT status FROM tasks WHERE id = %s", (task_id,))
    row = await cur.fetchone()
    return None if row is None else str(row["status"])

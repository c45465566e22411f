"""The ``workflow_handlers`` table: which finished run has had its handler queued.

One row per run (its primary key), inserted in the transaction that finishes the run; a
second insert for the same run does nothing, so no path can queue a run's handler twice.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, AsyncCursor


async def claim(cur: AsyncCursor, run_id: int, kind: str) -> bool:
    """True when this transaction is the first to queue the run's handler."""
    await cur.execute(
        "INSERT INTO workflow_handlers (run_id, kind) VALUES (%s, %s) "
        "ON CONFLICT (run_id) DO NOTHING RETURNING run_id", (run_id, kind))
    return await cur.fetchone() is not None


async def set_task(cur: AsyncCursor, run_id: int, task_id: int) -> None:
    await cur.execute("UPDATE workflow_handlers SET task_id = %s WHERE run_id = %s",
                      (task_id, run_id))


async def finished_run(cur: AsyncCursor, run_id: int) -> dict[str, Any] | None:
    """What a handler is told of a finished run, and the handlers its definition declares
    (``handlers``: ``{"on_failure": spec, "on_success": spec}`` or None)."""
    await cur.execute(
        "SELECT id, workflow_name, status, reason, error, args, queue, priority, "
        "definition->'handlers' AS handlers FROM workflow_runs WHERE id = %s", (run_id,))
    return await cur.fetchone()


async def of_run(conn: AsyncConnection, run_id: int) -> dict[str, Any] | None:
    """The run's queued handler (``kind``, ``task_id``, ``created_at``), if any."""
    async with conn.cursor() as cur:
        await cur.execute("SELECT kind, task_id, created_at FROM workflow_handlers "
                          "WHERE run_id = %s", (run_id,))
        return await cur.fetchone()


async def known_tasks(cur: AsyncCursor, names: list[str]) -> set[str]:
    """Which of ``names`` a worker registered (``task_definitions``)."""
    if not names:
        return set()
    await cur.execute("SELECT name FROM task_definitions WHERE name = ANY(%s)", (names,))
    return {r["name"] for r in await cur.fetchall()}

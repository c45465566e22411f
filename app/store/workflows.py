"""Workflow definitions, runs and the run's channel, in SQL (statements only).

The node rows of a run are in ``workflow_nodes``; what a run does next is decided in
``app/engine/advance.py``. Lock order everywhere: the run row first (``FOR UPDATE``), then
task rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypedDict

from psycopg import AsyncConnection, AsyncCursor

from .sql import RUNS_OF_TASKS_SQL, dumps

RUN_COLUMNS = """id, workflow_name, status, args, queue, priority, timeout_seconds, deadline_at,
    idempotency_key, reason, error, created_at, finished_at"""


class DefinitionRow(TypedDict):
    name: str
    queue: str
    definition: dict[str, Any]
    args_schema: Any
    timeout_seconds: float | None
    priority: int
    updated_at: datetime


class RunRow(TypedDict):
    id: int
    workflow_name: str
    status: str
    args: Any
    queue: str
    priority: int
    timeout_seconds: float | None
    deadline_at: datetime | None
    idempotency_key: str | None
    reason: str | None
    error: Any
    created_at: datetime
    finished_at: datetime | None


class LockedRun(TypedDict):
    """What the advance path needs of a run it holds the lock of."""

    id: int
    status: str
    args: Any
    queue: str
    priority: int
    definition: dict[str, Any]


class ChannelEntry(TypedDict):
    key: str
    value: Any
    updated_at: datetime


# --- definitions ------------------------------------------------------------------------------

async def upsert_definition(cur: AsyncCursor, name: str, queue: str, definition: dict[str, Any],
                            args_schema: Any, timeout_seconds: float | None,
                            priority: int) -> None:
    await cur.execute(
        """INSERT INTO workflows (name, queue, definition, args_schema, timeout_seconds,
               priority)
           VALUES (%(name)s, %(queue)s, %(definition)s::jsonb, %(args_schema)s::jsonb,
               %(timeout_seconds)s, %(priority)s)
           ON CONFLICT (name) DO UPDATE SET queue = EXCLUDED.queue,
               definition = EXCLUDED.definition, args_schema = EXCLUDED.args_schema,
               timeout_seconds = EXCLUDED.timeout_seconds, priority = EXCLUDED.priority,
               updated_at = now()""",
        {"name": name, "queue": queue, "definition": dumps(definition),
         "args_schema": dumps(args_schema), "timeout_seconds": timeout_seconds,
         "priority": priority})


async def get_definition(conn: AsyncConnection, name: str) -> DefinitionRow | None:
    async with conn.cursor() as cur:
        await cur.execute("SELECT * FROM workflows WHERE name = %s", (name,))
        return await cur.fetchone()  # type: ignore[return-value]


async def list_definitions(conn: AsyncConnection, limit: int | None = None) -> list[DefinitionRow]:
    async with conn.cursor() as cur:
        await cur.execute("SELECT * FROM workflows ORDER BY name LIMIT %s", (limit,))
        return await cur.fetchall()  # type: ignore[return-value]


# --- runs -------------------------------------------------------------------------------------

INSERT_RUN_SQL = """
INSERT INTO workflow_runs (workflow_name, status, args, definition, queue, priority,
    timeout_seconds, deadline_at, idempotency_key)
VALUES (%(name)s, 'running', %(args)s::jsonb, %(definition)s::jsonb, %(queue)s, %(priority)s,
    %(timeout)s, now() + make_interval(secs => %(timeout)s), %(key)s)
ON CONFLICT (workflow_name, idempotency_key) WHERE idempotency_key IS NOT NULL
DO NOTHING RETURNING id
"""


async def insert_run(cur: AsyncCursor, name: str, args: Any, definition: dict[str, Any],
                     queue: str, priority: int, timeout_seconds: float | None,
                     idempotency_key: str | None) -> int | None:
    """The new run's id, or None when a run with this idempotency key exists."""
    await cur.execute(INSERT_RUN_SQL, {
        "name": name, "args": dumps(args), "definition": dumps(definition), "queue": queue,
        "priority": priority, "timeout": timeout_seconds, "key": idempotency_key})
    row = await cur.fetchone()
    return None if row is None else int(row["id"])


async def run_by_key(cur: AsyncCursor, name: str, idempotency_key: str) -> int | None:
    await cur.execute("SELECT id FROM workflow_runs WHERE workflow_name = %s "
                      "AND idempotency_key = %s", (name, idempotency_key))
    row = await cur.fetchone()
    return None if row is None else int(row["id"])


async def get_run(conn: AsyncConnection, run_id: int) -> RunRow | None:
    async with conn.cursor() as cur:
        await cur.execute(f"SELECT {RUN_COLUMNS} FROM workflow_runs WHERE id = %s", (run_id,))
        return await cur.fetchone()  # type: ignore[return-value]


async def run_status(cur: AsyncCursor, run_id: int) -> str | None:
    await cur.execute("SELECT status FROM workflow_runs WHERE id = %s", (run_id,))
    row = await cur.fetchone()
    return None if row is None else str(row["status"])


async def list_runs(conn: AsyncConnection, *, workflow_name: str | None, status: str | None,
                    before_id: int | None, limit: int) -> list[RunRow]:
    """Newest first; ``before_id`` is the cursor (the last id of the previous page)."""
    where, params = [], {"limit": limit, "name": workflow_name, "status": status,
                         "before": before_id}
    if workflow_name is not None:
        where.append("workflow_name = %(name)s")
    if status is not None:
        where.append("status = %(status)s")
    if before_id is not None:
        where.append("id < %(before)s")
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    async with conn.cursor() as cur:
        await cur.execute(f"SELECT {RUN_COLUMNS} FROM workflow_runs {clause} "
                          "ORDER BY id DESC LIMIT %(limit)s", params)
        return await cur.fetchall()  # type: ignore[return-value]


async def lock_run(cur: AsyncCursor, run_id: int) -> LockedRun | None:
    await cur.execute(
        "SELECT id, status, args, queue, priority, definition FROM workflow_runs "
        "WHERE id = %s FOR UPDATE", (run_id,))
    return await cur.fetchone()  # type: ignore[return-value]


async def run_state(cur: AsyncCursor, run_id: int) -> dict[str, Any] | None:
    """What advancing a run needs of it (``id``, ``status``, ``args``, ``queue``,
    ``priority``); the caller holds its lock."""
    await cur.execute("SELECT id, status, args, queue, priority FROM workflow_runs WHERE id = %s",
                      (run_id,))
    return await cur.fetchone()


async def try_lock_run(cur: AsyncCursor, run_id: int) -> bool:
    """Lock the run unless another transaction holds it (the advancer skips busy runs)."""
    await cur.execute("SELECT id FROM workflow_runs WHERE id = %s FOR UPDATE SKIP LOCKED",
                      (run_id,))
    return await cur.fetchone() is not None


async def lock_runs_of_tasks(cur: AsyncCursor, task_ids: Sequence[int]) -> list[int]:
    """Lock, in id order, the runs the given tasks belong to: callers do this before they
    update those tasks, so the report path and the advancer take locks in the same order."""
    await cur.execute(RUNS_OF_TASKS_SQL.format(ids="%s::bigint[]"), (list(task_ids),))
    return [r["id"] for r in await cur.fetchall()]


async def finish_run(cur: AsyncCursor, run_id: int, status: str, reason: str | None,
                     error: Any) -> None:
    await cur.execute(
        "UPDATE workflow_runs SET status = %s, reason = %s, error = %s::jsonb, "
        "finished_at = now(), deadline_at = NULL WHERE id = %s",
        (status, reason, dumps(error), run_id))


async def reopen_run(cur: AsyncCursor, run_id: int) -> None:
    """A finished run running again (a re-run from a node): its outcome cleared, its
    deadline restarted from now when it has a timeout."""
    await cur.execute(
        "UPDATE workflow_runs SET status = 'running', reason = NULL, error = NULL, "
        "finished_at = NULL, deadline_at = now() + make_interval(secs => timeout_seconds) "
        "WHERE id = %s", (run_id,))


async def succeed_run(cur: AsyncCursor, run_id: int) -> None:
    """A running run whose nodes are all done has succeeded."""
    await cur.execute(
        "UPDATE workflow_runs SET status = 'succeeded', finished_at = now(), "
        "deadline_at = NULL WHERE id = %s AND status = 'running'", (run_id,))


async def lock_expired_runs(cur: AsyncCursor, limit: int) -> list[dict[str, Any]]:
    """Running runs past their deadline (``id``, ``timeout_seconds``), locked."""
    await cur.execute(
        "SELECT id, timeout_seconds FROM workflow_runs WHERE status = 'running' "
        "AND deadline_at <= now() ORDER BY deadline_at LIMIT %s FOR UPDATE SKIP LOCKED",
        (limit,))
    return await cur.fetchall()


async def run_of_task(cur: AsyncCursor, task_id: int) -> tuple[bool, int | None]:
    """(the task exists, its workflow run id or None)."""
    await cur.execute("SELECT workflow_run_id FROM tasks WHERE id = %s", (task_id,))
    row = await cur.fetchone()
    return (False, None) if row is None else (True, row["workflow_run_id"])


async def active_task_ids(cur: AsyncCursor, run_id: int) -> list[int]:
    """The run's queued, running and waiting tasks (the run task index)."""
    await cur.execute(
        "SELECT id FROM tasks WHERE workflow_run_id = %s "
        "AND status IN ('queued', 'running', 'waiting')",
        (run_id,))
    return [r["id"] for r in await cur.fetchall()]


# --- channel ----------------------------------------------------------------------------------

async def run_exists(conn: AsyncConnection, run_id: int) -> bool:
    async with conn.cursor() as cur:
        await cur.execute("SELECT 1 FROM workflow_runs WHERE id = %s", (run_id,))
        return await cur.fetchone() is not None


async def channel_get(conn: AsyncConnection, run_id: int, key: str) -> ChannelEntry | None:
    async with conn.cursor() as cur:
        await cur.execute("SELECT key, value, updated_at FROM workflow_channel "
                          "WHERE run_id = %s AND key = %s", (run_id, key))
        return await cur.fetchone()  # type: ignore[return-value]


async def channel_list(conn: AsyncConnection, run_id: int, limit: int) -> list[ChannelEntry]:
    async with conn.cursor() as cur:
        await cur.execute("SELECT key, value, updated_at FROM workflow_channel "
                          "WHERE run_id = %s ORDER BY key LIMIT %s", (run_id, limit))
        return await cur.fetchall()  # type: ignore[return-value]


async def channel_set(conn: AsyncConnection, run_id: int, key: str, value: Any) -> None:
    async with conn.cursor() as cur:
        await cur.execute(
            "INSERT INTO workflow_channel (run_id, key, value) VALUES (%s, %s, %s::jsonb) "
            "ON CONFLICT (run_id, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
            (run_id, key, dumps(value)))


async def channel_increment(conn: AsyncConnection, run_id: int, key: str, by: int) -> int | None:
    """Atomic add to an integer value (absent counts as 0); None when it holds no integer."""
    async with conn.cursor() as cur:
        await cur.execute(
            """INSERT INTO workflow_channel (run_id, key, value)
               VALUES (%(run)s, %(key)s, to_jsonb(%(by)s::bigint))
               ON CONFLICT (run_id, key) DO UPDATE
                 SET value = to_jsonb((workflow_channel.value::text)::numeric + %(by)s),
                     updated_at = now()
                 WHERE jsonb_typeof(workflow_channel.value) = 'number'
                   AND workflow_channel.value::text ~ '^-?[0-9]+$'
               RETURNING value""", {"run": run_id, "key": key, "by": by})
        row = await cur.fetchone()
    return None if row is None else int(row["value"])

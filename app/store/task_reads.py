"""Reads of ``tasks``, ``task_events`` and ``task_logs``: one task, its history and logs, lists.

Statements only; ``app/read/tasks.py`` is the read model the API and the studio call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, cast

from psycopg import AsyncConnection, AsyncCursor

from ...protocol import escape_like
from .sql import STUCK_SQL

Conn = AsyncConnection[Any]
Cursor = AsyncCursor[Any]

TASK_COLUMNS = """id, name, queue, status, args, priority, run_at, attempts, max_retries,
    retry_delay_seconds, retry_backoff, retry_max_delay_seconds, timeout_seconds,
    idempotency_key, parent_id, root_id, depth, spawn_key, workflow_run_id, workflow_node,
    worker_id, lease_expires_at, cancel_requested, result, error, created_at, started_at,
    finished_at, stuck_after_seconds, stuck_action, last_progress_at,
    debounce_key, unique_key, unique_until, """ + STUCK_SQL + " AS stuck"

# The studio's list rows: no result or error bodies, a short preview of the args.
BRIEF_COLUMNS = """id, name, queue, status, priority, attempts, max_retries, parent_id, root_id,
    depth, worker_id, workflow_run_id, workflow_node, created_at, started_at, finished_at,
    run_at, left(args::text, 160) AS args_preview, last_progress_at, """ + STUCK_SQL + " AS stuck"


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """What a task list shows: every field set narrows it (None: no condition)."""

    status: str | None = None
    queue: str | None = None
    name: str | None = None  # exact
    name_contains: str | None = None  # case-insensitive substring (the studio's search box)
    since: datetime | None = None  # created_at >= since
    until: datetime | None = None  # created_at < until
    root_id: int | None = None
    parent_id: int | None = None
    workflow_run_id: int | None = None


class TaskRow(TypedDict, total=False):
    id: int
    name: str
    queue: str
    status: str
    args: Any
    priority: int
    run_at: datetime
    attempts: int
    max_retries: int
    parent_id: int | None
    root_id: int
    depth: int
    workflow_run_id: int | None
    workflow_node: str | None
    worker_id: str | None
    result: Any
    error: Any
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    last_progress_at: datetime | None
    stuck: bool


class EventRow(TypedDict):
    attempt: int
    event: str
    status: str
    worker_id: str | None
    error: Any
    at: datetime


class LogRow(TypedDict):
    attempt: int
    output: str
    at: datetime


class TaskBrief(TypedDict):
    id: int
    name: str
    status: str
    queue: str


_EXACT = ("status", "queue", "name", "root_id", "parent_id", "workflow_run_id")


def _where(f: TaskFilter, before_id: int | None) -> tuple[str, dict[str, Any]]:
    where: list[str] = []
    params: dict[str, Any] = {}
    for key in _EXACT:
        value = getattr(f, key)
        if value is not None:
            where.append(f"{key} = %({key})s")
            params[key] = value
    if f.name_contains:
        where.append("name ILIKE %(name_contains)s")
        params["name_contains"] = "%" + escape_like(f.name_contains) + "%"
    if f.since is not None:
        where.append("created_at >= %(since)s")
        params["since"] = f.since
    if f.until is not None:
        where.append("created_at < %(until)s")
        params["until"] = f.until
    if before_id is not None:
        where.append("id < %(before_id)s")
        params["before_id"] = before_id
    return ("WHERE " + " AND ".join(where)) if where else "", params


async def list_tasks(conn: Conn, f: TaskFilter, *, before_id: int | None, limit: int,
                     brief: bool = False) -> list[TaskRow]:
    """Newest first; ``before_id`` is the cursor (the last id of the previous page)."""
    clause, params = _where(f, before_id)
    params["limit"] = limit
    columns = BRIEF_COLUMNS if brief else TASK_COLUMNS
    async with conn.cursor() as cur:
        await cur.execute(
            f"SELECT {columns} FROM tasks {clause} ORDER BY id DESC LIMIT %(limit)s", params)
        return cast(list[TaskRow], await cur.fetchall())


async def get(conn: Conn, task_id: int) -> TaskRow | None:
    async with conn.cursor() as cur:
        await cur.execute(f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = %s", (task_id,))
        return cast(TaskRow | None, await cur.fetchone())


async def status_of(cur: Cursor, task_id: int) -> str | None:
    await cur.execute("SELECT status FROM tasks WHERE id = %s", (task_id,))
    row = await cur.fetchone()
    return None if row is None else row["status"]


async def history(conn: Conn, task_id: int) -> list[EventRow]:
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT attempt, event, status, worker_id, error, at FROM task_events "
            "WHERE task_id = %s ORDER BY id", (task_id,))
        return cast(list[EventRow], await cur.fetchall())


async def logs(conn: Conn, task_id: int) -> list[LogRow]:
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT attempt, output, at FROM task_logs WHERE task_id = %s ORDER BY attempt",
            (task_id,))
        return cast(list[LogRow], await cur.fetchall())


async def brief(conn: Conn, task_id: int) -> TaskBrief | None:
    async with conn.cursor() as cur:
        await cur.execute("SELECT id, name, status, queue FROM tasks WHERE id = %s", (task_id,))
        return cast(TaskBrief | None, await cur.fetchone())


async def children(conn: Conn, parent_id: int, limit: int) -> list[TaskRow]:
    """The first ``limit`` children, oldest first (brief columns)."""
    async with conn.cursor() as cur:
        await cur.execute(
            f"SELECT {BRIEF_COLUMNS} FROM tasks WHERE parent_id = %s ORDER BY id LIMIT %s",
            (parent_id, limit))
        return cast(list[TaskRow], await cur.fetchall())


async def child_count(conn: Conn, parent_id: int) -> int:
    async with conn.cursor() as cur:
        await cur.execute("SELECT count(*) AS n FROM tasks WHERE parent_id = %s", (parent_id,))
        row = await cur.fetchone()
        return int(row["n"]) if row else 0


async def names_of(cur: Cursor, ids: Sequence[int]) -> dict[int, str]:
    """Task id -> name, by primary key (for counting outcomes the sweep decided)."""
    await cur.execute("SELECT id, name FROM tasks WHERE id = ANY(%s)", (list(ids),))
    return {r["id"]: r["name"] for r in await cur.fetchall()}

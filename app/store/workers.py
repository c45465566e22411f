"""Workers as last seen, and the task definitions they register."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypedDict, cast

from psycopg import AsyncConnection, AsyncCursor

from .sql import dumps

Conn = AsyncConnection[Any]
Cursor = AsyncCursor[Any]


class WorkerRow(TypedDict):
    id: str
    queues: list[str]
    task_names: list[str]
    info: dict[str, Any]
    started_at: datetime
    last_seen_at: datetime
    stopped_at: datetime | None
    online: bool
    running: int


class DefinitionRow(TypedDict):
    name: str
    queue: str
    defaults: dict[str, Any]
    args_schema: dict[str, Any] | None
    updated_at: datetime


async def touch(cur: Cursor, worker_id: str, queues: Sequence[str] | None = None,
                task_names: Sequence[str] | None = None) -> None:
    """The worker was seen now (with its queues and task names, when given)."""
    await cur.execute(
        """INSERT INTO workers (id, queues, task_names) VALUES (%s, %s::jsonb, %s::jsonb)
           ON CONFLICT (id) DO UPDATE SET last_seen_at = now(), stopped_at = NULL,
             queues = COALESCE(EXCLUDED.queues, workers.queues),
             task_names = COALESCE(EXCLUDED.task_names, workers.task_names)""",
        (worker_id, None if queues is None else dumps(list(queues)),
         None if task_names is None else dumps(list(task_names))))


async def register(cur: Cursor, worker_id: str, queues: Sequence[str],
                   info: dict[str, Any], definitions: Sequence[dict[str, Any]]) -> None:
    task_names = [d["name"] for d in definitions]
    await cur.execute(
        """INSERT INTO workers (id, queues, task_names, info)
           VALUES (%s, %s::jsonb, %s::jsonb, %s::jsonb)
           ON CONFLICT (id) DO UPDATE SET queues = EXCLUDED.queues,
             task_names = EXCLUDED.task_names, info = EXCLUDED.info,
             last_seen_at = now(), stopped_at = NULL""",
        (worker_id, dumps(list(queues)), dumps(task_names), dumps(info)))
    if definitions:
        await cur.execute(
            """INSERT INTO task_definitions (name, queue, defaults, args_schema)
               SELECT name, queue, defaults, args_schema FROM jsonb_to_recordset(%s::jsonb)
                 AS x(name text, queue text, defaults jsonb, args_schema jsonb)
               ON CONFLICT (name) DO UPDATE SET queue = EXCLUDED.queue,
                 defaults = EXCLUDED.defaults, args_schema = EXCLUDED.args_schema,
                 updated_at = now()""",
            (dumps(list(definitions)),))


async def stop(cur: Cursor, worker_id: str) -> None:
    await cur.execute("UPDATE workers SET stopped_at = now() WHERE id = %s", (worker_id,))


async def list_workers(conn: Conn, offline_after: float) -> list[WorkerRow]:
    async with conn.cursor() as cur:
        await cur.execute(
            """SELECT w.id, w.queues, w.task_names, w.info, w.started_at, w.last_seen_at,
                 w.stopped_at,
                 (w.stopped_at IS NULL
                  AND w.last_seen_at > now() - make_interval(secs => %s)) AS online,
                 (SELECT count(*) FROM tasks t WHERE t.status = 'running'
                  AND t.worker_id = w.id) AS running
               FROM workers w ORDER BY w.last_seen_at DESC LIMIT 500""",
            (offline_after,))
        return cast(list[WorkerRow], await cur.fetchall())


async def online_count(conn: Conn, offline_after: float) -> int:
    """Workers seen within ``offline_after`` seconds and not stopped."""
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT count(*) AS n FROM workers WHERE stopped_at IS NULL "
            "AND last_seen_at > now() - make_interval(secs => %s)", (offline_after,))
        row = await cur.fetchone()
        return int(row["n"]) if row else 0


async def list_definitions(conn: Conn) -> list[DefinitionRow]:
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT name, queue, defaults, args_schema, updated_at FROM task_definitions "
            "ORDER BY name")
        return cast(list[DefinitionRow], await cur.fetchall())

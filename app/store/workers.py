"""Workers as last seen, and the task definitions they register."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from ..jsonutil import dumps


async def touch(conn: AsyncConnection, worker_id: str, queues: Sequence[str] | None = None,
                task_names: Sequence[str] | None = None) -> None:
    async with conn.cursor() as cur:
        await cur.execute(
            """INSERT INTO workers (id, queues, task_names) VALUES (%s, %s::jsonb, %s::jsonb)
               ON CONFLICT (id) DO UPDATE SET last_seen_at = now(), stopped_at = NULL,
                 queues = COALESCE(EXCLUDED.queues, workers.queues),
                 task_names = COALESCE(EXCLUDED.task_names, workers.task_names)""",
            (worker_id, None if queues is None else dumps(list(queues)),
             None if task_names is None else dumps(list(task_names))))


class Sightings:
    """Debounced ``touch``: a worker's row is written at most every ``every`` seconds.

    Every claim and heartbeat would otherwise cost a committed write of its own (an fsync),
    which on the hot path costs more than the claim itself. ``last_seen_at`` may lag by up to
    ``every`` seconds, far below the offline threshold. A changed queue list is written at once.
    """

    def __init__(self, every: float = 5.0, max_entries: int = 100_000) -> None:
        self.every = every
        self.max_entries = max_entries
        self._seen: dict[str, tuple[float, Any]] = {}

    async def touch(self, pool: AsyncConnectionPool, worker_id: str,
                    queues: Sequence[str] | None = None,
                    task_names: Sequence[str] | None = None) -> None:
        now = time.monotonic()
        shape = None if queues is None else (tuple(queues), tuple(task_names or ()))
        last = self._seen.get(worker_id)
        if (last is not None and now - last[0] < self.every
                and (shape is None or shape == last[1])):
            return
        async with pool.connection() as conn:
            await touch(conn, worker_id, queues, task_names)
        if len(self._seen) >= self.max_entries:
            self._seen.clear()
        self._seen[worker_id] = (now, shape if shape is not None else (last or (0, None))[1])

    def forget(self, worker_id: str) -> None:
        self._seen.pop(worker_id, None)


async def register(conn: AsyncConnection, worker_id: str, queues: Sequence[str],
                   info: dict[str, Any], definitions: Sequence[dict[str, Any]]) -> None:
    task_names = [d["name"] for d in definitions]
    async with conn.cursor() as cur:
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


async def stop(conn: AsyncConnection, worker_id: str) -> None:
    async with conn.cursor() as cur:
        await cur.execute("UPDATE workers SET stopped_at = now() WHERE id = %s", (worker_id,))


async def list_workers(conn: AsyncConnection, offline_after: float) -> list[dict[str, Any]]:
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
        return await cur.fetchall()


async def list_definitions(conn: AsyncConnection) -> list[dict[str, Any]]:
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT name, queue, defaults, args_schema, updated_at FROM task_definitions "
            "ORDER BY name")
        return await cur.fetchall()

"""Queue rows: created on first use, carrying the concurrency limit and pause flag."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from ..notifier import CHANNEL, CONFIG_CHANGED
from .notify import notify

QUEUE_STATS_SQL = """
SELECT q.name, q.concurrency_limit, q.paused,
    COALESCE(s.queued, 0) AS queued, COALESCE(s.running, 0) AS running,
    COALESCE(s.succeeded, 0) AS succeeded, COALESCE(s.failed, 0) AS failed,
    COALESCE(s.cancelled, 0) AS cancelled
FROM queues q LEFT JOIN (
    SELECT queue,
        count(*) FILTER (WHERE status = 'queued') AS queued,
        count(*) FILTER (WHERE status = 'running') AS running,
        count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
        count(*) FILTER (WHERE status = 'failed') AS failed,
        count(*) FILTER (WHERE status = 'cancelled') AS cancelled
    FROM tasks GROUP BY queue
) s ON s.queue = q.name
ORDER BY q.name
"""


class KnownQueues:
    """Names this process has already written to ``queues``, so sends skip the insert.

    A send inserts the rows of the names it does not know in its own transaction, and the names
    are remembered only after that commits: a refused send (unknown parent) leaves neither an
    empty queue row nor a cached name without its row.
    """

    def __init__(self) -> None:
        self._names: set[str] = set()

    def unknown(self, names: Iterable[str]) -> list[str]:
        """Names without a known row, for the send to insert."""
        return sorted(set(names) - self._names)

    def remember(self, names: Iterable[str]) -> None:
        """Only after the transaction that inserted the rows has committed."""
        self._names.update(names)


class QueueSettingsCache:
    """This process's copy of the queues whose settings differ from the default (a concurrency
    limit, or paused), so that a claim needs no extra round trip to learn them.

    Every queue not listed is unlimited and running. The copy is dropped when any replica
    changes a queue (NOTIFY ``!queues``) or the notifier reconnects, and re-read at least every
    ``ttl`` seconds in case a notification was lost.
    """

    def __init__(self, ttl: float = 1.0) -> None:
        self.ttl = ttl
        self._rows: dict[str, dict[str, Any]] | None = None
        self._loaded_at = 0.0
        self._generation = 0

    def invalidate(self) -> None:
        self._generation += 1
        self._rows = None

    async def special(self, pool: AsyncConnectionPool) -> dict[str, dict[str, Any]]:
        rows = self._rows
        if rows is not None and time.monotonic() - self._loaded_at < self.ttl:
            return rows
        generation, started = self._generation, time.monotonic()
        async with pool.connection() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT name, concurrency_limit, paused FROM queues "
                "WHERE paused OR concurrency_limit IS NOT NULL")
            rows = {r["name"]: r for r in await cur.fetchall()}
        if generation == self._generation:  # no change announced while we read
            self._rows, self._loaded_at = rows, started
        return rows


async def upsert(conn: AsyncConnection, name: str, *, concurrency_limit: int | None,
                 set_limit: bool, paused: bool | None) -> dict[str, Any]:
    async with conn.cursor() as cur:
        await cur.execute(
            """INSERT INTO queues (name, concurrency_limit, paused)
               VALUES (%(name)s, %(limit)s, COALESCE(%(paused)s, false))
               ON CONFLICT (name) DO UPDATE SET
                 concurrency_limit = CASE WHEN %(set_limit)s THEN EXCLUDED.concurrency_limit
                                          ELSE queues.concurrency_limit END,
                 paused = COALESCE(%(paused)s, queues.paused)
               RETURNING name, concurrency_limit, paused""",
            {"name": name, "limit": concurrency_limit, "set_limit": set_limit, "paused": paused})
        row = await cur.fetchone()
        # A raised limit or a resumed queue may let waiting claims through now; every
        # replica drops its cached queue settings.
        await notify(cur, [(name, None)])
        await cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, CONFIG_CHANGED))
        assert row is not None
        return row


async def stats(conn: AsyncConnection) -> list[dict[str, Any]]:
    async with conn.cursor() as cur:
        await cur.execute(QUEUE_STATS_SQL)
        return await cur.fetchall()

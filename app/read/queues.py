"""Queues with their task counts, and the gauges ``/metrics`` reads at scrape time."""

from __future__ import annotations

from typing import Any

from ..store import queues as queue_store
from ..store import workers as worker_store
from ..store.queues import QueueStats
from .paging import Db, connection, fetch

__all__ = ["QueueStats", "gauges", "queue_names", "queue_stats"]


async def queue_stats(db: Db) -> list[QueueStats]:
    """Every queue by name, with its settings and task counts by status."""
    return await fetch(db, queue_store.stats)


async def queue_names(db: Db, limit: int = 1000) -> list[str]:
    return await fetch(db, queue_store.names, limit)


async def gauges(db: Db, offline_after: float) -> dict[str, Any]:
    """Queue depth (queued, running) and the number of workers online."""
    async with connection(db) as conn:
        depth = await queue_store.depth(conn)
        online = await worker_store.online_count(conn, offline_after)
    return {"depth": depth, "workers_online": online}

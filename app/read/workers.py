"""Workers (online first) and the task definitions they registered."""

from __future__ import annotations

from ..store import workers as worker_store
from ..store.workers import DefinitionRow, WorkerRow
from .paging import Db, connection

__all__ = ["DefinitionRow", "WorkerRow", "list_definitions", "list_workers", "workers_online"]


async def list_workers(db: Db, offline_after: float) -> list[WorkerRow]:
    """The 500 seen last; ``online``: seen within ``offline_after`` seconds, not stopped."""
    async with connection(db) as conn:
        return await worker_store.list_workers(conn, offline_after)


async def list_definitions(db: Db) -> list[DefinitionRow]:
    async with connection(db) as conn:
        return await worker_store.list_definitions(conn)


async def workers_online(db: Db, offline_after: float) -> int:
    async with connection(db) as conn:
        return await worker_store.online_count(conn, offline_after)

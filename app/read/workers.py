"""Workers (online first) and the task definitions they registered."""

from __future__ import annotations

from ..store import workers as worker_store
from ..store.workers import DefinitionRow, WorkerRow
from .paging import Db, fetch

__all__ = ["DefinitionRow", "WorkerRow", "list_definitions", "list_workers", "workers_online"]


async def list_workers(db: Db, offline_after: float) -> list[WorkerRow]:
    """The 500 seen last; ``online``: seen within ``offline_after`` seconds, not stopped."""
    return await fetch(db, worker_store.list_workers, offline_after)


async def list_definitions(db: Db) -> list[DefinitionRow]:
    return await fetch(db, worker_store.list_definitions)


async def workers_online(db: Db, offline_after: float) -> int:
    return await fetch(db, worker_store.online_count, offline_after)

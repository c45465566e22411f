"""Cron schedules and the leader leases, as the API and the studio read them."""

from __future__ import annotations

from ..engine.errors import NotFound
from ..store import leader as leader_store
from ..store import schedules as store
from ..store.leader import LeaseRow
from ..store.schedules import ScheduleRow
from .paging import Db, connection


async def list_schedules(db: Db, limit: int | None = None) -> list[ScheduleRow]:
    """Every schedule (at most ``limit``) by name, with its next fire time."""
    async with connection(db) as conn:
        return await store.list_all(conn, limit)


async def get_schedule(db: Db, name: str) -> ScheduleRow:
    async with connection(db) as conn:
        row = await store.get(conn, name)
    if row is None:
        raise NotFound.of("schedule", name)
    return row


async def leases(db: Db) -> list[LeaseRow]:
    async with connection(db) as conn:
        return await leader_store.leases(conn)

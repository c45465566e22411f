"""Cron schedules and the leader leases, as the API and the studio read them."""

from __future__ import annotations

from ..store import leader as leader_store
from ..store import schedules as store
from ..store.leader import LeaseRow
from ..store.schedules import ScheduleRow
from .paging import Db, fetch, found


async def list_schedules(db: Db, limit: int | None = None) -> list[ScheduleRow]:
    """Every schedule (at most ``limit``) by name, with its next fire time."""
    return await fetch(db, store.list_all, limit)


async def get_schedule(db: Db, name: str) -> ScheduleRow:
    return found(await fetch(db, store.get, name), "schedule", name)


async def leases(db: Db) -> list[LeaseRow]:
    return await fetch(db, leader_store.leases)

"""Pause and resume a cron schedule through the schedules store (the same code as the API)."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from . import queries


async def set_paused(pool: AsyncConnectionPool, name: str, paused: bool) -> bool:
    async with pool.connection() as conn:
        return await queries.set_schedule_paused(conn, name, paused)

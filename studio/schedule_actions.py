"""Pause and resume a cron schedule through the schedules store (the same code as the API)."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from ..app.store import schedules as schedule_store


async def set_paused(pool: AsyncConnectionPool, name: str, paused: bool) -> None:
    """Raises the store's 404 ``ApiError`` for an unknown schedule."""
    async with pool.connection() as conn:
        await schedule_store.set_paused(conn, name, paused)

"""The cron scheduler: while this replica is leader, send every due schedule fire."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from psycopg_pool import AsyncConnectionPool

from ..store import schedules as store
from .leader import LeaderElector

log = logging.getLogger("branchwork.scheduler")


class Scheduler:
    def __init__(self, pool: AsyncConnectionPool, elector: LeaderElector,
                 interval: float) -> None:
        self.pool = pool
        self.elector = elector
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="branchwork-scheduler")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def tick(self) -> int:
        if not self.elector.is_leader:
            return 0
        async with self.pool.connection() as conn:
            fired = await store.fire_due(conn)
        for item in fired:
            if "error" in item:
                log.warning("schedule %s at %s not sent: %s", item["name"], item["at"],
                            item["error"])
        return len(fired)

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler tick failed; retrying")
            await asyncio.sleep(self.interval)

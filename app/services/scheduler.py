"""The cron scheduler: while this replica is leader, send every due schedule fire."""

from __future__ import annotations

import logging

from psycopg_pool import AsyncConnectionPool

from ..store import schedules as store
from .leader import LeaderElector
from .periodic import PeriodicService


class Scheduler(PeriodicService):
    task_name = "branchwork-scheduler"
    failure_message = "scheduler tick failed; retrying"
    log = logging.getLogger("branchwork.scheduler")

    def __init__(self, pool: AsyncConnectionPool, elector: LeaderElector,
                 interval: float) -> None:
        super().__init__(interval)
        self.pool = pool
        self.elector = elector

    async def tick(self) -> int:
        if not self.elector.is_leader:
            return 0
        async with self.pool.connection() as conn:
            fired = await store.fire_due(conn)
        for item in fired:
            if "error" in item:
                self.log.warning("schedule %s at %s not sent: %s", item["name"], item["at"],
                                 item["error"])
        return len(fired)

    async def step(self) -> bool:
        await self.tick()
        return False

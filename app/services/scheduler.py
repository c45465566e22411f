"""The cron scheduler: while this replica is leader, send every due schedule fire."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from psycopg_pool import AsyncConnectionPool

from ..engine.schedules import fire_due
from .leader import LeaderElector
from .periodic import PeriodicService

if TYPE_CHECKING:
    from ..metrics import Metrics


class Scheduler(PeriodicService):
    task_name = "branchwork-scheduler"
    failure_message = "scheduler tick failed; retrying"
    log = logging.getLogger("branchwork.scheduler")

    def __init__(self, pool: AsyncConnectionPool, elector: LeaderElector, interval: float,
                 metrics: Metrics | None = None) -> None:
        super().__init__(pool, interval)
        self.elector = elector
        self.metrics = metrics

    async def tick(self) -> int:
        if not self.elector.is_leader:
            return 0
        fired = await fire_due(self.pool, metrics=self.metrics)
        for item in fired:
            if "error" in item:
                self.log.warning("schedule %s at %s not sent: %s", item["name"], item["at"],
                                 item["error"])
        return len(fired)

    async def step(self) -> bool:
        await self.tick()
        return False

"""The stuck sweeper: fails attempts stuck past their ``stuck_after`` where configured."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from psycopg_pool import AsyncConnectionPool

from ..engine.stuck import fail_stuck
from ..engine.sweep import SweepHook
from .periodic import PeriodicService

FULL_PASS = 1000


class StuckSweeper(PeriodicService):
    """Every ``interval`` seconds; ``hooks`` (the rescuer's) get the rows of a pass that
    ended any attempt."""

    task_name = "branchwork-stuck-sweeper"
    failure_message = "stuck sweep failed; retrying"
    log = logging.getLogger("branchwork.stuck")

    def __init__(self, pool: AsyncConnectionPool, interval: float,
                 hooks: Iterable[SweepHook] = ()) -> None:
        super().__init__(pool, interval)
        self.hooks: list[SweepHook] = list(hooks)

    async def step(self) -> bool:
        rows = await fail_stuck(self.pool)
        if rows:
            self.log.warning("failed %d stuck attempt(s): %s", len(rows),
                             ", ".join(str(r["id"]) for r in rows[:20]))
            for hook in self.hooks:
                await hook(rows)
        return len(rows) >= FULL_PASS

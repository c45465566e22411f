"""The lease rescuer: requeues tasks of dead workers and fails attempts past their timeout."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from psycopg_pool import AsyncConnectionPool

from ..engine.sweep import SweepHook, sweep
from ..store.tasks import SWEEP_BATCH, SweptRow
from .periodic import PeriodicService


class Rescuer(PeriodicService):
    """Sweeps every ``interval`` seconds; ``hooks`` get the rows of a pass that ended any
    attempt. A full pass (``SWEEP_BATCH`` rows) runs the next one without the pause."""

    task_name = "branchwork-rescuer"
    failure_message = "sweep failed; retrying"
    log = logging.getLogger("branchwork.rescuer")

    def __init__(self, pool: AsyncConnectionPool, interval: float,
                 hooks: Iterable[SweepHook] = ()) -> None:
        super().__init__(pool, interval)
        self.hooks: list[SweepHook] = list(hooks)

    async def end_attempts(self) -> list[SweptRow]:
        return await sweep(self.pool)

    def say(self, rows: list[SweptRow]) -> None:
        self.log.info("rescued %d task(s)", len(rows))

    async def sweep_once(self) -> list[SweptRow]:
        rows = await self.end_attempts()
        if rows:
            self.say(rows)
            for hook in self.hooks:
                await hook(rows)
        return rows

    async def step(self) -> bool:
        return len(await self.sweep_once()) >= SWEEP_BATCH

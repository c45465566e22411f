"""The lease rescuer: requeues tasks of dead workers and fails attempts past their timeout."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from psycopg_pool import AsyncConnectionPool

from ..engine.sweep import SweepHook, sweep
from ..store.tasks import SweptRow
from .periodic import PeriodicService

# A sweep takes at most this many rows: a full sweep may have left more behind, so the
# next one runs without the pause.
FULL_SWEEP = 1000


class Rescuer(PeriodicService):
    """Sweeps every ``interval`` seconds; ``hooks`` get the rows of a sweep that ended any."""

    task_name = "branchwork-rescuer"
    failure_message = "sweep failed; retrying"
    log = logging.getLogger("branchwork.rescuer")

    def __init__(self, pool: AsyncConnectionPool, interval: float,
                 hooks: Iterable[SweepHook] = ()) -> None:
        super().__init__(pool, interval)
        self.hooks: list[SweepHook] = list(hooks)

    async def sweep_once(self) -> list[SweptRow]:
        rows = await sweep(self.pool)
        if rows:
            self.log.info("rescued %d task(s)", len(rows))
            for hook in self.hooks:
                await hook(rows)
        return rows

    async def step(self) -> bool:
        return len(await self.sweep_once()) >= FULL_SWEEP

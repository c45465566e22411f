"""The lease rescuer: requeues tasks of dead workers and fails attempts past their timeout."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from psycopg_pool import AsyncConnectionPool

from ..store import tasks as store
from .periodic import PeriodicService

SweepHook = Callable[[list[dict[str, Any]]], Awaitable[None]]

# SWEEP_SQL takes at most this many rows: a full sweep may have left more behind, so the
# next one runs without the pause.
FULL_SWEEP = 1000


class Rescuer(PeriodicService):
    """Sweeps every ``interval`` seconds; SKIP LOCKED lets several replicas sweep at once."""

    task_name = "branchwork-rescuer"
    failure_message = "sweep failed; retrying"
    log = logging.getLogger("branchwork.rescuer")

    def __init__(self, pool: AsyncConnectionPool, interval: float) -> None:
        super().__init__(interval)
        self.pool = pool
        self.hooks: list[SweepHook] = []

    async def sweep_once(self) -> list[dict[str, Any]]:
        rows = await store.sweep(self.pool)
        if rows:
            self.log.info("rescued %d task(s)", len(rows))
            for hook in self.hooks:
                await hook(rows)
        return rows

    async def step(self) -> bool:
        return len(await self.sweep_once()) >= FULL_SWEEP

"""The lease rescuer: requeues tasks of dead workers and fails attempts past their timeout."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from psycopg_pool import AsyncConnectionPool

from ..store import tasks as store

log = logging.getLogger("branchwork.rescuer")

SweepHook = Callable[[list[dict[str, Any]]], Awaitable[None]]


class Rescuer:
    """Sweeps every ``interval`` seconds; SKIP LOCKED lets several replicas sweep at once."""

    def __init__(self, pool: AsyncConnectionPool, interval: float) -> None:
        self.pool = pool
        self.interval = interval
        self.hooks: list[SweepHook] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="branchwork-rescuer")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def sweep_once(self) -> list[dict[str, Any]]:
        rows = await store.sweep(self.pool)
        if rows:
            log.info("rescued %d task(s)", len(rows))
            for hook in self.hooks:
                await hook(rows)
        return rows

    async def _run(self) -> None:
        while True:
            try:
                rows = await self.sweep_once()
                if len(rows) < 1000:
                    await asyncio.sleep(self.interval)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sweep failed; retrying")
                await asyncio.sleep(self.interval)

"""The loop every background service shares: run a step, log a failure, pause, until stopped.

A failed step never ends the loop: the database may be back by the next one. A step that
found a full batch asks for the next round at once; :meth:`PeriodicService.wake` cuts a pause
short (a rescuer sweep that touched workflow tasks wakes the workflow advancer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from psycopg_pool import AsyncConnectionPool


class PeriodicService:
    """Runs :meth:`step` every ``interval`` seconds in one asyncio task between start and stop.

    Subclasses name their task, log and failure message, and write :meth:`step`."""

    task_name = "branchwork-service"
    failure_message = "service step failed; retrying"
    log = logging.getLogger("branchwork")

    def __init__(self, pool: AsyncConnectionPool, interval: float) -> None:
        self.pool = pool
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.woken = False  # whether this step was asked for by :meth:`wake`

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def wake(self) -> None:
        """Run the next step now instead of at the end of the pause."""
        self._wake.set()

    async def step(self) -> bool:
        """One round of work; True asks for the next round at once, without the pause."""
        raise NotImplementedError

    async def pause(self) -> None:
        """Sleep ``interval``, or less when woken."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.interval)

    async def _run(self) -> None:
        while True:
            again = False
            # Cleared before the step: a wake-up during the step is kept for the next one.
            self.woken = self._wake.is_set()
            self._wake.clear()
            try:
                again = await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception(self.failure_message)
            if not again:
                await self.pause()

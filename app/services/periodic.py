"""The loop every background service shares: run a step, log a failure, pause, until stopped.

A failed step never ends the loop: the database may be back by the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging


class PeriodicService:
    """Runs :meth:`step` every ``interval`` seconds in one asyncio task between start and stop."""

    task_name = "branchwork-service"
    failure_message = "service step failed; retrying"
    log = logging.getLogger("branchwork")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def step(self) -> bool:
        """One round of work; True asks for the next round at once, without the pause."""
        raise NotImplementedError

    async def pause(self) -> None:
        await asyncio.sleep(self.interval)

    async def _run(self) -> None:
        while True:
            again = False
            try:
                again = await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception(self.failure_message)
            if not again:
                await self.pause()

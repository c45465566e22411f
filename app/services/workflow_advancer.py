"""The workflow advancer's background half: run timeouts, and node tasks that finished
outside the report path (lease sweep, a task cancelled through the API).

The report path advances runs in its own transaction; this loop is the guarantee behind it.
Every replica may run it: runs are locked with SKIP LOCKED.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from psycopg_pool import AsyncConnectionPool

from ..store import workflow_engine as engine
from .periodic import PeriodicService

RECONCILE_EVERY = 5


class WorkflowAdvancer(PeriodicService):
    task_name = "branchwork-workflow-advancer"
    failure_message = "workflow advancer tick failed; retrying"
    log = logging.getLogger("branchwork.workflows")

    def __init__(self, pool: AsyncConnectionPool, interval: float) -> None:
        super().__init__(interval)
        self.pool = pool
        self._ticks = 0
        self._wake = asyncio.Event()

    async def on_sweep(self, rows: list[dict[str, Any]]) -> None:
        """Rescuer hook: a swept workflow task may have failed for good; look now."""
        if any(r.get("workflow_run_id") for r in rows):
            self._wake.set()

    async def tick(self, reconcile: bool = True) -> None:
        async with self.pool.connection() as conn:
            expired = await engine.expire_runs(conn)
            if expired:
                self.log.info("cancelled %d workflow run(s) past their timeout", len(expired))
            if reconcile:
                await engine.reconcile(conn)

    async def step(self) -> bool:
        # Deadlines are checked every tick (an index range scan). The reconcile pass
        # reads every queued node, so it runs after a sweep that touched workflow tasks
        # and otherwise every RECONCILE_EVERY ticks (tasks cancelled through the API).
        reconcile = self._wake.is_set() or self._ticks % RECONCILE_EVERY == 0
        self._wake.clear()
        self._ticks += 1
        await self.tick(reconcile)
        return False

    async def pause(self) -> None:
        """Sleep ``interval``, or less when a sweep hook asks for a look now."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.interval)

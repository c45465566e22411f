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

log = logging.getLogger("branchwork.workflows")

RECONCILE_EVERY = 5


class WorkflowAdvancer:
    def __init__(self, pool: AsyncConnectionPool, interval: float) -> None:
        self.pool = pool
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="branchwork-workflow-advancer")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def on_sweep(self, rows: list[dict[str, Any]]) -> None:
        """Rescuer hook: a swept workflow task may have failed for good; look now."""
        if any(r.get("workflow_run_id") for r in rows):
            self._wake.set()

    async def tick(self, reconcile: bool = True) -> None:
        async with self.pool.connection() as conn:
            expired = await engine.expire_runs(conn)
            if expired:
                log.info("cancelled %d workflow run(s) past their timeout", len(expired))
            if reconcile:
                await engine.reconcile(conn)

    async def _run(self) -> None:
        ticks = 0
        while True:
            # Deadlines are checked every tick (an index range scan). The reconcile pass
            # reads every queued node, so it runs after a sweep that touched workflow tasks
            # and otherwise every RECONCILE_EVERY ticks (tasks cancelled through the API).
            reconcile = self._wake.is_set() or ticks % RECONCILE_EVERY == 0
            self._wake.clear()
            ticks += 1
            try:
                await self.tick(reconcile)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("workflow advancer tick failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)

"""The workflow advancer's background half: run timeouts, and node tasks that finished
outside the report path (lease sweep, a task cancelled through the API).

The report path advances runs in its own transaction; this loop is the guarantee behind it.
Every replica may run it: runs are locked with SKIP LOCKED.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from psycopg_pool import AsyncConnectionPool

from ..engine.runs import expire_runs, reconcile
from .periodic import PeriodicService

if TYPE_CHECKING:
    from ..metrics import Metrics

RECONCILE_EVERY = 5


class WorkflowAdvancer(PeriodicService):
    task_name = "branchwork-workflow-advancer"
    failure_message = "workflow advancer tick failed; retrying"
    log = logging.getLogger("branchwork.workflows")

    def __init__(self, pool: AsyncConnectionPool, interval: float,
                 metrics: Metrics | None = None) -> None:
        super().__init__(pool, interval)
        self.metrics = metrics
        self._ticks = 0

    async def on_sweep(self, rows: Sequence[Any]) -> None:
        """Rescuer hook: a swept workflow task may have failed for good; look now."""
        if any(r.get("workflow_run_id") for r in rows):
            self.wake()

    async def tick(self, reconcile_now: bool = True) -> None:
        async with self.pool.connection() as conn:
            expired = await expire_runs(conn)
            if expired:
                self.log.info("cancelled %d workflow run(s) past their timeout", len(expired))
            if reconcile_now:
                await reconcile(conn, metrics=self.metrics)

    async def step(self) -> bool:
        # Deadlines are checked every tick (an index range scan). The reconcile pass
        # reads every queued node, so it runs after a sweep that touched workflow tasks
        # and otherwise every RECONCILE_EVERY ticks (tasks cancelled through the API).
        reconcile_now = self.woken or self._ticks % RECONCILE_EVERY == 0
        self._ticks += 1
        await self.tick(reconcile_now)
        return False

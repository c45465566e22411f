"""The retention service: deletes what is past its retention, a batch at a time.

Every replica runs it; a replica that finds another in its batch skips the round (an
advisory lock), so the work is not done twice. A full batch asks for the next one after a
rest as long as the batch took, so a backlog (the first start on a database that kept
everything) drains steadily but takes at most half of one database connection's time:
unpaced, a million-row backlog doubled the claims' p99 on a 2-core machine
(docs/performance.md, "Retention").
"""

from __future__ import annotations

import asyncio
import logging
import time

from psycopg_pool import AsyncConnectionPool

from ..engine.retention import defaults, prune_batch
from ..settings import Settings
from .periodic import PeriodicService

REST = 1.0  # after a full batch, rest as long as it took (a 50% duty cycle)


class RetentionService(PeriodicService):
    task_name = "branchwork-retention"
    failure_message = "retention pass failed; retrying"
    log = logging.getLogger("branchwork.retention")

    def __init__(self, pool: AsyncConnectionPool, settings: Settings) -> None:
        super().__init__(pool, settings.retention_interval_seconds)
        self.keep = defaults(settings)
        self.pruned = 0  # rows deleted since start (tasks, runs, KV entries)

    async def step(self) -> bool:
        started = time.monotonic()
        done = await prune_batch(self.pool, self.keep)
        if done is None:
            return False
        pruned, full = done
        count = pruned.tasks + pruned.runs + pruned.kv
        if count:
            self.pruned += count
            self.log.info("pruned %d task(s), %d run(s), %d KV entr%s", pruned.tasks,
                          pruned.runs, pruned.kv, "y" if pruned.kv == 1 else "ies")
        if full:
            await asyncio.sleep(REST * (time.monotonic() - started))
        return full

"""The retention service: deletes what is past its retention, a batch at a time.

Every replica runs it; a replica that finds another in its batch skips the round (an
advisory lock), so the work is not done twice. A full batch asks for the next one at once, so
a backlog (the first start on a database that kept everything) drains steadily, in short
transactions that claims never wait for.
"""

from __future__ import annotations

import logging

from psycopg_pool import AsyncConnectionPool

from ..engine.retention import defaults, prune_batch
from ..settings import Settings
from .periodic import PeriodicService


class RetentionService(PeriodicService):
    task_name = "branchwork-retention"
    failure_message = "retention pass failed; retrying"
    log = logging.getLogger("branchwork.retention")

    def __init__(self, pool: AsyncConnectionPool, settings: Settings) -> None:
        super().__init__(pool, settings.retention_interval_seconds)
        self.keep = defaults(settings)
        self.pruned = 0  # rows deleted since start (tasks, runs, KV entries)

    async def step(self) -> bool:
        done = await prune_batch(self.pool, self.keep)
        if done is None:
            return False
        pruned, full = done
        count = pruned.tasks + pruned.runs + pruned.kv
        if count:
            self.pruned += count
            self.log.info("pruned %d task(s), %d run(s), %d KV entr%s", pruned.tasks,
                          pruned.runs, pruned.kv, "y" if pruned.kv == 1 else "ies")
        return full

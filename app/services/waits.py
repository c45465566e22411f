"""The wait timer: resumes durable tasks whose wait ran past its timeout (docs/durable.md),
and forgets events older than any look-back or idempotency window."""

from __future__ import annotations

import logging
import time

from psycopg_pool import AsyncConnectionPool

from ..engine.suspend import TIMEOUT_BATCH, prune_events, resume_timed_out
from .periodic import PeriodicService

# Old events are looked for once a minute (a full batch: again at once).
PRUNE_EVERY_SECONDS = 60.0


class WaitTimer(PeriodicService):
    """Every ``interval`` seconds: time out due waits (a full batch runs again at once); once
    a minute, forget events older than ``event_retention_seconds``."""

    task_name = "branchwork-wait-timer"
    failure_message = "wait timeout pass failed; retrying"
    log = logging.getLogger("branchwork.waits")

    def __init__(self, pool: AsyncConnectionPool, interval: float,
                 event_retention_seconds: float) -> None:
        super().__init__(pool, interval)
        self.event_retention_seconds = event_retention_seconds
        self.next_prune = 0.0  # monotonic time of the next pass over old events

    async def step(self) -> bool:
        resumed = await resume_timed_out(self.pool)
        if resumed:
            self.log.info("%d wait(s) timed out; their tasks run again", resumed)
        pruned = 0
        if time.monotonic() >= self.next_prune:
            pruned = await prune_events(self.pool, self.event_retention_seconds)
            if pruned < TIMEOUT_BATCH:
                self.next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
        return resumed >= TIMEOUT_BATCH or pruned >= TIMEOUT_BATCH

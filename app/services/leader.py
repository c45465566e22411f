"""Leader election: one replica at a time runs the cron scheduler.

The lease is renewed every third of its length. A replica that cannot renew (database gone,
process stalled) stops calling itself leader when its own copy of the lease runs out, which is
never later than another replica can take it over.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid

from psycopg_pool import AsyncConnectionPool

from ..store import leader as store
from .periodic import PeriodicService

ROLE = "scheduler"


def replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaderElector(PeriodicService):
    task_name = "branchwork-leader"
    failure_message = "leader lease renewal failed"
    log = logging.getLogger("branchwork.leader")

    def __init__(self, pool: AsyncConnectionPool, lease_seconds: float,
                 role: str = ROLE, me: str | None = None) -> None:
        super().__init__(pool, lease_seconds / 3)
        self.lease_seconds = lease_seconds
        self.role = role
        self.me = me or replica_id()
        self._valid_until = 0.0

    @property
    def is_leader(self) -> bool:
        return time.monotonic() < self._valid_until

    async def stop(self) -> None:
        """Stop renewing and hand the lease back, so another replica need not wait it out."""
        await super().stop()
        if self.is_leader:
            self._valid_until = 0.0
            with contextlib.suppress(Exception):
                async with self.pool.connection() as conn:
                    await store.release(conn, self.role, self.me)

    async def try_acquire(self) -> bool:
        started = time.monotonic()
        was = self.is_leader
        async with self.pool.connection() as conn:
            held = await store.acquire(conn, self.role, self.me, self.lease_seconds)
        # Counted from before the statement: our copy never outlives the row's.
        self._valid_until = started + self.lease_seconds if held else 0.0
        if held and not was:
            self.log.info("%s is now the %s leader", self.me, self.role)
        elif was and not held:
            self.log.warning("%s lost the %s lease", self.me, self.role)
        return held

    async def step(self) -> bool:
        await self.try_acquire()
        return False

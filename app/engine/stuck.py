"""Stuck attempts: a running attempt that showed no progress for its ``stuck_after`` is shown
stuck (the reads compute it); where its rule says ``fail``, this ends the attempt as
``Stuck`` and the task is retried per its policy. The stuck sweeper service runs it; SKIP
LOCKED lets several replicas run it at once."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from ..store import tasks as task_store
from ..store.tasks import SweptRow
from .sweep import end_attempts


async def fail_stuck(pool: AsyncConnectionPool) -> list[SweptRow]:
    """One pass; the rows are shaped like a lease sweep's, so the same hooks (metrics,
    workflow advance) apply."""
    return await end_attempts(pool, task_store.fail_stuck)

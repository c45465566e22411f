"""Retention: delete finished tasks, finished workflow runs and expired KV entries once they
are older than their queue's retention (docs/operations.md, "Retention").

One pass is a series of short transactions of at most ``batch`` rows each, so a prune of a
million tasks never holds a lock for long and never touches a row a claim wants (only
finished rows are deleted, and rows another transaction holds are skipped). The background
service runs one pass per round; the prune API runs passes until nothing is left, with the
caller's ``older_than`` instead of the retention settings if given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from psycopg_pool import AsyncConnectionPool

from ..store import retention as store
from .tx import transaction

if TYPE_CHECKING:
    from ..settings import Settings
    from ..state import ServerState

BATCH = 1000


@dataclass(frozen=True, slots=True)
class Pruned:
    tasks: int  # tasks deleted (with their history and logs), those of deleted runs included
    runs: int  # finished workflow runs deleted (with their nodes and channel)
    kv: int  # expired KV entries deleted
    dry_run: bool = False

    def __add__(self, other: Pruned) -> Pruned:
        return Pruned(self.tasks + other.tasks, self.runs + other.runs, self.kv + other.kv,
                      self.dry_run)


def defaults(settings: Settings) -> dict[str, float]:
    """The server's retention per finished status, in seconds (0: kept forever)."""
    return {"succeeded": settings.retention_succeeded_seconds,
            "failed": settings.retention_failed_seconds,
            "cancelled": settings.retention_cancelled_seconds}


async def prune_batch(pool: AsyncConnectionPool, keep: dict[str, float], *,
                      older_than: float | None = None, queue: str | None = None,
                      batch: int = BATCH, wait: bool = False) -> tuple[Pruned, bool] | None:
    """One batch of each kind, each in its own transaction: (what went, whether a batch was
    full, so more may be due). None: another replica is in its task batch right now, and
    this one (``wait`` False: the service) leaves the round to it."""
    params = store.policy_params(keep, older_than, queue, batch)
    async with transaction(pool) as cur:
        if not await store.lock(cur, wait=wait):
            return None
        tasks = await store.prune_tasks(cur, params)
    async with transaction(pool) as cur:
        runs, run_tasks = await store.prune_runs(cur, params)
    kv = 0
    if queue is None:  # KV entries belong to no queue
        async with transaction(pool) as cur:
            kv = await store.prune_kv(cur, batch)
    return Pruned(tasks + run_tasks, runs, kv), max(tasks, runs, kv) >= batch


async def count_due(pool: AsyncConnectionPool, keep: dict[str, float], *,
                    older_than: float | None = None, queue: str | None = None) -> Pruned:
    """What a prune would delete now (a dry run)."""
    async with transaction(pool) as cur:
        tasks, runs, kv = await store.count_due(
            cur, store.policy_params(keep, older_than, queue, BATCH))
    return Pruned(tasks, runs, 0 if queue is not None else kv, dry_run=True)


async def prune(state: ServerState, *, older_than_seconds: float | None = None,
                queue: str | None = None, dry_run: bool = False) -> Pruned:
    """Delete everything due now, batch after batch, and say how much (a dry run: count).
    ``older_than_seconds`` replaces every retention setting for this prune; ``queue``
    limits it to one queue's tasks and runs."""
    keep = defaults(state.settings)
    if dry_run:
        return await count_due(state.pool, keep, older_than=older_than_seconds, queue=queue)
    total = Pruned(0, 0, 0)
    while True:
        done = await prune_batch(state.pool, keep, older_than=older_than_seconds, queue=queue,
                                 wait=True)
        assert done is not None  # waited for the lock
        total += done[0]
        if not done[1]:
            return total

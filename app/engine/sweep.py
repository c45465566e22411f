"""Sweep: end attempts whose worker stopped heartbeating (the lease ran out) or which ran
past their timeout; each is retried or fails as its task's policy says. The rescuer service
runs it; SKIP LOCKED lets several replicas sweep at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from psycopg_pool import AsyncConnectionPool

from ..metrics import Metrics
from ..store import task_reads
from ..store import tasks as task_store
from ..store.sql import notify
from ..store.tasks import SweptRow
from .tx import Cursor, single_statement, transaction

SweepHook = Callable[[list[SweptRow]], Awaitable[None]]


async def end_attempts(pool: AsyncConnectionPool,
                       statement: Callable[[Cursor], Awaitable[list[SweptRow]]]) -> list[SweptRow]:
    """One pass of a statement that ends attempts the server decides about (at most
    ``SWEEP_BATCH``), in one transaction that wakes the claims of the tasks it requeued."""
    async with transaction(pool) as cur:
        rows = await statement(cur)
        await notify(cur, ((r["queue"], r["wake_at"]) for r in rows if r["status"] == "queued"))
    return rows


async def sweep(pool: AsyncConnectionPool) -> list[SweptRow]:
    """One sweep of lost leases and timed-out attempts."""
    return await end_attempts(pool, task_store.sweep)


def count_swept(pool: AsyncConnectionPool, metrics: Metrics) -> SweepHook:
    """A rescuer hook that counts the attempts a sweep ended. The sweep's rows carry no task
    name, so they are looked up by primary key (sweeps that end anything are rare)."""

    async def hook(rows: list[SweptRow]) -> None:
        async with single_statement(pool) as cur:
            names = await task_reads.names_of(cur, [r["id"] for r in rows])
        metrics.swept([{**r, "name": names.get(r["id"])} for r in rows])

    return hook

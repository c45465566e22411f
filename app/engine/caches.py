"""Per-process caches that save the hot path a round trip; they live in the server state.

Each is a hint the database can always overrule: a stale entry costs one extra statement or
a wake-up a little late, never a wrong answer.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from psycopg_pool import AsyncConnectionPool

from ..store import queues as queue_store
from ..store import workers as worker_store
from ..store.queues import QueueRow
from .tx import single_statement, transaction


class KnownQueues:
    """Names this process has already written to ``queues``, so sends skip the insert.

    A send inserts the rows of the names it does not know in its own transaction, and the names
    are remembered only after that commits: a refused send (unknown parent) leaves neither an
    empty queue row nor a cached name without its row.
    """

    def __init__(self) -> None:
        self._names: set[str] = set()

    def unknown(self, names: Iterable[str]) -> list[str]:
        """Names without a known row, for the send to insert."""
        return sorted(set(names) - self._names)

    def remember(self, names: Iterable[str]) -> None:
        """Only after the transaction that inserted the rows has committed."""
        self._names.update(names)


class QueueSettingsCache:
    """This process's copy of the queues whose settings differ from the default (a concurrency
    limit, or paused), so that a claim needs no extra round trip to learn them.

    Every queue not listed is unlimited and running. The copy is dropped when any replica
    changes a queue (NOTIFY ``!queues``) or the notifier reconnects, and re-read at least every
    ``ttl`` seconds in case a notification was lost.
    """

    def __init__(self, ttl: float = 1.0) -> None:
        self.ttl = ttl
        self._rows: dict[str, QueueRow] | None = None
        self._loaded_at = 0.0
        self._generation = 0

    def invalidate(self) -> None:
        self._generation += 1
        self._rows = None

    async def special(self, pool: AsyncConnectionPool) -> dict[str, QueueRow]:
        rows = self._rows
        if rows is not None and time.monotonic() - self._loaded_at < self.ttl:
            return rows
        generation, started = self._generation, time.monotonic()
        async with single_statement(pool) as cur:
            rows = {r["name"]: r for r in await queue_store.special(cur)}
        if generation == self._generation:  # no change announced while we read
            self._rows, self._loaded_at = rows, started
        return rows

    async def limited(self, pool: AsyncConnectionPool) -> set[str]:
        """Names of the queues with a concurrency limit or under flow control: a task
        finishing there may let a waiting claim through."""
        return {name for name, q in (await self.special(pool)).items()
                if q["concurrency_limit"] is not None or q.get("flow")}


class Sightings:
    """Debounced ``touch``: a worker's row is written at most every ``every`` seconds.

    Every claim and heartbeat would otherwise cost a committed write of its own (an fsync),
    which on the hot path costs more than the claim itself. ``last_seen_at`` may lag by up to
    ``every`` seconds, far below the offline threshold. A changed queue list is written at once.
    """

    def __init__(self, every: float = 5.0, max_entries: int = 100_000) -> None:
        self.every = every
        self.max_entries = max_entries
        self._seen: dict[str, tuple[float, Any]] = {}

    async def touch(self, pool: AsyncConnectionPool, worker_id: str,
                    queues: Sequence[str] | None = None,
                    task_names: Sequence[str] | None = None) -> None:
        now = time.monotonic()
        shape = None if queues is None else (tuple(queues), tuple(task_names or ()))
        last = self._seen.get(worker_id)
        if (last is not None and now - last[0] < self.every
                and (shape is None or shape == last[1])):
            return
        async with transaction(pool) as cur:
            await worker_store.touch(cur, worker_id, queues, task_names)
        if len(self._seen) >= self.max_entries:
            self._seen.clear()
        self._seen[worker_id] = (now, shape if shape is not None else (last or (0, None))[1])

    def forget(self, worker_id: str) -> None:
        self._seen.pop(worker_id, None)

"""Statements on ``events``: posted events, kept for the look-back of tasks that start waiting
after them (docs/durable.md).

A post and a suspend on one key serialise on a transaction-scoped advisory lock of the key
(``lock_keys``), taken before either reads the other's table: whichever commits second sees
the first, so an event can never slip between a task's look-back check and its wait.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypedDict, cast

from psycopg import AsyncCursor

from .sql import dumps

Cursor = AsyncCursor[Any]

# One lock space for event keys (the first argument of the two-int advisory lock).
LOCK_SPACE = 0x6277_0001  # "bw" + 1

EVENT_COLUMNS = "id, key, payload, idempotency_key, created_at"

INSERT_SQL = f"""
INSERT INTO events (key, payload, idempotency_key)
VALUES (%(key)s, %(payload)s::jsonb, %(idem)s)
ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING {EVENT_COLUMNS}
"""

# For each waiting task in ``ids`` that waits on an event: the first event of its key at or
# after its look-back start that it has not already received (a wait in a loop gets each
# event once).
MATCH_SQL = """
SELECT DISTINCT ON (w.task_id) w.task_id, e.id, e.key, e.payload, e.created_at
FROM task_waits w
JOIN events e ON e.key = w.key AND e.created_at >= w.since
WHERE w.task_id = ANY(%(ids)s) AND w.kind = 'event'
  AND NOT EXISTS (
      SELECT 1 FROM task_steps s
      WHERE s.task_id = w.task_id AND s.kind = 'event'
        AND s.result ->> 'event_id' = e.id::text)
ORDER BY w.task_id, e.id
"""


class EventRow(TypedDict):
    id: int
    key: str
    payload: Any
    idempotency_key: str | None
    created_at: datetime


class MatchRow(TypedDict):
    task_id: int
    id: int
    key: str
    payload: Any
    created_at: datetime


async def lock_keys(cur: Cursor, keys: Sequence[str]) -> None:
    """Serialise with every other post or suspend on these keys until this transaction ends
    (sorted, so that two transactions locking several keys cannot deadlock)."""
    for key in sorted(set(keys)):
        await cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_SPACE, key))


async def insert(cur: Cursor, key: str, payload: Any,
                 idempotency_key: str | None) -> EventRow | None:
    """Store an event; None when an event with this idempotency key exists already."""
    await cur.execute(INSERT_SQL, {"key": key, "payload": dumps(payload),
                                   "idem": idempotency_key})
    return cast(EventRow | None, await cur.fetchone())


async def by_idempotency_key(cur: Cursor, idempotency_key: str) -> EventRow | None:
    await cur.execute(f"SELECT {EVENT_COLUMNS} FROM events WHERE idempotency_key = %s",
                      (idempotency_key,))
    return cast(EventRow | None, await cur.fetchone())


async def matches(cur: Cursor, task_ids: Sequence[int]) -> list[MatchRow]:
    """Events already posted that the waits of ``task_ids`` look back to."""
    await cur.execute(MATCH_SQL, {"ids": list(task_ids)})
    return cast(list[MatchRow], await cur.fetchall())


async def prune(cur: Cursor, older_than_seconds: float, limit: int) -> int:
    """Delete those of the ``limit`` oldest events (by id, in step with their time) that are
    older than ``older_than_seconds``: a bounded read however large the table is."""
    await cur.execute(
        "DELETE FROM events WHERE id IN (SELECT id FROM (SELECT id, created_at FROM events "
        "ORDER BY id LIMIT %s) AS oldest WHERE created_at < now() - make_interval(secs => %s))",
        (limit, older_than_seconds))
    return cur.rowcount

"""Parents waiting on their children in SQL (statements only): a ``task_waits`` row of kind
``children`` whose ``detail.ids`` lists the children, in the order the parent gathers them.

A wait is ready when none of its children is queued, running or waiting. The checks lock
what they read so that a child finishing and its parent starting to wait never miss each
other (``app/engine/children.py`` says how).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

from psycopg import AsyncCursor

KIND = "children"

Cursor = AsyncCursor[Any]

# The children of a wait as a set of ids (``detail.ids``).
_IDS = "ARRAY(SELECT jsonb_array_elements_text(w.detail->'ids')::bigint)"


class ChildWaitRow(TypedDict):
    task_id: int
    ids: list[int]


class ChildOutcome(TypedDict):
    id: int
    status: str | None
    result: Any
    error: Any


async def lock_waits_of(cur: Cursor, parent_ids: Sequence[int]) -> list[int]:
    """Those of ``parent_ids`` that wait on children, their wait rows locked (in parent id
    order, so two reports lock them in the same order)."""
    await cur.execute(
        """SELECT task_id FROM task_waits WHERE kind = %s AND task_id = ANY(%s)
           ORDER BY task_id FOR UPDATE""", (KIND, sorted(set(parent_ids))))
    return [r["task_id"] for r in await cur.fetchall()]


async def lock_all_waits(cur: Cursor, limit: int) -> list[int]:
    """Parents waiting on children (the safety-net pass), their wait rows locked; rows
    another transaction holds are skipped, that one decides them."""
    await cur.execute(
        """SELECT task_id FROM task_waits WHERE kind = %s ORDER BY task_id
           LIMIT %s FOR UPDATE SKIP LOCKED""", (KIND, limit))
    return [r["task_id"] for r in await cur.fetchall()]


async def ready(cur: Cursor, parent_ids: Sequence[int]) -> list[ChildWaitRow]:
    """Of the given parents' children waits, those with every child finished."""
    await cur.execute(
        f"""SELECT w.task_id, {_IDS} AS ids FROM task_waits w
            WHERE w.kind = %s AND w.task_id = ANY(%s)
              AND NOT EXISTS (SELECT 1 FROM tasks c WHERE c.id = ANY({_IDS})
                              AND c.status IN ('queued', 'running', 'waiting'))""",
        (KIND, list(parent_ids)))
    return await cur.fetchall()  # type: ignore[return-value]


async def lock_children(cur: Cursor, parent_ids: Sequence[int]) -> None:
    """Share-lock the children of the given parents' waits: a report finishing one of them
    later waits for this transaction, and then finds the wait. A child a report holds now is
    skipped, not waited for (two reports each suspending a parent of the other's children
    would deadlock): that rare race is left to the sweeper."""
    await cur.execute(
        f"""SELECT c.id FROM tasks c WHERE c.id IN (
                SELECT unnest({_IDS}) FROM task_waits w
                WHERE w.kind = %s AND w.task_id = ANY(%s))
            ORDER BY c.id FOR SHARE SKIP LOCKED""", (KIND, list(parent_ids)))


async def outcomes(cur: Cursor, ids: Sequence[int]) -> list[ChildOutcome]:
    """Each child's status, result and error, in the given order (a child that no longer
    exists comes back with status None)."""
    await cur.execute(
        """SELECT o.id, t.status, t.result, t.error
           FROM unnest(%s::bigint[]) WITH ORDINALITY AS o(id, ord)
           LEFT JOIN tasks t ON t.id = o.id ORDER BY o.ord""", (list(ids),))
    return await cur.fetchall()  # type: ignore[return-value]

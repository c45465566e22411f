"""Bulk task statements: the filter of a bulk operation as SQL, the counts of a dry run, and
the batched delete (docs/operations.md, "Bulk operations").

A bulk operation walks the tasks its filter selects in id order, a batch at a time, and
changes each batch with the statement of the single-task action (``tasks.cancel``,
``tasks.retry_many``) or :func:`delete`; every one of them re-checks the state it changes, so
a task that moved on between the read and the write is left alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from psycopg import AsyncCursor

from ...protocol import TERMINAL_STATUSES as FINISHED

Cursor = AsyncCursor[Any]

# What each action can change: the rest of what a filter selects is counted as matched only.
# Cancel: queued and waiting tasks, and running ones not yet asked to stop (``CANCEL_SQL``).
# Retry: failed or cancelled (``RETRY_SQL``).
# Delete: finished tasks outside workflow runs (a run's tasks go with the run), whose whole
# tree is finished (a tree is never cut under a running task).
ACTIONABLE = {
    "cancel": """(status IN ('queued', 'waiting')
        OR (status = 'running' AND NOT cancel_requested))""",
    "retry": "status IN ('failed', 'cancelled')",
    "delete": f"""status IN {FINISHED} AND workflow_run_id IS NULL
        AND NOT EXISTS (SELECT 1 FROM tasks m WHERE m.root_id = tasks.root_id
                        AND (m.status NOT IN {FINISHED} OR m.workflow_run_id IS NOT NULL))""",
}

# filter field -> its condition (each a parameter of the same name).
CONDITIONS = {
    "queue": "queue = %(queue)s",
    "name": "name = %(name)s",
    "statuses": "status = ANY(%(statuses)s)",
    "created_after": "created_at >= %(created_after)s",
    "created_before": "created_at < %(created_before)s",
    "root_id": "root_id = %(root_id)s",
    "workflow_run_id": "workflow_run_id = %(workflow_run_id)s",
    "error_type": "error->>'type' = %(error_type)s",
    "ids": "id = ANY(%(ids)s)",
}

DELETE_SQL = f"""
WITH del AS (
    DELETE FROM tasks WHERE id = ANY(%(ids)s) AND {ACTIONABLE["delete"]}
    RETURNING id
), ev AS (
    DELETE FROM task_events e USING del WHERE e.task_id = del.id
), lg AS (
    DELETE FROM task_logs g USING del WHERE g.task_id = del.id
)
SELECT count(*) AS n FROM del
"""


def where(selection: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The WHERE condition of a filter (its fields set to a value; empty lists count as
    unset) and its parameters; TRUE for an empty filter."""
    params = {k: (list(v) if isinstance(v, (list, tuple)) else v)
              for k, v in selection.items()
              if k in CONDITIONS and v is not None and v != () and v != []}
    clause = " AND ".join(CONDITIONS[k] for k in CONDITIONS if k in params)
    return clause or "TRUE", params


async def count(cur: Cursor, selection: Mapping[str, Any], action: str) -> tuple[int, int]:
    """(tasks the filter selects, of which the action would change)."""
    clause, params = where(selection)
    await cur.execute(
        f"SELECT count(*) AS matched, count(*) FILTER (WHERE {ACTIONABLE[action]}) AS changed "
        f"FROM tasks WHERE {clause}", params)
    row = await cur.fetchone()
    assert row is not None
    return int(row["matched"]), int(row["changed"])


async def next_batch(cur: Cursor, selection: Mapping[str, Any], action: str,
                     after_id: int, limit: int) -> list[int]:
    """Ids after ``after_id`` (ascending) that the filter selects and the action can change."""
    clause, params = where(selection)
    await cur.execute(
        f"SELECT id FROM tasks WHERE {clause} AND {ACTIONABLE[action]} AND id > %(after)s "
        "ORDER BY id LIMIT %(limit)s", {**params, "after": after_id, "limit": limit})
    return [r["id"] for r in await cur.fetchall()]


async def delete(cur: Cursor, ids: Sequence[int]) -> int:
    """Delete those of ``ids`` that are still deletable, with their history and logs."""
    await cur.execute(DELETE_SQL, {"ids": list(ids)})
    row = await cur.fetchone()
    return int(row["n"]) if row else 0

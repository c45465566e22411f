"""Event triggers in SQL (statements only): which tasks and workflows an event key starts.

A target's registration replaces its keys (``replace``); an event reads the targets of its key
(``targets_of``, the primary key's range), each task joined with its registered definition,
whose queue and defaults the started task is sent with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

from psycopg import AsyncCursor

from .sql import dumps


class TargetRow(TypedDict):
    kind: str
    target: str
    # A task's registered definition (None for a workflow, or a task no worker registered).
    queue: str | None
    defaults: dict[str, Any] | None


async def replace(cur: AsyncCursor[Any], kind: str, keys_by_target: dict[str, Sequence[str]]) -> None:
    """Each given target's event keys become exactly the ones given (none: no trigger)."""
    if not keys_by_target:
        return
    await cur.execute("DELETE FROM event_triggers WHERE kind = %s AND target = ANY(%s)",
                      (kind, list(keys_by_target)))
    rows = [{"event_key": key, "target": target}
            for target, keys in keys_by_target.items() for key in dict.fromkeys(keys)]
    if rows:
        await cur.execute(
            """INSERT INTO event_triggers (event_key, kind, target)
               SELECT event_key, %s, target FROM jsonb_to_recordset(%s::jsonb)
                 AS x(event_key text, target text)
               ON CONFLICT DO NOTHING""",
            (kind, dumps(rows)))


async def targets_of(cur: AsyncCursor[Any], event_key: str) -> list[TargetRow]:
    """What ``event_key`` starts, tasks first, each kind in name order."""
    await cur.execute(
        """SELECT tr.kind, tr.target, d.queue, d.defaults FROM event_triggers tr
           LEFT JOIN task_definitions d ON tr.kind = 'task' AND d.name = tr.target
           WHERE tr.event_key = %s ORDER BY tr.kind, tr.target""", (event_key,))
    return await cur.fetchall()  # type: ignore[return-value]

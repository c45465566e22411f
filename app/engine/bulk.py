"""Bulk operations: cancel, retry or delete every task a filter selects, after a dry-run
count if asked (docs/operations.md, "Bulk operations").

A bulk operation is many short transactions, one per batch of ``BATCH`` tasks in id order,
never one long one: claims and reports go on between batches, and a batch that dies in a
deadlock with a worker's report is run again. Each batch applies the single-task statement
(cancel, retry) or the delete, which re-check the state they change, so the answer counts
exactly what was changed. Nothing outside the filter is read for a change: the filter is
part of every batch's query.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from psycopg import errors as pg_errors

from ...protocol import TASK_STATUSES
from ..store import bulk as store
from ..store import tasks as task_store
from ..store.sql import notify
from .errors import InvalidInput
from .tx import transaction

if TYPE_CHECKING:
    from ..state import ServerState

Action = Literal["cancel", "retry", "delete"]
ACTIONS: tuple[Action, ...] = ("cancel", "retry", "delete")
BATCH = 1000
DEADLOCK_TRIES = 5


@dataclass(frozen=True, slots=True)
class TaskSelection:
    """The filter of a bulk operation; unset fields select everything. An empty selection
    is refused unless ``all`` says so, so a forgotten option never means every task."""

    queue: str | None = None
    name: str | None = None
    statuses: tuple[str, ...] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    root_id: int | None = None
    workflow_run_id: int | None = None
    error_type: str | None = None
    ids: tuple[int, ...] = ()
    all: bool = False

    @classmethod
    def of_ids(cls, ids: list[int] | tuple[int, ...]) -> TaskSelection:
        """The tasks with these ids (rows selected in the studio)."""
        return cls(ids=tuple(ids))

    def is_empty(self) -> bool:
        return not any(v not in (None, ()) for k, v in asdict(self).items() if k != "all")


@dataclass(frozen=True, slots=True)
class BulkResult:
    action: str
    matched: int  # tasks the filter selects, in any state
    changed: int  # tasks the action changed (a dry run: would change)
    dry_run: bool


def check(action: str, selection: TaskSelection) -> None:
    """Refuse what a bulk operation must not guess about (422, nothing changed)."""
    if action not in ACTIONS:
        raise InvalidInput(f"unknown bulk action {action!r}; one of {', '.join(ACTIONS)}")
    unknown = sorted(set(selection.statuses) - set(TASK_STATUSES))
    if unknown:
        raise InvalidInput(f"unknown status {', '.join(unknown)}",
                           {"statuses": list(TASK_STATUSES)}, code="unknown_status")
    if selection.is_empty() and not selection.all:
        raise InvalidInput(f"a bulk {action} needs a filter, or all=true to act on every task",
                           code="empty_filter")
    if action == "delete":
        live = sorted(set(selection.statuses) - {"succeeded", "failed", "cancelled"})
        if live:
            raise InvalidInput(
                f"delete removes finished tasks only, not {', '.join(live)} ones: cancel them "
                "first", {"statuses": live}, code="not_finished")
    if (selection.created_after and selection.created_before
            and selection.created_after >= selection.created_before):
        raise InvalidInput("created_after must be before created_before", code="empty_range")


async def _apply(state: ServerState, action: Action, ids: list[int]) -> int:
    """Change one batch in its own transaction; how many changed."""
    for attempt in range(DEADLOCK_TRIES):
        try:
            async with transaction(state.pool) as cur:
                if action == "cancel":
                    return len(await task_store.cancel(cur, ids))
                if action == "retry":
                    rows = await task_store.retry_many(cur, ids)
                    await notify(cur, sorted({(r["queue"], None) for r in rows}))
                    return len(rows)
                return await store.delete(cur, ids)
        except pg_errors.DeadlockDetected:
            # A worker's report locked some of these rows in another order; that
            # transaction went on, this one was rolled back whole: run it again.
            if attempt == DEADLOCK_TRIES - 1:
                raise
            await asyncio.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


async def bulk_tasks(state: ServerState, action: Action, selection: TaskSelection, *,
                     dry_run: bool = False) -> BulkResult:
    """Cancel (queued: at once; running: asked to stop, as the single cancel), retry (failed
    or cancelled: queued again) or delete (finished, outside workflow runs and unfinished
    trees) every task ``selection`` selects. A dry run counts and changes nothing."""
    check(action, selection)
    fields = asdict(selection)
    async with transaction(state.pool) as cur:
        matched, changeable = await store.count(cur, fields, action)
    if dry_run:
        return BulkResult(action, matched, changeable, True)
    changed, after = 0, 0
    while True:
        async with transaction(state.pool) as cur:
            ids = await store.next_batch(cur, fields, action, after, BATCH)
        if not ids:
            break
        changed += await _apply(state, action, ids)
        after = ids[-1]
        if len(ids) < BATCH:
            break
    return BulkResult(action, matched, changed, False)

"""Tasks as the API and the studio show them: one task with its history and logs, and
filtered lists, newest first."""

from __future__ import annotations

from typing import Any

from ..store import steps as step_store
from ..store import task_reads
from ..store import waits as wait_store
from ..store.task_reads import EventRow, LogRow, TaskBrief, TaskFilter, TaskRow
from .paging import Db, Page, connection, fetch, found, page_of

__all__ = ["EventRow", "LogRow", "TaskBrief", "TaskDetail", "TaskFilter", "TaskRow",
           "child_count", "children", "find_task", "get_task", "list_tasks", "task_brief",
           "task_steps"]

# The task row plus "history" (its events, oldest first), "logs" (one per attempt), "steps"
# (a durable task's finished steps, in order, with timing) and "wait" (what a waiting task
# waits for, or None; docs/durable.md).
TaskDetail = dict[str, Any]


async def list_tasks(db: Db, filters: TaskFilter, *, cursor: int | None, limit: int,
                     brief: bool = False) -> Page[TaskRow]:
    """Newest first, ids below ``cursor``. ``brief``: the studio's list columns (no result
    or error bodies; ``args_preview``, the first 160 characters of the args)."""
    async with connection(db) as conn:
        rows = await task_reads.list_tasks(conn, filters, before_id=cursor, limit=limit,
                                           brief=brief)
    return page_of(rows, limit, lambda r: r["id"])


async def find_task(db: Db, task_id: int) -> TaskDetail | None:
    async with connection(db) as conn:
        task = await task_reads.get(conn, task_id)
        if task is None:
            return None
        detail: TaskDetail = dict(task)
        detail["history"] = await task_reads.history(conn, task_id)
        detail["logs"] = await task_reads.logs(conn, task_id)
        detail["steps"] = await step_store.of_task(conn, task_id)
        detail["wait"] = await wait_store.of_task(conn, task_id)
    return detail


async def task_steps(db: Db, task_id: int) -> tuple[TaskBrief, list[step_store.StepRow]]:
    """The task (brief) and its finished steps in order, as a re-run reads them."""
    async with connection(db) as conn:
        task = found(await task_reads.brief(conn, task_id), "task", task_id)
        return task, await step_store.of_task(conn, task_id)


async def get_task(db: Db, task_id: int) -> TaskDetail:
    return found(await find_task(db, task_id), "task", task_id)


async def task_brief(db: Db, task_id: int) -> TaskBrief | None:
    return await fetch(db, task_reads.brief, task_id)


async def children(db: Db, parent_id: int, limit: int) -> list[TaskRow]:
    """The first ``limit`` children, oldest first (brief columns)."""
    return await fetch(db, task_reads.children, parent_id, limit)


async def child_count(db: Db, parent_id: int) -> int:
    return await fetch(db, task_reads.child_count, parent_id)

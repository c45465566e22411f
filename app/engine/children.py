"""Parents that wait on their children without holding a process (issue 11, item 6).

A durable parent that gathers children (``child.run``, ``run_many``, ``wait_all``...)
suspends with a wait of kind ``children`` listing their ids. It resumes, with every child's
status, result and error in order as the wait's result, as soon as none of them is queued,
running or waiting:

- when it suspends, if they have all finished already (``ready_at_suspend``, this kind's
  entry in ``suspend.READY_CHECKS``, registered below: ``report.py``, the one caller of
  ``suspend_in``, imports this module);
- when a report finishes the last of them (``after_finished_in``, in the report's
  transaction);
- otherwise (a child cancelled or failed by the rescuer, outside any report) at the next
  pass of the safety net (``sweep``, ``app/services/children.py``).

The two ends do not miss each other: a suspend share-locks the children before it reads
them, and a report locks the parents' waits before it reads the children (in a statement of
its own, so it sees every report committed before it got the lock). The one gap, a child
whose report is in flight while its parent suspends (its row is skipped, not waited for, so
that two such reports cannot deadlock), closes at the sweeper's next pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg_pool import AsyncConnectionPool

from ..store import children as store
from ..store.waits import WaitRow
from .suspend import READY_CHECKS, Resolution, resume_in
from .tx import Cursor, transaction

KIND = store.KIND
SWEEP_BATCH = 1000


def outcome_list(rows: Sequence[store.ChildOutcome]) -> list[dict[str, Any]]:
    """What the parent reads back: one ``{id, status, result, error}`` per child, in order."""
    return [{"id": r["id"], "status": r["status"] or "missing", "result": r["result"],
             "error": r["error"]} for r in rows]


async def _resolutions(cur: Cursor, parent_ids: Sequence[int]) -> list[Resolution]:
    out = []
    for row in await store.ready(cur, parent_ids):
        outcomes = outcome_list(await store.outcomes(cur, row["ids"]))
        out.append(Resolution(row["task_id"], {"timed_out": False, "value": outcomes},
                              kind=KIND))
    return out


async def ready_at_suspend(cur: Cursor, waits: list[WaitRow]) -> list[Resolution]:
    """Parents that just suspended on children that have all finished already."""
    parents = [w["task_id"] for w in waits]
    await store.lock_children(cur, parents)
    return await _resolutions(cur, parents)


async def after_finished_in(cur: Cursor, parent_ids: Sequence[int]) -> int:
    """In a report's transaction: resume the parents whose last child just finished, given
    the ``parent_id`` of each task it finished (the report statement returns it; it never
    changes). A report finds a wait through the finished task's parent, so a report of tasks
    without one (the common case) costs no statement here; a wait on tasks that are not the
    waiter's children is left to the sweeper, as it always was."""
    if not parent_ids:
        return 0
    parents = await store.lock_waits_of(cur, parent_ids)
    if not parents:
        return 0
    return len(await resume_in(cur, await _resolutions(cur, parents)))


async def sweep(pool: AsyncConnectionPool, limit: int = SWEEP_BATCH) -> int:
    """The safety net: resume every parent whose children have all finished, however they
    finished; how many were resumed."""
    async with transaction(pool) as cur:
        parents = await store.lock_all_waits(cur, limit)
        if not parents:
            return 0
        return len(await resume_in(cur, await _resolutions(cur, parents)))


READY_CHECKS[KIND] = ready_at_suspend

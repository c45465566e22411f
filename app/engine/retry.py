"""Retry a failed or cancelled task by hand: queued again now, with one more attempt allowed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..store import task_reads
from ..store import tasks as task_store
from ..store.sql import notify
from .errors import Conflict, NotFound
from .tx import transaction

if TYPE_CHECKING:
    from ..state import ServerState


async def retry_task(state: ServerState, task_id: int) -> None:
    async with transaction(state.pool) as cur:
        row = await task_store.retry(cur, task_id)
        if row is not None:
            await notify(cur, [(row["queue"], None)])
            return
        status = await task_reads.status_of(cur, task_id)
    if status is None:
        raise NotFound.of("task", task_id)
    if status in ("failed", "cancelled"):
        raise Conflict(f"task {task_id}'s while-active key is held by an unfinished task; "
                       "it can be retried once that one finishes", {"status": status},
                       code="key_held")
    raise Conflict(f"task {task_id} is {status}; only failed or cancelled tasks can be retried",
                   {"status": status}, code="not_retryable")

"""Cancel a task: a queued one is cancelled at once, a running one is asked to stop (its
worker learns it on the next heartbeat)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..store import task_reads
from ..store import tasks as task_store
from .errors import Conflict, NotFound
from .tx import transaction

if TYPE_CHECKING:
    from ..state import ServerState


@dataclass(frozen=True, slots=True)
class Cancelled:
    id: int
    status: str  # "cancelled", or "running" while its worker is asked to stop


async def cancel_task(state: ServerState, task_id: int) -> Cancelled:
    async with transaction(state.pool) as cur:
        rows = await task_store.cancel(cur, [task_id])
        if not rows:
            status = await task_reads.status_of(cur, task_id)
            if status is None:
                raise NotFound.of("task", task_id)
            raise Conflict(f"task {task_id} is already {status}", {"status": status},
                           code="already_finished")
    return Cancelled(id=task_id, status=rows[0]["status"])

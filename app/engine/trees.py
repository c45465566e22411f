"""Cancelling a task tree: a task and every descendant, in one transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..store import tasks as task_store
from ..store import trees as store
from .errors import NotFound
from .tx import transaction

if TYPE_CHECKING:
    from ..state import ServerState


async def cancel_subtree(state: ServerState, task_id: int) -> dict[str, Any]:
    """Queued tasks of the subtree are cancelled now, running ones asked to stop."""
    async with transaction(state.pool) as cur:
        ids = await store.subtree_ids(cur.connection, task_id)
        if not ids:
            raise NotFound.of("task", task_id)
        rows = await task_store.cancel(cur, ids)
    return {
        "id": task_id,
        "cancelled": sorted(r["id"] for r in rows if r["status"] == "cancelled"),
        "cancel_requested": sorted(r["id"] for r in rows if r["status"] == "running"),
    }

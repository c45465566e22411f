"""Configure a queue (its concurrency limit and pause flag) and purge its queued tasks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..store import queues as queue_store
from ..store import tasks as task_store
from ..store.queues import QueueRow
from .tx import transaction

if TYPE_CHECKING:
    from ..state import ServerState

KEEP = object()  # "leave the limit as it is" (None means: no limit)
RETENTION_COLUMNS = queue_store.RETENTION_COLUMNS


async def configure_queue(state: ServerState, name: str, *,
                          concurrency_limit: int | None | object = KEEP,
                          paused: bool | None = None,
                          stuck: Mapping[str, Any] | None = None,
                          retention: Mapping[str, Any] | None = None) -> QueueRow:
    """Create or change queue ``name``; ``paused`` None leaves the flag as it is; ``stuck``
    holds the stuck settings to change (``stuck_after_seconds``, ``stuck_action``; None
    values clear them), ``retention`` the retention ones (``retention_<status>_seconds``;
    None: the server's)."""
    set_limit = concurrency_limit is not KEEP
    limit = concurrency_limit if isinstance(concurrency_limit, int) else None
    async with transaction(state.pool) as cur:
        row = await queue_store.upsert(cur, name, concurrency_limit=limit,
                                       set_limit=set_limit, paused=paused, stuck=stuck or {},
                                       retention=retention or {})
    # Committed: this replica's claims see it from now on; the others on the NOTIFY.
    state.caches.queue_settings.invalidate()
    return row


async def purge_queue(state: ServerState, name: str) -> int:
    """Cancel every queued task of queue ``name`` in one statement; answers how many.

    Running tasks are left alone (cancel them one by one); every purged task keeps its
    history, with a ``cancelled`` event."""
    async with transaction(state.pool) as cur:
        return await task_store.purge(cur, name)

"""Configure a queue: its concurrency limit and pause flag."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..store import queues as queue_store
from ..store.queues import QueueRow
from .tx import transaction

if TYPE_CHECKING:
    from ..state import ServerState

KEEP = object()  # "leave the limit as it is" (None means: no limit)


async def configure_queue(state: ServerState, name: str, *,
                          concurrency_limit: int | None | object = KEEP,
                          paused: bool | None = None) -> QueueRow:
    """Create or change queue ``name``; ``paused`` None leaves the flag as it is."""
    set_limit = concurrency_limit is not KEEP
    limit = concurrency_limit if isinstance(concurrency_limit, int) else None
    async with transaction(state.pool) as cur:
        row = await queue_store.upsert(cur, name, concurrency_limit=limit,
                                       set_limit=set_limit, paused=paused)
    # Committed: this replica's claims see it from now on; the others on the NOTIFY.
    state.caches.queue_settings.invalidate()
    return row

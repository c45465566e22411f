"""Release: hand leased tasks back without spending an attempt (a worker shutting down)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..store import leases as lease_store
from ..store.sql import notify
from .tx import transaction

if TYPE_CHECKING:
    from ..state import ServerState


async def release(state: ServerState, worker_id: str,
                  leases: Sequence[tuple[int, str]]) -> list[int]:
    """``leases``: (task id, lease token); the answer lists the tasks queued again."""
    if not leases:
        return []
    items = [{"id": task_id, "lease_token": token} for task_id, token in leases]
    async with transaction(state.pool) as cur:
        rows = await lease_store.release(cur, worker_id, items)
        await notify(cur, ((r["queue"], None) for r in rows))
    return [r["id"] for r in rows]

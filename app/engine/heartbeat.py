"""Heartbeat: extend a worker's leases; tell it which tasks to cancel and which it lost."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..store import leases as lease_store
from ..store.leases import HeartbeatRow
from .tx import single_statement

if TYPE_CHECKING:
    from ..state import ServerState


@dataclass(frozen=True, slots=True)
class Beat:
    tasks: list[HeartbeatRow]
    cancel: list[int]  # cancel was asked: the worker should stop these
    lost: list[int]  # no longer held under this token (re-leased, finished or unknown)
    lease_seconds: float


async def heartbeat(state: ServerState, worker_id: str,
                    leases: Sequence[tuple[int, str, float | None]]) -> Beat:
    """``leases``: (task id, lease token, idle seconds) of the tasks the worker runs; idle
    seconds (since the attempt last showed progress) move its ``last_progress_at``, and None
    counts the heartbeat itself as progress (a worker that does not measure it)."""
    lease_seconds = state.settings.lease_seconds
    rows: list[HeartbeatRow] = []
    if leases:
        items = [{"id": task_id, "lease_token": token, "idle_seconds": idle}
                 for task_id, token, idle in leases]
        async with single_statement(state.pool) as cur:
            rows = await lease_store.heartbeat(cur, items, lease_seconds)
    await state.caches.sightings.touch(state.pool, worker_id)
    return Beat(tasks=rows, cancel=[r["id"] for r in rows if r["cancel"]],
                lost=[r["id"] for r in rows if not r["held"]], lease_seconds=lease_seconds)

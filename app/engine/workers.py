"""Workers announce themselves (with the task definitions they serve) and say goodbye."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ...protocol import MAX_WORKER_INFO_BYTES
from ..store import workers as worker_store
from . import triggers
from .payload import check_size
from .tx import transaction

if TYPE_CHECKING:
    from ..state import ServerState


async def register_worker(state: ServerState, worker_id: str, queues: Sequence[str],
                          info: Mapping[str, Any],
                          definitions: Sequence[Mapping[str, Any]]) -> None:
    """``definitions``: name, queue, defaults, args_schema of each task the worker serves.
    ``info`` is free-form but bounded: every worker list and studio page shows it."""
    check_size(info, MAX_WORKER_INFO_BYTES, "worker info")
    state.caches.sightings.forget(worker_id)
    async with transaction(state.pool) as cur:
        await worker_store.register(cur, worker_id, queues, dict(info),
                                    [dict(d) for d in definitions])
        await triggers.register_in(cur, "task", {d["name"]: d.get("on_events") or []
                                                 for d in definitions})


async def stop_worker(state: ServerState, worker_id: str) -> None:
    state.caches.sightings.forget(worker_id)
    async with transaction(state.pool) as cur:
        await worker_store.stop(cur, worker_id)

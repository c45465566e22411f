"""A run's channel: key-value state scoped to one run, written by its node tasks or the API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..store import workflows as store
from .errors import Conflict, NotFound
from .payload import check_size
from .tx import transaction

if TYPE_CHECKING:
    from ..state import ServerState


async def set_value(state: ServerState, run_id: int, key: str, value: Any) -> None:
    check_size(value, state.settings.max_payload_bytes, "value")
    async with transaction(state.pool) as cur:
        if not await store.run_exists(cur.connection, run_id):
            raise NotFound.of("workflow run", run_id)
        await store.channel_set(cur.connection, run_id, key, value)


async def increment(state: ServerState, run_id: int, key: str, by: int) -> int:
    """Atomic add to an integer value (absent counts as 0)."""
    async with transaction(state.pool) as cur:
        if not await store.run_exists(cur.connection, run_id):
            raise NotFound.of("workflow run", run_id)
        value = await store.channel_increment(cur.connection, run_id, key, by)
    if value is None:
        raise Conflict(f"channel key {key!r} of run {run_id} does not hold an integer",
                       {"run_id": run_id, "key": key}, code="not_an_integer")
    return value

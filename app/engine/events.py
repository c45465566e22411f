"""Post an event: store it (idempotent by its id), resume every task waiting on its key, and
run the event's hook, all in one transaction (docs/durable.md).

The post takes the key's advisory lock before it reads the waits, as a suspend does before it
reads the events (``store/events.py``): an event is never lost between a task's look-back
check and its wait.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..store import events as event_store
from ..store import waits as wait_store
from ..store.events import EventRow
from . import triggers
from .errors import InvalidInput
from .payload import check_size
from .suspend import Resolution, event_result, resume_in
from .tx import Cursor, transaction

if TYPE_CHECKING:
    from ..metrics import Metrics
    from ..state import ServerState


@dataclass(frozen=True, slots=True)
class Posted:
    event_id: int
    duplicate: bool  # an event with this id was posted before: nothing was done again
    resumed: int  # waiting tasks this post resumed


async def on_event_in(cur: Cursor, event: EventRow, metrics: Metrics | None) -> None:
    """The hook for what a NEW event starts besides waking waiting tasks (called once per
    event, in the post's transaction). Event triggers (helper C2) start their runs here."""
    await triggers.start_in(cur, event["key"], event["payload"],
                             triggers.event_ref(event), metrics)


async def post_event(state: ServerState, key: str, payload: Any,
                     idempotency_key: str | None = None) -> Posted:
    """Store the event and resume the tasks waiting on ``key`` with its payload. A repeat of
    an ``idempotency_key`` answers the first event's id and changes nothing."""
    if not key:
        raise InvalidInput("an event needs a key", code="missing_key")
    check_size(payload, state.settings.max_payload_bytes, "event payload")
    async with transaction(state.pool) as cur:
        await event_store.lock_keys(cur, [key])
        event = await event_store.insert(cur, key, payload, idempotency_key)
        if event is None and idempotency_key is not None:
            first = await event_store.by_idempotency_key(cur, idempotency_key)
            return Posted(first["id"] if first else 0, True, 0)
        assert event is not None
        waiting = await wait_store.on_key(cur, "event", key)
        resumed = await resume_in(cur, [Resolution(t, event_result(event), kind="event",
                                                   key=key) for t in waiting])
        await on_event_in(cur, event, state.metrics)
    return Posted(event["id"], False, len(resumed))

"""A task's progress and the tail of its streamed text, as the studio's task page shows it
(the API's readers follow the stream itself: ``app/engine/stream.py``)."""

from __future__ import annotations

from typing import Any

from ..store import streams as store
from .paging import Db, connection

TAIL_CHUNKS = 500  # the page shows the latest chunks; the stream has them all


async def task_progress(db: Db, task_id: int) -> dict[str, Any] | None:
    """``progress`` (0..1 or None), ``message``, ``chunks`` (how many in all), ``text`` (the
    last :data:`TAIL_CHUNKS` chunks joined) and ``truncated``; None when the task has
    streamed nothing and reported no progress."""
    async with connection(db) as conn:
        state = await store.state(conn, task_id)
        if state is None:
            return None
        tail = await store.chunks_tail(conn, task_id, TAIL_CHUNKS)
    return {"progress": state["progress"], "message": state["message"],
            "chunks": state["chunks"], "text": "".join(c["data"] for c in tail),
            "truncated": state["chunks"] > len(tail)}

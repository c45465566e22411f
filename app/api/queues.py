"""Queue settings: concurrency limits and pausing."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from ..jsonutil import StrictJsonRoute
from ..store import queues as queue_store
from .deps import Pool, QueueCacheDep
from .schemas import QueueIn

router = APIRouter(prefix="/v1/queues", tags=["queues"], route_class=StrictJsonRoute)

QueuePath = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[\w][\w.:\-/]*$")]


@router.get("", summary="Queues with task counts by status")
async def list_queues(pool: Pool) -> dict[str, Any]:
    async with pool.connection() as conn:
        return {"queues": await queue_store.stats(conn)}


@router.put("/{name}", summary="Set a queue's concurrency limit (null: none) or pause it")
async def configure_queue(name: QueuePath, body: QueueIn, pool: Pool,
                          queue_cache: QueueCacheDep) -> dict[str, Any]:
    async with pool.connection() as conn:
        row = await queue_store.upsert(
            conn, name, concurrency_limit=body.concurrency_limit,
            set_limit="concurrency_limit" in body.model_fields_set, paused=body.paused)
    # Committed: this replica's claims see it from now on; the others on the NOTIFY.
    queue_cache.invalidate()
    return row

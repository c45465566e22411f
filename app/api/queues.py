"""Queue settings: concurrency limits and pausing."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from ... import protocol
from ..engine.queues import KEEP, configure_queue
from ..jsonutil import StrictJsonRoute
from ..read import queues as read
from .deps import Server
from .schemas import QueueIn

router = APIRouter(prefix="/v1/queues", tags=["queues"], route_class=StrictJsonRoute)

QueuePath = Annotated[str, Path(min_length=1, max_length=protocol.QUEUE_NAME_MAX,
                                pattern=protocol.QUEUE_NAME_PATTERN)]


@router.get("", summary="Queues with task counts by status")
async def list_queues(server: Server) -> dict[str, Any]:
    return {"queues": await read.queue_stats(server.pool)}


@router.put("/{name}", summary="Set a queue's concurrency limit (null: none) or pause it")
async def configure(name: QueuePath, body: QueueIn, server: Server) -> dict[str, Any]:
    limit = body.concurrency_limit if "concurrency_limit" in body.model_fields_set else KEEP
    return dict(await configure_queue(server, name, concurrency_limit=limit, paused=body.paused))

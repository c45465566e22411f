"""Queue settings (concurrency limits, pausing) and purging a queue's queued tasks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from ... import protocol
from .. import access
from ..engine.queues import KEEP, RETENTION_COLUMNS, configure_queue, purge_queue
from ..jsonutil import StrictJsonRoute
from ..read import overview
from ..read import queues as read
from .answers import PurgedOut, QueueSettingsOut, QueuesOut, ThroughputOut
from .deps import CallerDep, Server
from .schemas import QueueIn

router = APIRouter(prefix="/v1/queues", tags=["queues"], route_class=StrictJsonRoute)

QueuePath = Annotated[str, Path(min_length=1, max_length=protocol.QUEUE_NAME_MAX,
                                pattern=protocol.QUEUE_NAME_PATTERN)]


@router.get("", response_model=QueuesOut, summary="Queues with task counts by status")
async def list_queues(server: Server) -> dict[str, Any]:
    """Every queue with its settings and how many of its tasks are in each status."""
    return {"queues": await read.queue_stats(server.pool)}


@router.get("/throughput", response_model=ThroughputOut, name="get_queue_throughput",
            summary="Tasks finished per minute in the last hour, by queue")
async def throughput(server: Server) -> dict[str, Any]:
    """Per queue, tasks succeeded and failed each minute of the last hour."""
    _, series = await overview.queue_activity(server.pool)
    return {"minutes": overview.MINUTES, "queues": series}


@router.put("/{name}", response_model=QueueSettingsOut, name="configure_queue",
            summary="Set a queue's concurrency limit (null: none), pause it, or "
            "set its stuck rule")
async def configure(name: QueuePath, body: QueueIn, server: Server,
                    caller: CallerDep) -> dict[str, Any]:
    """Change the settings given (omitted ones stay); answers the queue's settings."""
    access.check_queues(caller, [name])
    limit = body.concurrency_limit if "concurrency_limit" in body.model_fields_set else KEEP
    stuck = {k: getattr(body, k) for k in ("stuck_after_seconds", "stuck_action")
             if k in body.model_fields_set}
    retention = {k: getattr(body, k) for k in RETENTION_COLUMNS if k in body.model_fields_set}
    return dict(await configure_queue(server, name, concurrency_limit=limit, paused=body.paused,
                                      stuck=stuck, retention=retention))


@router.post("/{name}/purge", response_model=PurgedOut, name="purge_queue",
             summary="Cancel every queued task of a queue (running ones stay)")
async def purge(name: QueuePath, server: Server) -> dict[str, Any]:
    """Cancel every queued task of a queue; running tasks go on."""
    return {"queue": name, "purged": await purge_queue(server, name)}

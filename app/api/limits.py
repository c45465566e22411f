"""Named rate limits (create, change, list, read, delete) and a queue's own rate limit
(docs/flow-control.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from ... import protocol
from .. import access
from ..engine import limits as engine
from ..jsonutil import StrictJsonRoute
from .answers import (
    QueueRateLimitOut,
    RateLimitDeletedOut,
    RateLimitListOut,
    RateLimitOut,
    RateLimitStateOut,
)
from .deps import CallerDep, Server
from .schemas import QueueRateLimitIn, RateLimitIn

router = APIRouter(prefix="/v1", tags=["flow control"], route_class=StrictJsonRoute)

LimitPath = Annotated[str, Path(min_length=1, max_length=protocol.RATE_LIMIT_NAME_MAX,
                                pattern=protocol.RATE_LIMIT_NAME_PATTERN)]
QueuePath = Annotated[str, Path(min_length=1, max_length=protocol.QUEUE_NAME_MAX,
                                pattern=protocol.QUEUE_NAME_PATTERN)]


@router.put("/rate-limits/{name}", response_model=RateLimitOut,
            summary="Create or change a named rate limit")
async def put_rate_limit(name: LimitPath, body: RateLimitIn, server: Server) -> dict[str, Any]:
    """The limit as stored: units per period_seconds, spaced evenly, burst more at once."""
    return dict(await engine.put_limit(server, name, body.units, body.period_seconds,
                                       body.burst))


@router.get("/rate-limits", response_model=RateLimitListOut, summary="List rate limits")
async def list_rate_limits(server: Server) -> dict[str, Any]:
    """Every named rate limit, by name."""
    return {"rate_limits": await engine.list_limits(server)}


@router.get("/rate-limits/{name}", response_model=RateLimitStateOut,
            summary="A rate limit with its keys' state")
async def get_rate_limit(name: LimitPath, server: Server) -> dict[str, Any]:
    """The limit and, per key, when its bucket is full again (full_at)."""
    return await engine.get_limit(server, name)


@router.delete("/rate-limits/{name}", response_model=RateLimitDeletedOut,
               summary="Delete a rate limit")
async def delete_rate_limit(name: LimitPath, server: Server) -> dict[str, Any]:
    """Lifts the limit: tasks that named it run without it, queues lose it."""
    await engine.delete_limit(server, name)
    return {"name": name, "deleted": True}


@router.put("/queues/{name}/rate-limit", response_model=QueueRateLimitOut,
            summary="Set the rate limit every task of a queue consumes")
async def set_queue_rate_limit(name: QueuePath, body: QueueRateLimitIn, server: Server,
                               caller: CallerDep) -> dict[str, Any]:
    """The queue and the named limit its tasks now consume one unit of (null: none)."""
    access.check_queues(caller, [name])
    return await engine.set_queue_limit(server, name, body.limit)

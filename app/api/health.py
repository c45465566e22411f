"""Health: is the database reachable from this replica."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from ..jsonutil import JsonResponse, StrictJsonRoute
from ..read.health import Thresholds, database_answers, queue_health
from .answers import HealthOut
from .deps import Server

router = APIRouter(tags=["health"], route_class=StrictJsonRoute)


@router.get("/health", response_model=HealthOut, responses={
                503: {"model": HealthOut, "description": "The database does not answer"}},
            summary="Whether the database answers (503 when it does not), with "
            "queue health details")
async def get_health(server: Server) -> JsonResponse:
    """Whether this replica reaches its database, with the queue health report; 503 when not."""
    try:
        async with asyncio.timeout(3):
            ok = await database_answers(server.pool)
    except Exception:
        ok = False
    body: dict[str, Any] = {"status": "ok" if ok else "unavailable", "database": ok,
                            "listening": server.notifier.connected.is_set()}
    if ok:
        # Details: a warning here does not make the replica unhealthy (it still serves).
        try:
            async with asyncio.timeout(3):
                body["queue_health"] = await queue_health(server.pool,
                                                          Thresholds.of(server.settings))
        except Exception:
            body["queue_health"] = None
    return JsonResponse(body, status_code=200 if ok else 503)

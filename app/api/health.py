"""Health: is the database reachable from this replica."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from ..jsonutil import JsonResponse, StrictJsonRoute
from ..read.health import database_answers
from .deps import Server

router = APIRouter(tags=["health"], route_class=StrictJsonRoute)


@router.get("/health", summary="Whether the database answers (503 when it does not)")
async def health(server: Server) -> JsonResponse:
    try:
        async with asyncio.timeout(3):
            ok = await database_answers(server.pool)
    except Exception:
        ok = False
    body = {"status": "ok" if ok else "unavailable", "database": ok,
            "listening": server.notifier.connected.is_set()}
    return JsonResponse(body, status_code=200 if ok else 503)

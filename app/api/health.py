"""Health: is the database reachable from this replica."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from ..jsonutil import JsonResponse, StrictJsonRoute
from .deps import NotifierDep, Pool

router = APIRouter(tags=["health"], route_class=StrictJsonRoute)


@router.get("/health", summary="Whether the database answers (503 when it does not)")
async def health(pool: Pool, notifier: NotifierDep) -> JsonResponse:
    try:
        async with asyncio.timeout(3):
            async with pool.connection() as conn:
                await conn.execute("SELECT 1")
        ok = True
    except Exception:
        ok = False
    body = {"status": "ok" if ok else "unavailable", "database": ok,
            "listening": notifier.connected.is_set()}
    return JsonResponse(body, status_code=200 if ok else 503)

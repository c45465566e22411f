"""``GET /metrics`` in the Prometheus text format (bearer token required when one is set)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..metrics import read_gauges
from .deps import Pool, SettingsDep

router = APIRouter(tags=["metrics"])

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/metrics", summary="Prometheus metrics of this server process",
            response_class=Response)
async def metrics(request: Request, pool: Pool, settings: SettingsDep) -> Response:
    async with pool.connection() as conn:
        gauges = await read_gauges(conn, settings.worker_offline_seconds)
    return Response(request.app.state.metrics.render(gauges), media_type=CONTENT_TYPE)

"""``GET /metrics`` in the Prometheus text format (bearer token required when one is set)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from ..read.health import Thresholds, queue_health
from ..read.queues import gauges
from .deps import Server

router = APIRouter(tags=["metrics"])

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/metrics", summary="Prometheus metrics of this server process",
            response_class=Response)
async def metrics(server: Server) -> Response:
    values = await gauges(server.pool, server.settings.worker_offline_seconds)
    values["health"] = await queue_health(server.pool, Thresholds.of(server.settings))
    return Response(server.metrics.render(values), media_type=CONTENT_TYPE)

"""``GET /metrics`` in the Prometheus text format (bearer token required when one is set)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from ..read.flow import flow_gauges
from ..read.health import Thresholds, queue_health
from ..read.queues import gauges
from .deps import Server

router = APIRouter(tags=["metrics"])

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/metrics", summary="Prometheus metrics of this server process",
            response_class=Response, responses={200: {
                "description": "Prometheus text format",
                "content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}})
async def get_metrics(server: Server) -> Response:
    """Counters, latencies and queue gauges in the Prometheus text format, for a scraper."""
    values = await gauges(server.pool, server.settings.worker_offline_seconds)
    values["health"] = await queue_health(server.pool, Thresholds.of(server.settings))
    values["flow"] = await flow_gauges(server.pool)
    return Response(server.metrics.render(values), media_type=CONTENT_TYPE)

"""``Annotated`` dependency aliases shared by the routes: the one server state, and parts of it.

The providers are ``async def`` on purpose: FastAPI runs plain ``def`` dependencies in a
thread pool, and those hand-offs cost more on the hot path than the work they do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from psycopg_pool import AsyncConnectionPool

from ..credentials import CALLER
from ..engine.tokens import Caller
from ..settings import Settings
from ..state import ServerState


def server_of(request: Request) -> ServerState:
    """The server state (set by the lifespan in ``app/main.py``)."""
    return request.app.state.server


async def _server(request: Request) -> ServerState:
    return request.app.state.server


async def _pool(request: Request) -> AsyncConnectionPool:
    return request.app.state.server.pool


async def _settings(request: Request) -> Settings:
    return request.app.state.server.settings


def body_size(request: Request) -> int:
    """The declared body size; unknown (chunked) counts as large, so every item is checked."""
    try:
        return int(request.headers["content-length"])
    except (KeyError, ValueError):
        return 2**62


async def _caller(request: Request) -> Caller:
    return request.scope[CALLER]


async def _body_size(request: Request) -> int:
    return body_size(request)


async def _wait_timeout(
    request: Request, timeout_seconds: Annotated[float, Query(ge=0, le=3600)] = 30.0,
) -> float:
    return min(timeout_seconds, request.app.state.server.settings.max_wait_seconds)


Server = Annotated[ServerState, Depends(_server)]
Pool = Annotated[AsyncConnectionPool, Depends(_pool)]
SettingsDep = Annotated[Settings, Depends(_settings)]
# The request body's declared size (large when unknown), to skip per-item size checks.
BodySize = Annotated[int, Depends(_body_size)]
# Who is calling (set by GuardMiddleware; what it may call at all: app/access.py).
CallerDep = Annotated[Caller, Depends(_caller)]
# A long poll's ``timeout_seconds`` query parameter, capped at ``settings.max_wait_seconds``.
WaitTimeout = Annotated[float, Depends(_wait_timeout)]

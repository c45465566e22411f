"""``Annotated`` dependency aliases shared by the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool

from ..notifier import Notifier
from ..settings import Settings
from ..store.queues import KnownQueues


def _pool(request: Request) -> AsyncConnectionPool:
    return request.app.state.pool


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _notifier(request: Request) -> Notifier:
    return request.app.state.notifier


def _known_queues(request: Request) -> KnownQueues:
    return request.app.state.known_queues


def body_size(request: Request) -> int:
    """The declared body size; unknown (chunked) counts as large, so every item is checked."""
    try:
        return int(request.headers["content-length"])
    except (KeyError, ValueError):
        return 2**62


Pool = Annotated[AsyncConnectionPool, Depends(_pool)]
SettingsDep = Annotated[Settings, Depends(_settings)]
NotifierDep = Annotated[Notifier, Depends(_notifier)]
KnownQueuesDep = Annotated[KnownQueues, Depends(_known_queues)]

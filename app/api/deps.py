"""``Annotated`` dependency aliases shared by the routes.

The providers are ``async def`` on purpose: FastAPI runs plain ``def`` dependencies in a
thread pool, and those hand-offs cost more on the hot path than the work they do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool

from ..notifier import Notifier
from ..settings import Settings
from ..store.queues import KnownQueues, QueueSettingsCache
from ..store.workers import Sightings


async def _pool(request: Request) -> AsyncConnectionPool:
    return request.app.state.pool


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _notifier(request: Request) -> Notifier:
    return request.app.state.notifier


async def _known_queues(request: Request) -> KnownQueues:
    return request.app.state.known_queues


async def _sightings(request: Request) -> Sightings:
    state = request.app.state
    try:
        return state.worker_sightings
    except AttributeError:
        state.worker_sightings = Sightings()
        return state.worker_sightings


async def queue_cache_of(request: Request) -> QueueSettingsCache:
    state = request.app.state
    try:
        return state.queue_settings_cache
    except AttributeError:
        cache = QueueSettingsCache()
        state.notifier.config_listeners.append(cache.invalidate)
        state.queue_settings_cache = cache
        return cache


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
SightingsDep = Annotated[Sightings, Depends(_sightings)]
QueueCacheDep = Annotated[QueueSettingsCache, Depends(queue_cache_of)]

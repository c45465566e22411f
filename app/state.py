"""The one server state: what a running server process holds, in one object.

Created by the lifespan in ``app/main.py`` and stored as ``app.state.server`` (nothing else is
put on ``app.state``); routes get it through ``app/api/deps.py``'s ``Server`` dependency,
services and the studio are handed it. Its services start in list order and stop in reverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from psycopg_pool import AsyncConnectionPool

from .engine.caches import KnownQueues, QueueSettingsCache, Sightings
from .engine.tokens import TokenCache
from .metrics import Metrics
from .notifier import Notifier
from .settings import Settings


class Service(Protocol):
    """A background loop: started once, stopped once."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Caches:
    """Per-process hints that save the hot path a round trip (``app/engine/caches.py``)."""

    known_queues: KnownQueues = field(default_factory=KnownQueues)
    queue_settings: QueueSettingsCache = field(default_factory=QueueSettingsCache)
    sightings: Sightings = field(default_factory=Sightings)


@dataclass
class ServerState:
    settings: Settings
    database_url: str
    pool: AsyncConnectionPool
    notifier: Notifier
    metrics: Metrics
    caches: Caches = field(default_factory=Caches)
    # The live access tokens, resolved without a round trip per request (engine/tokens.py).
    tokens: TokenCache = field(init=False)
    services: list[Service] = field(default_factory=list)
    # The studio's per-process object (its change observer and page cache), set by the studio
    # when it is built; typed loosely so that ``app`` never imports ``studio``.
    studio: Any = None
    _started: list[Service] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        # A queue changed on any replica (or the notifier reconnected): re-read the settings.
        self.notifier.config_listeners.append(self.caches.queue_settings.invalidate)
        # A token created or revoked on any replica: reload them before the next request.
        self.tokens = TokenCache(self.pool, self.settings.token_cache_seconds)
        self.notifier.config_listeners.append(self.tokens.invalidate)

    def start_services(self) -> None:
        for service in self.services:
            service.start()
            self._started.append(service)

    async def stop_services(self) -> None:
        while self._started:
            await self._started.pop().stop()

"""Where the client finds the server, and the shared default clients built from that.

The environment is read when a default client is first needed (``BRANCHWORK_URL``,
``BRANCHWORK_API_TOKEN``); ``configure()`` overrides it in code and drops the clients built so
far, so tests and scripts can point the whole library at another server.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._http import AsyncClient, Client

DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class ClientSettings:
    """Connection settings shared by ``Client`` and ``AsyncClient``."""

    url: str = DEFAULT_URL
    api_token: str | None = None
    timeout: float = 30.0
    retries: int = 5  # extra attempts after a failed one, where retrying is safe
    backoff: float = 0.2  # first retry delay; doubles, capped at max_backoff, with jitter
    max_backoff: float = 5.0

    @classmethod
    def from_env(cls) -> ClientSettings:
        """``BRANCHWORK_URL`` (default http://127.0.0.1:8000) and ``BRANCHWORK_API_TOKEN``."""
        return cls(url=os.environ.get("BRANCHWORK_URL") or DEFAULT_URL,
                   api_token=os.environ.get("BRANCHWORK_API_TOKEN") or None)


_lock = threading.Lock()
_overrides: dict[str, Any] = {}
_sync: Client | None = None
# An httpx.AsyncClient belongs to the event loop it first ran on, so there is one per loop.
_async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncClient] = (
    weakref.WeakKeyDictionary())


def current_settings() -> ClientSettings:
    return replace(ClientSettings.from_env(), **_overrides)


def configure(*, url: str | None = None, api_token: str | None = None,
              timeout: float | None = None, retries: int | None = None,
              backoff: float | None = None, max_backoff: float | None = None) -> None:
    """Point the library's default clients elsewhere; ``configure()`` with nothing resets.

    Settings given here win over the environment. Clients built before are closed.
    """
    global _sync
    given = {"url": url, "api_token": api_token, "timeout": timeout, "retries": retries,
             "backoff": backoff, "max_backoff": max_backoff}
    with _lock:
        _overrides.clear()
        _overrides.update({k: v for k, v in given.items() if v is not None})
        old, _sync = _sync, None
        _async.clear()  # async clients are left to the garbage collector: their loop may be gone
    if old is not None:
        old.close()


def _forget_after_fork() -> None:
    """A forked child must not share the parent's pooled connections: it builds its own."""
    global _sync, _lock
    _lock = threading.Lock()
    _sync = None
    _async.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def default_client() -> Client:
    """The process-wide sync client (thread-safe), built on first use."""
    global _sync
    from ._http import Client

    with _lock:
        if _sync is None:
            _sync = Client(settings=current_settings())
        return _sync


def default_async_client() -> AsyncClient:
    """The async client of the running event loop, built on first use in that loop."""
    from ._http import AsyncClient

    loop = asyncio.get_running_loop()
    with _lock:
        client = _async.get(loop)
        if client is None:
            client = AsyncClient(settings=current_settings())
            _async[loop] = client
        return client

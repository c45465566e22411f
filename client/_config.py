"""The shared default clients, built from the current settings (``_settings``).

The environment is read when a default client is first needed (``BRANCHWORK_URL``,
``BRANCHWORK_API_TOKEN``); ``configure()`` overrides it in code and drops the clients built so
far, so tests and scripts can point the whole library at another server.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref

from . import _settings
from ._http import AsyncClient, Client
from ._settings import ClientSettings, current_settings

__all__ = ["ClientSettings", "configure", "current_settings", "default_async_client",
           "default_client"]

_lock = threading.Lock()
_sync: Client | None = None
# An httpx.AsyncClient belongs to the event loop it first ran on, so there is one per loop.
_async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncClient] = (
    weakref.WeakKeyDictionary())


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
        _settings.overrides.clear()
        _settings.overrides.update({k: v for k, v in given.items() if v is not None})
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
    with _lock:
        if _sync is None:
            _sync = Client(settings=current_settings())
        return _sync


def default_async_client() -> AsyncClient:
    """The async client of the running event loop, built on first use in that loop."""
    loop = asyncio.get_running_loop()
    with _lock:
        client = _async.get(loop)
        if client is None:
            client = AsyncClient(settings=current_settings())
            _async[loop] = client
        return client

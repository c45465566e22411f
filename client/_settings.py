"""Where the client finds the server: ``ClientSettings``, from the environment and
``configure()`` (which records its overrides here; ``_config`` owns the default clients)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

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


# Settings given to configure(); they win over the environment.
overrides: dict[str, Any] = {}


def current_settings() -> ClientSettings:
    return replace(ClientSettings.from_env(), **overrides)

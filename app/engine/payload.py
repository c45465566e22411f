"""Size limits on values the caller stores (args, results, KV values)."""

from __future__ import annotations

from typing import Any

from ..store.sql import dumps
from .errors import PayloadTooLarge


def check_size(value: Any, limit: int, what: str) -> None:
    """Refuse ``value`` when its JSON text is over ``limit`` bytes."""
    size = len(dumps(value))
    if size > limit:
        raise PayloadTooLarge(f"{what} is {size} bytes, over the limit of {limit}",
                              {"size": size, "limit": limit})


def check_batch(size: int, limit: int, message: str) -> None:
    """Refuse a batch of ``size`` items over ``limit`` (``413 batch_too_large``)."""
    if size > limit:
        raise PayloadTooLarge(message, {"limit": limit}, code="batch_too_large")

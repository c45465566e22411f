"""The key-value store's writes: each is one atomic statement."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..store import kv as kv_store
from .errors import Conflict, InvalidInput, PayloadTooLarge
from .tx import single_statement

if TYPE_CHECKING:
    from ..state import ServerState


def check_value(value: str, limit: int) -> None:
    size = len(value.encode())
    if size > limit:
        raise PayloadTooLarge(f"value is {size} bytes, over the limit of {limit}",
                              {"size": size, "limit": limit})
    if "\x00" in value:
        raise InvalidInput("values cannot contain NUL characters", code="nul_character")


async def set_value(state: ServerState, key: str, value: str,
                    ttl_seconds: float | None = None) -> None:
    """Write ``value``; with ``ttl_seconds`` it expires that long from now."""
    check_value(value, state.settings.max_payload_bytes)
    async with single_statement(state.pool) as cur:
        await kv_store.set_(cur, key, value, ttl_seconds)


async def set_if_absent(state: ServerState, key: str, value: str,
                        ttl_seconds: float | None = None) -> bool:
    """True when the key was absent (or expired) and is now set."""
    check_value(value, state.settings.max_payload_bytes)
    async with single_statement(state.pool) as cur:
        return await kv_store.set_if_absent(cur, key, value, ttl_seconds)


async def delete_value(state: ServerState, key: str) -> bool:
    """True when there was a value to delete."""
    async with single_statement(state.pool) as cur:
        return await kv_store.delete(cur, key)


async def increment(state: ServerState, key: str, by: int) -> int:
    """The new value; a value that is not an integer is a conflict."""
    async with single_statement(state.pool) as cur:
        value = await kv_store.increment(cur, key, by)
    if value is None:
        raise Conflict(f"the value of {key} is not an integer", code="not_an_integer")
    return value

"""``KV``: the server's key-value store. Values are strings (up to the server's payload limit,
1 MiB by default; over it raises ``PayloadTooLarge``)."""

from __future__ import annotations

from typing import Any

from . import _calls as calls
from ._flow import Flow
from ._http import AsyncClient, Client
from ._origin import Origin


def _value_or(key: str, default: Any) -> Flow[Any]:
    value = yield calls.kv_get(key)
    return default if value is None else value


class KVStore:
    """Key-value operations; ``KV`` is the instance on the default client.

    Each operation is one atomic statement on the server, so ``set_if_absent`` works as a
    lock/once-only guard and ``increment`` as a counter under concurrency.
    """

    def __init__(self, client: Client | None = None,
                 async_client: AsyncClient | None = None) -> None:
        self.origin = Origin(client, async_client)

    def get(self, key: str, default: Any = None) -> str | Any:
        """The value, or ``default`` when the key does not exist."""
        return self.origin.run(_value_or(key, default))

    def set(self, key: str, value: str, ttl_seconds: float | None = None) -> None:
        """Write; with ``ttl_seconds`` the entry expires (reads as absent) that long after."""
        self.origin.sync().kv_set(key, value, ttl_seconds)

    def delete(self, key: str) -> bool:
        """True if the key existed."""
        return self.origin.sync().kv_delete(key)

    def set_if_absent(self, key: str, value: str, ttl_seconds: float | None = None) -> bool:
        """Write only if the key does not exist (or expired); True if this call wrote it.
        With ``ttl_seconds``, a lock that frees itself if its holder dies."""
        return self.origin.sync().kv_set_if_absent(key, value, ttl_seconds)

    def increment(self, key: str, by: int = 1) -> int:
        """Atomically add ``by`` (absent counts as 0) → the new value.

        Raises ``Conflict`` (code ``not_an_integer``) if the value is not an integer.
        """
        return self.origin.sync().kv_increment(key, by)

    async def aget(self, key: str, default: Any = None) -> str | Any:
        return await self.origin.arun(_value_or(key, default))

    async def aset(self, key: str, value: str, ttl_seconds: float | None = None) -> None:
        await self.origin.async_().kv_set(key, value, ttl_seconds)

    async def adelete(self, key: str) -> bool:
        return await self.origin.async_().kv_delete(key)

    async def aset_if_absent(self, key: str, value: str,
                             ttl_seconds: float | None = None) -> bool:
        return await self.origin.async_().kv_set_if_absent(key, value, ttl_seconds)

    async def aincrement(self, key: str, by: int = 1) -> int:
        return await self.origin.async_().kv_increment(key, by)


KV = KVStore()

"""``Origin``: the client a handle came from, so its later calls go to the same server.

A handle made through an explicit ``Client`` (or ``AsyncClient``) keeps using it; one made
through the defaults keeps using the defaults (the async default is per event loop, so it is
looked up at each call, not stored).
"""

from __future__ import annotations

from typing import Any

from ._config import default_async_client, default_client
from ._flow import Flow, T
from ._http import AsyncClient, Client


class Origin:
    __slots__ = ("async_client", "client")

    def __init__(self, client: Client | None = None,
                 async_client: AsyncClient | None = None) -> None:
        self.client = client
        self.async_client = async_client

    @classmethod
    def of(cls, client: Client | AsyncClient | None) -> Origin:
        if isinstance(client, AsyncClient):
            return cls(async_client=client)
        return cls(client=client)

    def sync(self) -> Client:
        return self.client or default_client()

    def async_(self) -> AsyncClient:
        return self.async_client or default_async_client()

    def run(self, flow: Flow[T]) -> T:
        return self.sync().run(flow)

    async def arun(self, flow: Flow[T]) -> T:
        return await self.async_().run(flow)

    def __repr__(self) -> str:
        return f"<Origin {self.client or self.async_client or 'default'}>"

    def __eq__(self, other: Any) -> bool:
        return (isinstance(other, Origin) and self.client is other.client
                and self.async_client is other.async_client)

    __hash__ = None  # type: ignore[assignment]

"""The key-value store as lists and single values."""

from __future__ import annotations

from ..store import kv as kv_store
from ..store.kv import KVRow
from .paging import Db, Page, connection, found, page_of

__all__ = ["KVRow", "get_value", "list_keys"]


async def list_keys(db: Db, prefix: str, *, after: str | None, limit: int) -> Page[KVRow]:
    """Keys starting with ``prefix`` in key order, after the key ``after`` (the cursor)."""
    async with connection(db) as conn:
        rows = await kv_store.list_keys(conn, prefix, after, limit)
    return page_of(rows, limit, lambda r: r["key"])


async def get_value(db: Db, key: str) -> str:
    async with connection(db) as conn:
        return found(await kv_store.get(conn, key), "key", key)

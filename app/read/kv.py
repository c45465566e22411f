"""The key-value store as lists and single values."""

from __future__ import annotations

from ..store import kv as kv_store
from ..store.kv import KVRow
from .paging import Db, Page, fetch, found, page_of

__all__ = ["KVRow", "get_value", "list_keys"]


async def list_keys(db: Db, prefix: str, *, after: str | None, limit: int) -> Page[KVRow]:
    """Keys starting with ``prefix`` in key order, after the key ``after`` (the cursor)."""
    rows = await fetch(db, kv_store.list_keys, prefix, after, limit)
    return page_of(rows, limit, lambda r: r["key"])


async def get_value(db: Db, key: str) -> str:
    return found(await fetch(db, kv_store.get, key), "key", key)

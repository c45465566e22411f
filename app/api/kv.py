"""The key-value store over HTTP."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from ... import protocol
from ..engine import kv as engine
from ..jsonutil import StrictJsonRoute
from ..read import kv as read
from .answers import KVCounterOut, KVDeletedOut, KVPageOut, KVSetOut, KVValueOut
from .deps import Server
from .schemas import KVIncrementIn, KVValueIn

router = APIRouter(prefix="/v1/kv", tags=["kv"], route_class=StrictJsonRoute)

KeyPath = Annotated[str, Path(min_length=1, max_length=protocol.KEY_MAX)]
KeyQuery = Annotated[str | None, Query(max_length=protocol.KEY_MAX)]


@router.get("", response_model=KVPageOut, summary="Keys with a prefix, in key order")
async def list_kv_entries(server: Server, prefix: Annotated[str, Query(max_length=512)] = "",
                    after: KeyQuery = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """Entries whose key starts with prefix, in key order, a page at a time."""
    page = await read.list_keys(server.pool, prefix, after=after, limit=limit)
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.get("/{key:path}", response_model=KVValueOut, summary="Read a value")
async def get_kv_value(key: KeyPath, server: Server) -> dict[str, Any]:
    """The value stored under a key (404 when there is none)."""
    return {"key": key, "value": await read.get_value(server.pool, key)}


@router.put("/{key:path}", response_model=KVValueOut, summary="Write a value")
async def set_kv_value(key: KeyPath, body: KVValueIn, server: Server) -> dict[str, Any]:
    """Store a value under a key, replacing any earlier one."""
    await engine.set_value(server, key, body.value, body.ttl_seconds)
    return {"key": key, "value": body.value}


@router.delete("/{key:path}", response_model=KVDeletedOut, summary="Delete a value")
async def delete_kv_value(key: KeyPath, server: Server) -> dict[str, Any]:
    """Remove a key; deleted is false when there was none."""
    return {"key": key, "deleted": await engine.delete_value(server, key)}


@router.post("/{key:path}/set-if-absent", response_model=KVSetOut,
             summary="Write only if the key does not exist")
async def set_kv_value_if_absent(key: KeyPath, body: KVValueIn, server: Server) -> dict[str, Any]:
    """Store a value only if the key has none: a lock or a first-writer-wins flag."""
    return {"key": key, "set": await engine.set_if_absent(server, key, body.value,
                                                                  body.ttl_seconds)}


@router.post("/{key:path}/increment", response_model=KVCounterOut,
             summary="Atomically add to an integer value")
async def increment_kv_value(key: KeyPath, body: KVIncrementIn, server: Server) -> dict[str, Any]:
    """Add to an integer value atomically (a missing key counts as 0); answers the sum."""
    return {"key": key, "value": await engine.increment(server, key, body.by)}

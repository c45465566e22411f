"""The key-value store over HTTP."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from ... import protocol
from ..engine import kv as engine
from ..jsonutil import StrictJsonRoute
from ..read import kv as read
from .deps import Server
from .schemas import KVIncrementIn, KVValueIn

router = APIRouter(prefix="/v1/kv", tags=["kv"], route_class=StrictJsonRoute)

KeyPath = Annotated[str, Path(min_length=1, max_length=protocol.KEY_MAX)]
KeyQuery = Annotated[str | None, Query(max_length=protocol.KEY_MAX)]


@router.get("", summary="Keys with a prefix, in key order")
async def list_keys(server: Server, prefix: Annotated[str, Query(max_length=512)] = "",
                    after: KeyQuery = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    page = await read.list_keys(server.pool, prefix, after=after, limit=limit)
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.get("/{key:path}", summary="Read a value")
async def get_value(key: KeyPath, server: Server) -> dict[str, Any]:
    return {"key": key, "value": await read.get_value(server.pool, key)}


@router.put("/{key:path}", summary="Write a value")
async def set_value(key: KeyPath, body: KVValueIn, server: Server) -> dict[str, Any]:
    await engine.set_value(server, key, body.value)
    return {"key": key, "value": body.value}


@router.delete("/{key:path}", summary="Delete a value")
async def delete_value(key: KeyPath, server: Server) -> dict[str, Any]:
    return {"key": key, "deleted": await engine.delete_value(server, key)}


@router.post("/{key:path}/set-if-absent", summary="Write only if the key does not exist")
async def set_if_absent(key: KeyPath, body: KVValueIn, server: Server) -> dict[str, Any]:
    return {"key": key, "set": await engine.set_if_absent(server, key, body.value)}


@router.post("/{key:path}/increment", summary="Atomically add to an integer value")
async def increment(key: KeyPath, body: KVIncrementIn, server: Server) -> dict[str, Any]:
    return {"key": key, "value": await engine.increment(server, key, body.by)}

"""The key-value store over HTTP."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from ..errors import ApiError, not_found
from ..jsonutil import StrictJsonRoute
from ..store import kv as kv_store
from .deps import Pool, SettingsDep
from .schemas import KVIncrementIn, KVValueIn

router = APIRouter(prefix="/v1/kv", tags=["kv"], route_class=StrictJsonRoute)

KeyPath = Annotated[str, Path(min_length=1, max_length=512)]


def _check_value(value: str, limit: int) -> None:
    size = len(value.encode())
    if size > limit:
        raise ApiError(413, "payload_too_large",
                       f"value is {size} bytes, over the limit of {limit}",
                       {"size": size, "limit": limit})
    if "\x00" in value:
        raise ApiError(422, "nul_character", "values cannot contain NUL characters")


@router.get("", summary="Keys with a prefix, in key order")
async def list_keys(pool: Pool, prefix: Annotated[str, Query(max_length=512)] = "",
                    after: Annotated[str | None, Query(max_length=512)] = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    async with pool.connection() as conn:
        rows = await kv_store.list_keys(conn, prefix, after, limit)
    return {"items": rows, "next_cursor": rows[-1]["key"] if len(rows) == limit else None}


@router.get("/{key:path}", summary="Read a value")
async def get_value(key: KeyPath, pool: Pool) -> dict[str, Any]:
    async with pool.connection() as conn:
        value = await kv_store.get(conn, key)
    if value is None:
        raise not_found("key", key)
    return {"key": key, "value": value}


@router.put("/{key:path}", summary="Write a value")
async def set_value(key: KeyPath, body: KVValueIn, pool: Pool,
                    settings: SettingsDep) -> dict[str, Any]:
    _check_value(body.value, settings.max_payload_bytes)
    async with pool.connection() as conn:
        await kv_store.set_(conn, key, body.value)
    return {"key": key, "value": body.value}


@router.delete("/{key:path}", summary="Delete a value")
async def delete_value(key: KeyPath, pool: Pool) -> dict[str, Any]:
    async with pool.connection() as conn:
        deleted = await kv_store.delete(conn, key)
    return {"key": key, "deleted": deleted}


@router.post("/{key:path}/set-if-absent", summary="Write only if the key does not exist")
async def set_if_absent(key: KeyPath, body: KVValueIn, pool: Pool,
                        settings: SettingsDep) -> dict[str, Any]:
    _check_value(body.value, settings.max_payload_bytes)
    async with pool.connection() as conn:
        was_set = await kv_store.set_if_absent(conn, key, body.value)
    return {"key": key, "set": was_set}


@router.post("/{key:path}/increment", summary="Atomically add to an integer value")
async def increment(key: KeyPath, body: KVIncrementIn, pool: Pool) -> dict[str, Any]:
    async with pool.connection() as conn:
        value = await kv_store.increment(conn, key, body.by)
    if value is None:
        raise ApiError(409, "not_an_integer", f"the value of {key} is not an integer")
    return {"key": key, "value": value}

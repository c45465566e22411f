"""JSON encoding shared by the store and the API: orjson, with checks PostgreSQL needs."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from .errors import ApiError


class JsonResponse(Response):
    """JSON rendered by orjson (datetimes, UUIDs and large batches, quickly)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def dumps(value: Any) -> str:
    """Encode for a ``%s::jsonb`` parameter; values JSON cannot carry are the caller's error."""
    try:
        return orjson.dumps(value).decode()
    except (orjson.JSONEncodeError, TypeError) as exc:
        raise ApiError(422, "invalid_value", f"value cannot be stored as JSON: {exc}") from exc


def contains_nul(value: Any) -> bool:
    """True when any string in a decoded JSON value (keys too) holds a NUL character."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def check_size(value: Any, limit: int, what: str) -> None:
    size = len(dumps(value))
    if size > limit:
        raise ApiError(413, "payload_too_large", f"{what} is {size} bytes, over the limit of {limit}",
                       {"size": size, "limit": limit})

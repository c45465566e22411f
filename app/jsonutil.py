"""JSON at the HTTP edge: orjson responses and strict request parsing (values PostgreSQL can
store). Encoding for the database is ``store/sql.py: dumps``; size limits are
``engine/payload.py``."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import JSONResponse, Response

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_LONG_DIGITS = re.compile(rb"\d{19,}")


class JsonResponse(JSONResponse):
    """JSON rendered by orjson (datetimes, UUIDs and large batches, quickly).

    A ``JSONResponse`` subclass so that the OpenAPI document describes bodies as JSON (from the
    route's return type) rather than as a plain string."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


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


def _checked_int(text: str) -> int:
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"integer {text[:30]} is outside the 64-bit range")
    return value


def strict_loads(body: bytes) -> Any:
    """Parse a request body as JSON PostgreSQL can store, or raise ``json.JSONDecodeError``.

    orjson refuses NaN, Infinity, numbers that overflow a double, invalid UTF-8 and lone
    surrogates (all of which the standard library lets through and jsonb then rejects or
    ``null``s); integers beyond 64 bits, which orjson silently turns into floats, are refused
    here so that no caller's number is quietly rounded.
    """
    value = orjson.loads(body)
    if _LONG_DIGITS.search(body):
        try:
            json.loads(body, parse_int=_checked_int)
        except ValueError as exc:
            raise json.JSONDecodeError(str(exc), body.decode(errors="replace"), 0) from None
    return value


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = strict_loads(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    """Routes whose JSON bodies are parsed by :func:`strict_loads` (faster, and strict)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict_handler

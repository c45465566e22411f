"""JSON at the HTTP edge: orjson responses and strict request parsing (values PostgreSQL can
store). Encoding for the database is ``store/sql.py: dumps``; size limits are
``engine/payload.py``."""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request
from fastapi.routing import APIRoute
from fastapi.utils import is_body_allowed_for_status_code
from pydantic_core import to_jsonable_python
from starlette.responses import JSONResponse, Response

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Every ASCII digit as "0" and every other byte as "x": a run of 19 digits (a number that may
# not fit 64 bits) is then a substring search, at C speed. The regex ``\d{19,}`` did the same
# at several times the cost of parsing the body.
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else 0x78 for b in range(256))
_LONG_RUN = b"0" * 19


def has_long_digits(body: bytes) -> bool:
    """True when ``body`` holds 19 or more ASCII digits in a row."""
    return _LONG_RUN in body.translate(_DIGITS_AS_ZERO)


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


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_EMPTY_PAIR = re.compile(rb"\[\]|\{\}")


def depth(value: Any) -> int:
    """How deep a decoded JSON value nests: a scalar is 0, ``[]`` 1, ``{"a": [1]}`` 2."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            level += 1
            deepest = max(deepest, level)
            stack.extend((sub, level) for sub in (item.values() if isinstance(item, dict)
                                                  else item))
    return deepest


def too_deep(body: bytes, limit: int) -> bool:
    """True when a JSON body nests deeper than ``limit``.

    Fast path at C speed: keep only the brackets and strip innermost pairs, one level per pass.
    Brackets inside strings can make that inconclusive; then the parsed value is walked."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = body.translate(None, _NOT_BRACKETS)
    for _ in range(limit):
        if not brackets:
            return False
        stripped = _EMPTY_PAIR.sub(b"", brackets)
        if stripped == brackets:
            break  # unbalanced: brackets in strings
        brackets = stripped
    if not brackets:
        return False
    try:
        return depth(orjson.loads(body)) > limit
    except orjson.JSONDecodeError:
        return False  # malformed JSON is reported by the route with its own 400


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
    if has_long_digits(body):
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


def _answered_as_returned(endpoint: Callable[..., Any],
                          status_code: int | None) -> Callable[..., Any]:
    """``endpoint``, its answer sent as it returns it: encoded as FastAPI encodes an ``Any``
    answer (pydantic's JSON mode), never validated against nor filtered by the route's
    ``response_model``, which then only documents the answer (``app/openapi.py``)."""

    @functools.wraps(endpoint)
    async def answer(*args: Any, **kwargs: Any) -> Any:
        out = await endpoint(*args, **kwargs)
        if isinstance(out, Response):
            return out
        status = status_code or 200
        if not is_body_allowed_for_status_code(status):
            return Response(status_code=status)
        return JsonResponse(to_jsonable_python(out), status_code=status)

    return answer


class StrictJsonRoute(APIRoute):
    """Routes whose JSON bodies are parsed by :func:`strict_loads` (faster, and strict), and
    whose answers go out as the route returns them: the declared ``response_model`` is the
    documented shape (tests/test_openapi.py holds real answers to it), not a per-request
    validation and filter, which would cost time and could drop a field a client reads."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if inspect.iscoroutinefunction(endpoint):
            endpoint = _answered_as_returned(endpoint, kwargs.get("status_code"))
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict_handler

"""Bearer-token access (who the caller is: ``credentials.py``; what it may call:
``access.py``), and a body guard that refuses oversized or NUL-carrying requests early."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes

import orjson
import psycopg
from psycopg_pool import PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..protocol import MAX_JSON_DEPTH
from . import credentials, openapi
from .credentials import CALLER
from .errors import error_body
from .jsonutil import contains_nul, too_deep

if TYPE_CHECKING:
    from .state import ServerState

# Paths that need no token (the studio's own pages are guarded by its session).
OPEN_PATHS = ("/health", "/")
# Every 401 says which scheme it wants (RFC 9110 section 11.6.1).
CHALLENGE = ((b"www-authenticate", b'Bearer realm="branchwork"'),)
# Swagger UI's and ReDoc's files (a package's, nothing secret), and what a browser opens
# with the studio's session instead of a bearer token (app/openapi.py).
DOCS_ASSETS = openapi.DOCS_ASSETS
DOCS_PATHS = (*openapi.DOC_PAGES, openapi.OPENAPI_URL)
# The studio guards itself (login form, signed session cookie, CSRF tokens); its caller comes
# from the session cookie, not a bearer header.
SELF_GUARDED_PREFIXES = ("/studio/",)


async def _send_json(send: Send, status: int, body: dict,
                     extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    data = orjson.dumps(body)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode()), *extra]})
    await send({"type": "http.response.body", "body": data})


class GuardMiddleware:
    """Pure ASGI: checks the token (all routes but /health), caps the body size, refuses NUL
    characters and non-JSON bodies on /v1.

    PostgreSQL cannot store NUL in text or jsonb, so a request carrying one is refused with a
    4xx before it reaches a handler, rather than failing half-way with a 500.
    """

    def __init__(self, app: ASGIApp, *, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def _authenticate(self, scope: Scope, path: str, headers: dict[bytes, bytes],
                            send: Send) -> bool:
        """Find the caller (``credentials.CALLER`` in the scope); False once it has answered
        401 (API without a valid token) or 503 (tokens cannot be read). The studio resolves
        its session here too, and shows its login page when there is none."""
        state = getattr(scope["app"].state, "server", None)
        if state is None:
            await _send_json(send, 503, error_body("starting", "the server is starting"))
            return False
        try:
            if path == "/studio" or path.startswith(SELF_GUARDED_PREFIXES):
                scope[CALLER] = await credentials.studio_caller(state, headers.get(b"cookie"))
                return True
            if path in OPEN_PATHS or path.startswith(DOCS_ASSETS):
                return True
            if path in DOCS_PATHS and b"authorization" not in headers:
                return await self._docs_session(scope, state, path, headers, send)
            caller = await credentials.api_caller(state, headers.get(b"authorization"))
        except (psycopg.OperationalError, PoolTimeout, TimeoutError):
            # The tokens could not be read, and none were read before.
            await _send_json(send, 503, error_body(
                "database_unavailable", "the database is unavailable; retry shortly"))
            return False
        if caller is None:
            await _send_json(send, 401, error_body(
                "unauthorized", "a valid bearer token is required"), CHALLENGE)
            return False
        scope[CALLER] = caller
        return True

    async def _docs_session(self, scope: Scope, state: ServerState, path: str,
                            headers: dict[bytes, bytes], send: Send) -> bool:
        """The API's pages and document, opened by a browser: the studio's session stands
        for a token (a browser sends no bearer header); without one the pages go to the
        studio's login, the document answers 401."""
        caller = await credentials.studio_caller(state, headers.get(b"cookie"))
        if caller is not None:
            scope[CALLER] = caller
            return True
        if path == openapi.OPENAPI_URL:
            await _send_json(send, 401, error_body(
                "unauthorized", "a valid bearer token or studio session is required"),
                CHALLENGE)
        else:
            location = f"/studio/login?next={path}".encode()
            await send({"type": "http.response.start", "status": 303,
                        "headers": [(b"location", location), (b"content-length", b"0"),
                                    (b"cache-control", b"no-store")]})
            await send({"type": "http.response.body", "body": b""})
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = dict(scope["headers"])
        if not await self._authenticate(scope, path, headers, send):
            return
        if not _utf8_path(scope):
            await _send_json(send, 400, error_body(
                "invalid_path", "the path is not valid UTF-8 once percent-decoded"))
            return
        if b"%00" in scope.get("query_string", b"") or "\x00" in path:
            await _send_json(send, 400, error_body("nul_character",
                                                   "NUL characters are not allowed"))
            return
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await _send_json(send, 413, error_body(
                "payload_too_large", f"request body over the limit of {self.max_body} bytes",
                {"limit": self.max_body}))
            return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _send_json(send, 413, error_body(
                    "payload_too_large", f"request body over the limit of {self.max_body} bytes",
                    {"limit": self.max_body}))
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body and path.startswith("/v1") and not _json_content_type(headers.get(b"content-type")):
            await _send_json(send, 415, error_body(
                "unsupported_media_type", "request bodies must be application/json",
                {"content_type": headers.get(b"content-type", b"").decode("latin-1")}))
            return
        if path.startswith("/v1") and too_deep(body, MAX_JSON_DEPTH):
            # One limit for every body, below what any reader can encode again: a value
            # stored past it would make every later read of it fail.
            await _send_json(send, 422, error_body(
                "too_deep", f"JSON nested deeper than {MAX_JSON_DEPTH} levels",
                {"limit": MAX_JSON_DEPTH}))
            return
        if b"\\u0000" in body and _json_has_nul(body):
            await _send_json(send, 422, error_body(
                "nul_character", "JSON strings cannot contain NUL (\\u0000) characters"))
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _utf8_path(scope: Scope) -> bool:
    """False when the percent-decoded path is not UTF-8: the server would otherwise see
    U+FFFD in its place, and ``%FF`` and ``%FE`` would name the same key."""
    raw: bytes | None = scope.get("raw_path")
    if not raw or b"%" not in raw:
        return True
    try:
        unquote_to_bytes(raw.split(b"?", 1)[0]).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _json_content_type(value: bytes | None) -> bool:
    """An absent content type counts as JSON; anything else must be a JSON media type."""
    if value is None:
        return True
    media = value.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/")
                                             and media.endswith(b"+json"))


def _json_has_nul(body: bytes) -> bool:
    try:
        return contains_nul(orjson.loads(body))
    except orjson.JSONDecodeError:
        return False  # malformed JSON is reported by the route with its own 400

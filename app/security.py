"""Bearer-token access, and a body guard that refuses oversized or NUL-carrying requests early."""

from __future__ import annotations

import hmac

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_body
from .jsonutil import contains_nul

OPEN_PATHS = ("/health", "/", "/studio")
# The studio guards itself (login form, signed session cookie, CSRF tokens).
SELF_GUARDED_PREFIXES = ("/studio/",)


def token_ok(header: str | None, token: str) -> bool:
    if not header or not header.lower().startswith("bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), token.encode())


async def _send_json(send: Send, status: int, body: dict) -> None:
    data = orjson.dumps(body)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


class GuardMiddleware:
    """Pure ASGI: checks the token (all routes but /health), caps the body size, refuses NUL
    characters and non-JSON bodies on /v1.

    PostgreSQL cannot store NUL in text or jsonb, so a request carrying one is refused with a
    4xx before it reaches a handler, rather than failing half-way with a 500.
    """

    def __init__(self, app: ASGIApp, *, api_token: str | None, max_body: int) -> None:
        self.app = app
        self.api_token = api_token
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = dict(scope["headers"])
        if (self.api_token and path not in OPEN_PATHS
                and not path.startswith(SELF_GUARDED_PREFIXES)):
            auth = headers.get(b"authorization", b"").decode("latin-1")
            if not token_ok(auth, self.api_token):
                await _send_json(send, 401, error_body(
                    "unauthorized", "a valid bearer token is required"))
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

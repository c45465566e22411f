"""The studio's own guard: login with the API token, a signed session cookie, CSRF checks.

``GuardMiddleware`` leaves ``/studio`` alone because a browser cannot send a bearer header
on navigation. Instead, when ``BRANCHWORK_API_TOKEN`` is set, the login form asks for the
token once and the server answers with a session cookie ``<issued>.<nonce>.<hmac>`` signed
with a key derived from the token (so changing the token ends every session). The cookie is
HttpOnly, SameSite=Strict and Secure whenever the request came over HTTPS.

Every state-changing request (a POST) must pass two checks: the browser's own
``Sec-Fetch-Site``/``Origin`` headers say it came from this origin, and it carries the CSRF
token (double-submit: the ``bw_csrf`` cookie value, echoed in a header or form field).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "bw_session"
CSRF_COOKIE = "bw_csrf"
CSRF_HEADER = "x-csrf-token"
SESSION_SECONDS = 12 * 3600


def _key(token: str) -> bytes:
    return hmac.new(token.encode(), b"branchwork-studio-session-v1", hashlib.sha256).digest()


def _sign(key: bytes, payload: str) -> str:
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def make_session(token: str, now: float | None = None) -> str:
    payload = f"{int(now if now is not None else time.time())}.{secrets.token_hex(16)}"
    return f"{payload}.{_sign(_key(token), payload)}"


def session_ok(token: str, value: str | None, now: float | None = None) -> bool:
    if not value or value.count(".") != 2:
        return False
    issued, nonce, sig = value.split(".")
    if not issued.isdigit():
        return False
    if not hmac.compare_digest(_sign(_key(token), f"{issued}.{nonce}"), sig):
        return False
    age = (now if now is not None else time.time()) - int(issued)
    return 0 <= age < SESSION_SECONDS


def token_matches(token: str, given: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())


def is_authenticated(request: Request, token: str | None) -> bool:
    return token is None or session_ok(token, request.cookies.get(SESSION_COOKIE))


def secure_request(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session(response: Response, request: Request, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, make_session(token), max_age=SESSION_SECONDS,
                        path="/studio", httponly=True, samesite="strict",
                        secure=secure_request(request))


def clear_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/studio", httponly=True, samesite="strict")


def csrf_token(request: Request) -> tuple[str, bool]:
    """The request's CSRF token, and whether it is new (then the cookie must be set)."""
    current = request.cookies.get(CSRF_COOKIE, "")
    if len(current) == 43 and current.replace("-", "").replace("_", "").isalnum():
        return current, False
    return secrets.token_urlsafe(32), True


def set_csrf_cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(CSRF_COOKIE, value, path="/studio", httponly=True,
                        samesite="strict", secure=secure_request(request))


def same_origin(request: Request) -> bool:
    """What the browser says about where the request came from."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is not None:
        if origin == "null":
            return False
        parts = urlsplit(origin)
        host = request.headers.get("host", "")
        if parts.netloc != host:
            return False
    return True


def csrf_ok(request: Request, submitted: str | None) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not submitted:
        return False
    return same_origin(request) and hmac.compare_digest(cookie.encode(), submitted.encode())

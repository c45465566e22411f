"""The studio's own guard: login with a token, a signed session cookie, CSRF checks.

A browser cannot send a bearer header on navigation. Instead, when authentication is on
(``BRANCHWORK_API_TOKEN`` set, or tokens created), the login form asks for a token once
(the admin token or an admin or viewer token) and the server answers with a signed session
cookie (``app/credentials.py``: changing the admin token or revoking the token ends its
sessions; a viewer's studio is read-only). The cookie is HttpOnly, SameSite=Strict and
Secure whenever the request came over HTTPS.

Every state-changing request (a POST) must pass two checks: the browser's own
``Sec-Fetch-Site``/``Origin`` headers say it came from this origin, and it carries the CSRF
token (double-submit: the ``bw_csrf`` cookie value, echoed in a header or form field).
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

# Sessions are made and checked by the server (its middleware finds the caller of every
# studio request): ``app/credentials.py``.
from ..app.credentials import SESSION_COOKIE, SESSION_SECONDS, make_session, session_ok

__all__ = ["SESSION_COOKIE", "SESSION_SECONDS", "make_session", "session_ok"]

CSRF_COOKIE = "bw_csrf"
CSRF_HEADER = "x-csrf-token"


def secure_request(request: Request) -> bool:
    return request.url.scheme == "https"


# The session opens the studio and the API's docs pages (/docs, /redoc, /openapi.json: see
# app/security.py); the API itself ignores it (it takes bearer tokens only).
SESSION_PATH = "/"


def set_session(response: Response, request: Request, value: str) -> None:
    response.set_cookie(SESSION_COOKIE, value, max_age=SESSION_SECONDS,
                        path=SESSION_PATH, httponly=True, samesite="strict",
                        secure=secure_request(request))


def clear_session(response: Response) -> None:
    # "/studio": where sessions made before the docs pages took them were scoped.
    for path in (SESSION_PATH, "/studio"):
        response.delete_cookie(SESSION_COOKIE, path=path, httponly=True, samesite="strict")


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

"""What every studio route shares: the router, the per-process :class:`Studio`, access and
CSRF checks, rendering with the common context, and :func:`view`, which serves a page and
its partial (refetched by htmx) from one view function.

The studio reads the server's state from ``app.state.server`` (``app/state.ServerState``);
``state.studio`` is this module's :class:`Studio`, built with the server's services.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from psycopg_pool import AsyncConnectionPool
from starlette.responses import RedirectResponse, Response

from ..app.credentials import CALLER
from ..app.engine.tokens import Caller
from ..app.errors import ApiError
from ..app.settings import Settings
from ..app.state import ServerState
from . import auth
from .live import ChangeObserver, VersionCache
from .render import render

router = APIRouter(prefix="/studio", include_in_schema=False)

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


class Studio:
    """Per-process studio state: the change observer (a service of the server state) and the
    shared partial cache."""

    def __init__(self, pool: AsyncConnectionPool, interval: float) -> None:
        self.observer = ChangeObserver(pool, interval)
        self.cache = VersionCache(self.observer)


class LoginRequired(Exception):
    pass


class Missing(Exception):
    """A page's subject does not exist: answered with the not-found page (404)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def server(request: Request) -> ServerState:
    return request.app.state.server


def settings(request: Request) -> Settings:
    return server(request).settings


def pool(request: Request) -> AsyncConnectionPool:
    return server(request).pool


def studio(request: Request) -> Studio:
    return server(request).studio


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def caller(request: Request) -> Caller | None:
    """Who this is (from the session, found by the server's middleware); what the caller may
    call at all is checked before the route runs (``app/access.py``: viewers only read)."""
    return request.scope.get(CALLER)


def guard(request: Request) -> None:
    if caller(request) is None:
        raise LoginRequired


def safe_next(path: str) -> str:
    """Where the login form may send the browser: the studio, or the API's docs pages."""
    if path in ("/docs", "/redoc") or (path.startswith("/studio") and "//" not in path):
        return path
    return "/studio"


def login_redirect(request: Request) -> Response:
    target = "/studio/login?next=" + quote(safe_next(request.url.path), safe="/")
    if is_htmx(request):
        return Response(status_code=401, headers={"hx-redirect": target, **SECURITY_HEADERS})
    return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)


def page(request: Request, template: str, context: dict[str, Any],
         status_code: int = 200) -> Response:
    """Render with the common context; sets the CSRF cookie on first visit."""
    token, new = auth.csrf_token(request)
    who = caller(request)
    ctx = {"csrf": token, "auth_enabled": who is not None and who.authenticated,
           # A viewer's studio is read-only: no action buttons (and their POSTs are refused).
           "can_act": who is not None and who.is_admin,
           "path": request.url.path, "version": studio(request).observer.version, **context}
    response = render(template, ctx, status_code, SECURITY_HEADERS)
    if new:
        auth.set_csrf_cookie(response, request, token)
    return response


def not_found_page(request: Request, what: str) -> Response:
    return page(request, "not_found.html", {"what": what, "nav": ""}, 404)


MAX_FORM_FIELDS = 60  # the send form has one field per argument (up to forms.MAX_FIELDS)


async def form(request: Request) -> dict[str, str]:
    """A urlencoded form body (the studio's forms are tiny; no multipart)."""
    body = await request.body()
    if len(body) > 65536:
        raise ApiError(413, "payload_too_large", "form too large")
    try:
        parsed = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "bad_form", "malformed form body") from exc
    return {k: v[0] for k, v in parsed.items()}


async def check_post(request: Request) -> dict[str, str]:
    guard(request)
    data = await form(request) if request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded") else {}
    submitted = request.headers.get(auth.CSRF_HEADER) or data.get("csrf")
    if not auth.csrf_ok(request, submitted):
        raise ApiError(403, "csrf_failed",
                       "this action must come from a studio page (CSRF check failed)")
    return data


# --- one view function, two routes ---------------------------------------------------------

@dataclass(frozen=True)
class View:
    """What a view function is handed: the request, and whether the partial was asked for."""

    request: Request
    partial: bool

    @property
    def pool(self) -> AsyncConnectionPool:
        return pool(self.request)

    @property
    def cache(self) -> VersionCache:
        return studio(self.request).cache

    @property
    def settings(self) -> Settings:
        return settings(self.request)


ViewFunction = Callable[..., Awaitable[dict[str, Any] | Response]]


def view(page_path: str, partial_path: str, template: str, partial_template: str | None = None,
         *, nav: str) -> Callable[[ViewFunction], ViewFunction]:
    """Serve ``page_path`` (``template``, with the navigation) and ``partial_path``
    (``partial_template``, default ``partials/<template>``) from one view function.

    The function takes a :class:`View` first, then its path and query parameters (declared
    as in any FastAPI route); it returns the template context, or a response (a redirect),
    or raises :class:`Missing`."""

    def register(fn: ViewFunction) -> ViewFunction:
        signature = inspect.signature(fn, eval_str=True)
        params = list(signature.parameters.values())[1:]
        request_param = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                          annotation=Request)
        routes = ((page_path, template, False),
                  (partial_path, partial_template or f"partials/{template}", True))
        for path, tmpl, partial in routes:
            endpoint = _endpoint(fn, tmpl, partial, nav)
            endpoint.__signature__ = signature.replace(  # type: ignore[attr-defined]
                parameters=[request_param, *params], return_annotation=Response)
            router.add_api_route(path, endpoint, methods=["GET"], response_model=None,
                                 name=f"{fn.__name__}_{'partial' if partial else 'page'}")
        return fn

    return register


def _endpoint(fn: ViewFunction, template: str, partial: bool,
              nav: str) -> Callable[..., Awaitable[Response]]:
    async def endpoint(request: Request, **params: Any) -> Response:
        guard(request)
        try:
            result = await fn(View(request, partial), **params)
        except Missing as missing:
            return not_found_page(request, missing.what)
        if isinstance(result, Response):
            return result
        return page(request, template, result if partial else {"nav": nav, **result})

    return endpoint

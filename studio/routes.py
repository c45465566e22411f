"""The studio's HTTP surface: ``router`` with every page, partial (``pages``), action
(``actions``), the login, the live signal stream (SSE) and the assets.

Routes stay thin: they check access, read parameters, call a loader in ``views`` (over the
read model) or an engine use case, and render a template. See ``docs/studio.md``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import orjson
from fastapi import HTTPException, Path, Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from ..app import credentials
from ..app.errors import ApiError
from . import actions, approvals, assets, auth, limits, pages
from .web import (
    SECURITY_HEADERS,
    LoginRequired,
    Studio,
    check_post,
    form,
    guard,
    login_redirect,
    page,
    router,
    safe_next,
    server,
    studio,
)

__all__ = ["LoginRequired", "Studio", "actions", "approvals", "limits", "login_redirect", "pages",
           "router"]

KEEPALIVE_SECONDS = 15.0


@router.get("/login")
async def login_form(request: Request, next: str = "/studio") -> Response:
    return page(request, "login.html", {"next": safe_next(next), "error": None, "nav": ""})


@router.post("/login")
async def login(request: Request) -> Response:
    state = server(request)
    data = await form(request)
    next_path = safe_next(data.get("next", "/studio"))
    if not auth.same_origin(request):
        raise ApiError(403, "csrf_failed", "cross-site login refused")
    if not await credentials.auth_on(state):
        return RedirectResponse(next_path, status_code=303)
    who = await credentials.token_caller(state, data.get("token", ""))
    if who is None or who.role not in ("admin", "viewer"):
        error = ("That token is not valid." if who is None else
                 f"A {who.role} token cannot open the studio (admin or viewer tokens can).")
        return page(request, "login.html", {"next": next_path, "nav": "", "error": error},
                    401 if who is None else 403)
    session = await credentials.session_for(state, who)
    if session is None:  # revoked between the two lookups
        return page(request, "login.html", {"next": next_path, "nav": "",
                                            "error": "That token is not valid."}, 401)
    response = RedirectResponse(next_path, status_code=303, headers=SECURITY_HEADERS)
    auth.set_session(response, request, session)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    await check_post(request)
    response = RedirectResponse("/studio/login", status_code=303)
    auth.clear_session(response)
    return response


@router.get("/events")
async def events(request: Request) -> Response:
    """One SSE stream per open page: ``change`` events name the topics that changed."""
    guard(request)
    observer = studio(request).observer

    async def stream() -> Any:
        yield b"retry: 2000\n\n"
        async with observer.subscribe() as sub:
            ready = orjson.dumps({"version": observer.version})
            yield b"event: ready\ndata: " + ready + b"\n\n"
            while not observer.closed.is_set():
                try:
                    topics = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                data = orjson.dumps({"topics": sorted(topics)})
                yield b"event: change\ndata: " + data + b"\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream", headers={
        "cache-control": "no-store", "x-accel-buffering": "no"})


@router.get("/static/{name}")
async def static(name: Annotated[str, Path(max_length=64)]) -> Response:
    response = assets.asset_response(name)
    if response is None:
        raise HTTPException(404, f"no asset {name}")
    return response

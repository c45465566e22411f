"""The studio's HTTP routes: pages, partials (refetched by htmx), actions, SSE and assets.

Routes stay thin: they check access, read parameters, call a loader in ``views`` or a store
function, and render a template. See ``docs/studio.md``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, quote

import orjson
from fastapi import APIRouter, FastAPI, HTTPException, Path, Query, Request
from psycopg_pool import AsyncConnectionPool
from starlette.responses import RedirectResponse, Response, StreamingResponse

from ..app.errors import ApiError
from ..app.settings import Settings
from ..app.store import tasks as task_store
from . import assets, auth, queries, schedule_actions, views
from .live import ChangeObserver, VersionCache
from .render import render

router = APIRouter(prefix="/studio", include_in_schema=False)

TaskStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TaskId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Cursor = Annotated[int | None, Query(ge=1, le=2**63 - 1)]
KEEPALIVE_SECONDS = 15.0

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
    """Per-process studio state: the change observer and the shared partial cache."""

    def __init__(self, pool: AsyncConnectionPool, interval: float) -> None:
        self.observer = ChangeObserver(pool, interval)
        self.cache = VersionCache(self.observer)


def install(app: FastAPI, observe_interval: float = 0.5) -> None:
    """Mount the studio and start/stop its observer with the app's lifespan."""

    async def start(app: FastAPI) -> None:
        app.state.studio = Studio(app.state.pool, observe_interval)
        app.state.studio.observer.start()

    async def stop(app: FastAPI) -> None:
        await app.state.studio.observer.stop()

    async def need_login(request: Request, _: Exception) -> Response:
        return login_redirect(request)

    app.state.startup_hooks.append(start)
    app.state.shutdown_hooks.append(stop)
    app.add_exception_handler(LoginRequired, need_login)
    app.include_router(router)


# --- helpers --------------------------------------------------------------------------------

def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _pool(request: Request) -> AsyncConnectionPool:
    return request.app.state.pool


def _studio(request: Request) -> Studio:
    return request.app.state.studio


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


class LoginRequired(Exception):
    pass


def _guard(request: Request) -> None:
    if not auth.is_authenticated(request, _settings(request).api_token):
        raise LoginRequired


def login_redirect(request: Request) -> Response:
    target = "/studio/login?next=" + quote(_safe_next(request.url.path), safe="/")
    if _is_htmx(request):
        return Response(status_code=401, headers={"hx-redirect": target, **SECURITY_HEADERS})
    return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)


def _safe_next(path: str) -> str:
    return path if path.startswith("/studio") and "//" not in path else "/studio"


def page(request: Request, template: str, context: dict[str, Any],
         status_code: int = 200) -> Response:
    """Render with the common context; sets the CSRF cookie on first visit."""
    token, new = auth.csrf_token(request)
    ctx = {"csrf": token, "auth_enabled": _settings(request).api_token is not None,
           "path": request.url.path, "version": _studio(request).observer.version, **context}
    response = render(template, ctx, status_code, SECURITY_HEADERS)
    if new:
        auth.set_csrf_cookie(response, request, token)
    return response


def not_found_page(request: Request, what: str) -> Response:
    return page(request, "not_found.html", {"what": what, "nav": ""}, 404)


async def _form(request: Request) -> dict[str, str]:
    """A urlencoded form body (the studio's forms are tiny; no multipart)."""
    body = await request.body()
    if len(body) > 65536:
        raise ApiError(413, "payload_too_large", "form too large")
    try:
        parsed = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "bad_form", "malformed form body") from exc
    return {k: v[0] for k, v in parsed.items()}


async def _check_post(request: Request) -> dict[str, str]:
    _guard(request)
    form = await _form(request) if request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded") else {}
    submitted = request.headers.get(auth.CSRF_HEADER) or form.get("csrf")
    if not auth.csrf_ok(request, submitted):
        raise ApiError(403, "csrf_failed",
                       "this action must come from a studio page (CSRF check failed)")
    return form


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ApiError(422, "invalid_time", f"not a date and time: {value[:40]}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- login ----------------------------------------------------------------------------------

@router.get("/login")
async def login_form(request: Request, next: str = "/studio") -> Response:
    return page(request, "login.html", {"next": _safe_next(next), "error": None, "nav": ""})


@router.post("/login")
async def login(request: Request) -> Response:
    token = _settings(request).api_token
    form = await _form(request)
    next_path = _safe_next(form.get("next", "/studio"))
    if not auth.same_origin(request):
        raise ApiError(403, "csrf_failed", "cross-site login refused")
    if token is None:
        return RedirectResponse(next_path, status_code=303)
    if not auth.token_matches(token, form.get("token", "")):
        return page(request, "login.html", {"next": next_path, "nav": "",
                                            "error": "That token is not valid."}, 401)
    response = RedirectResponse(next_path, status_code=303, headers=SECURITY_HEADERS)
    auth.set_session(response, request, token)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    await _check_post(request)
    response = RedirectResponse("/studio/login", status_code=303)
    auth.clear_session(response)
    return response


# --- overview -------------------------------------------------------------------------------

async def _overview(request: Request) -> dict[str, Any]:
    return await views.overview(_pool(request), _studio(request).cache,
                                _settings(request).worker_offline_seconds)


@router.get("")
async def overview_page(request: Request) -> Response:
    _guard(request)
    return page(request, "overview.html", {"nav": "overview", **await _overview(request)})


@router.get("/partials/overview")
async def overview_partial(request: Request) -> Response:
    _guard(request)
    return page(request, "partials/overview.html", await _overview(request))


# --- tasks ----------------------------------------------------------------------------------

async def _task_list(request: Request, status: TaskStatus | None, queue: str | None,
                     name: str | None, since: str | None, until: str | None,
                     cursor: int | None) -> dict[str, Any]:
    filters = {"status": status or "", "queue": queue or "", "name": name or "",
               "since": since or "", "until": until or ""}
    data = await views.task_list(_pool(request), _studio(request).cache, status=status,
                                 queue=queue or None, name=name or None,
                                 since=_parse_time(since), until=_parse_time(until),
                                 cursor=cursor, limit=50)
    query = "&".join(f"{k}={quote(v)}" for k, v in filters.items() if v)
    return {"filters": filters, "query": query, "cursor": cursor, **data}


Text = Annotated[str | None, Query(max_length=200)]


@router.get("/tasks")
async def tasks_page(request: Request, status: Annotated[TaskStatus | Literal[""], Query()] = "",
                     queue: Text = None, name: Text = None, since: Text = None,
                     until: Text = None, cursor: Cursor = None, q: Text = None) -> Response:
    _guard(request)
    if q:
        ident = q.strip().lstrip("#")
        if ident.isdigit() and 0 < int(ident) < 2**63:
            return RedirectResponse(f"/studio/tasks/{int(ident)}", status_code=303)
        raise ApiError(422, "invalid_id", "search by task id: a positive integer")
    async with _pool(request).connection() as conn:
        queue_names = await queries.queue_names(conn)
    data = await _task_list(request, status or None, queue, name, since, until, cursor)
    return page(request, "tasks.html", {"nav": "tasks", "queue_names": queue_names,
                                        "statuses": TaskStatus.__args__, **data})


@router.get("/partials/tasks")
async def tasks_partial(request: Request,
                        status: Annotated[TaskStatus | Literal[""], Query()] = "",
                        queue: Text = None, name: Text = None, since: Text = None,
                        until: Text = None, cursor: Cursor = None) -> Response:
    _guard(request)
    data = await _task_list(request, status or None, queue, name, since, until, cursor)
    return page(request, "partials/tasks.html", data)


@router.get("/tasks/{task_id}")
async def task_page(request: Request, task_id: TaskId) -> Response:
    _guard(request)
    data = await views.task_detail(_pool(request), _studio(request).cache, task_id)
    if data is None:
        return not_found_page(request, f"task {task_id}")
    return page(request, "task.html", {"nav": "tasks", "message": None, **data})


@router.get("/partials/task/{task_id}")
async def task_partial(request: Request, task_id: TaskId) -> Response:
    _guard(request)
    data = await views.task_detail(_pool(request), _studio(request).cache, task_id)
    if data is None:
        return not_found_page(request, f"task {task_id}")
    return page(request, "partials/task.html", {"message": None, **data})


async def _after_action(request: Request, task_id: int, message: str) -> Response:
    _studio(request).cache.forget(("task", task_id))  # the observer has not seen it yet
    if not _is_htmx(request):
        return RedirectResponse(f"/studio/tasks/{task_id}", status_code=303)
    data = await views.task_detail(_pool(request), _studio(request).cache, task_id)
    assert data is not None
    return page(request, "partials/task.html", {"message": message, **data})


@router.post("/tasks/{task_id}/cancel")
async def cancel_task(request: Request, task_id: TaskId) -> Response:
    await _check_post(request)
    async with _pool(request).connection() as conn:
        rows = await task_store.cancel(conn, [task_id])
        if not rows:
            task = await task_store.get(conn, task_id)  # 404 when unknown
            message = f"Not cancelled: the task is already {task['status']}."
        elif rows[0]["status"] == "cancelled":
            message = "Cancelled."
        else:
            message = "Cancellation requested; the worker stops at its next heartbeat."
    return await _after_action(request, task_id, message)


@router.post("/tasks/{task_id}/retry")
async def retry_task(request: Request, task_id: TaskId) -> Response:
    await _check_post(request)
    row = await task_store.retry(_pool(request), task_id)
    if row is None:
        async with _pool(request).connection() as conn:
            task = await task_store.get(conn, task_id)
        message = f"Not retried: only failed or cancelled tasks can be; it is {task['status']}."
    else:
        message = "Queued again."
    return await _after_action(request, task_id, message)


# --- trees ----------------------------------------------------------------------------------

OpenParam = Annotated[str | None, Query(alias="open", max_length=4000)]


@router.get("/trees")
async def trees_page(request: Request, cursor: Cursor = None) -> Response:
    _guard(request)
    data = await views.tree_index(_pool(request), _studio(request).cache, cursor)
    return page(request, "trees.html", {"nav": "trees", **data})


@router.get("/partials/trees")
async def trees_partial(request: Request, cursor: Cursor = None) -> Response:
    _guard(request)
    data = await views.tree_index(_pool(request), _studio(request).cache, cursor)
    return page(request, "partials/trees.html", data)


@router.get("/trees/{task_id}")
async def tree_page(request: Request, task_id: TaskId, open_: OpenParam = None) -> Response:
    _guard(request)
    view = await views.tree_view(_pool(request), _studio(request).cache, task_id, open_)
    if view is None:
        return not_found_page(request, f"task {task_id}")
    return page(request, "tree.html", {"nav": "trees", "tree": view})


@router.get("/partials/tree/{task_id}")
async def tree_partial(request: Request, task_id: TaskId, open_: OpenParam = None) -> Response:
    _guard(request)
    view = await views.tree_view(_pool(request), _studio(request).cache, task_id, open_)
    if view is None:
        return not_found_page(request, f"task {task_id}")
    return page(request, "partials/tree.html", {"tree": view})


# --- workers, definitions, key-value --------------------------------------------------------

@router.get("/workers")
async def workers_page(request: Request) -> Response:
    _guard(request)
    data = await views.workers(_pool(request), _studio(request).cache,
                               _settings(request).worker_offline_seconds)
    return page(request, "workers.html", {"nav": "workers", **data})


@router.get("/partials/workers")
async def workers_partial(request: Request) -> Response:
    _guard(request)
    data = await views.workers(_pool(request), _studio(request).cache,
                               _settings(request).worker_offline_seconds)
    return page(request, "partials/workers.html", data)


@router.get("/definitions")
async def definitions_page(request: Request) -> Response:
    _guard(request)
    data = await views.definitions(_pool(request), _studio(request).cache)
    return page(request, "definitions.html", {"nav": "definitions", **data})


@router.get("/partials/definitions")
async def definitions_partial(request: Request) -> Response:
    _guard(request)
    data = await views.definitions(_pool(request), _studio(request).cache)
    return page(request, "partials/definitions.html", data)


KvPrefix = Annotated[str, Query(max_length=512)]
KvAfter = Annotated[str | None, Query(max_length=512)]


async def _kv(request: Request, prefix: str, after: str | None,
              cached: bool) -> dict[str, Any]:
    cache = _studio(request).cache if cached else None
    data = await views.kv_page(_pool(request), cache, prefix, after or None, 100)
    return {"prefix": prefix, "after": after, "kv_refresh_seconds": views.KV_REFRESH_SECONDS,
            **data}


@router.get("/kv")
async def kv_page(request: Request, prefix: KvPrefix = "", after: KvAfter = None) -> Response:
    _guard(request)
    return page(request, "kv.html", {"nav": "kv", **await _kv(request, prefix, after, False)})


@router.get("/partials/kv")
async def kv_partial(request: Request, prefix: KvPrefix = "", after: KvAfter = None) -> Response:
    _guard(request)
    return page(request, "partials/kv.html", await _kv(request, prefix, after, True))


# --- schedules ------------------------------------------------------------------------------

@router.get("/schedules")
async def schedules_page(request: Request) -> Response:
    _guard(request)
    data = await views.schedules(_pool(request), _studio(request).cache)
    return page(request, "schedules.html", {"nav": "schedules", "message": None, **data})


@router.get("/partials/schedules")
async def schedules_partial(request: Request) -> Response:
    _guard(request)
    data = await views.schedules(_pool(request), _studio(request).cache)
    return page(request, "partials/schedules.html", {"message": None, **data})


ScheduleName = Annotated[str, Path(min_length=1, max_length=200)]


@router.post("/schedules/{name}/{action}")
async def schedule_action(request: Request, name: ScheduleName,
                          action: Literal["pause", "resume"]) -> Response:
    await _check_post(request)
    await schedule_actions.set_paused(_pool(request), name, action == "pause")
    if not _is_htmx(request):
        return RedirectResponse("/studio/schedules", status_code=303)
    async with _pool(request).connection() as conn:
        rows = await queries.schedules(conn)
    message = f"{'Paused' if action == 'pause' else 'Resumed'} {name}."
    return page(request, "partials/schedules.html", {"message": message, "schedules": rows})


# --- workflows ------------------------------------------------------------------------------

@router.get("/workflows")
async def workflows_page(request: Request, name: Text = None, cursor: Cursor = None) -> Response:
    _guard(request)
    data = await views.workflows(_pool(request), _studio(request).cache, name or None, cursor)
    return page(request, "workflows.html", {"nav": "workflows", "name": name or "", **data})


@router.get("/partials/workflows")
async def workflows_partial(request: Request, name: Text = None,
                            cursor: Cursor = None) -> Response:
    _guard(request)
    data = await views.workflows(_pool(request), _studio(request).cache, name or None, cursor)
    return page(request, "partials/workflow_runs.html", {"name": name or "", **data})


@router.get("/workflows/runs/{run_id}")
async def run_page(request: Request, run_id: TaskId) -> Response:
    _guard(request)
    data = await views.workflow_run(_pool(request), _studio(request).cache, run_id)
    if data is None:
        return not_found_page(request, f"workflow run {run_id}")
    return page(request, "run.html", {"nav": "workflows", **data})


@router.get("/partials/run/{run_id}")
async def run_partial(request: Request, run_id: TaskId) -> Response:
    _guard(request)
    data = await views.workflow_run(_pool(request), _studio(request).cache, run_id)
    if data is None:
        return not_found_page(request, f"workflow run {run_id}")
    return page(request, "partials/run.html", data)


# --- live signals and assets ----------------------------------------------------------------

@router.get("/events")
async def events(request: Request) -> Response:
    """One SSE stream per open page: ``change`` events name the topics that changed."""
    _guard(request)
    observer = _studio(request).observer

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

"""The studio's pages, each with its partial (one view function serves both, see
:func:`~branchwork.studio.web.view`): overview, tasks, trees, workers, definitions, key-value,
schedules and workflows. Every one reads through ``views`` (the read model)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import Path, Query, Request
from starlette.responses import RedirectResponse, Response

from ..app.errors import ApiError
from ..app.read.health import Thresholds
from ..protocol import KEY_MAX, MAX_TASK_ID, TASK_STATUSES, TaskStatus
from . import views
from .web import Missing, View, guard, page, parse_time, pool, router, settings, studio, view

TaskId = Annotated[int, Path(ge=1, le=MAX_TASK_ID)]
Cursor = Annotated[int | None, Query(ge=1, le=MAX_TASK_ID)]
Text = Annotated[str | None, Query(max_length=200)]
StatusParam = Annotated[TaskStatus | Literal[""], Query()]
OpenParam = Annotated[str | None, Query(alias="open", max_length=4000)]
KvPrefix = Annotated[str, Query(max_length=KEY_MAX)]
KvAfter = Annotated[str | None, Query(max_length=KEY_MAX)]


@view("", "/partials/overview", "overview.html", nav="overview")
async def overview(v: View) -> dict[str, Any]:
    return await views.overview(v.pool, v.cache, v.settings.worker_offline_seconds)


@view("/tasks", "/partials/tasks", "tasks.html", nav="tasks")
async def tasks(v: View, status: StatusParam = "", queue: Text = None, name: Text = None,
                since: Text = None, until: Text = None, cursor: Cursor = None,
                q: Text = None) -> dict[str, Any] | Response:
    if q and not v.partial:
        ident = q.strip().lstrip("#")
        if ident.isdigit() and 0 < int(ident) < 2**63:
            return RedirectResponse(f"/studio/tasks/{int(ident)}", status_code=303)
        raise ApiError(422, "invalid_id", "search by task id: a positive integer")
    filters = {"status": status or "", "queue": queue or "", "name": name or "",
               "since": since or "", "until": until or ""}
    data = await views.task_list(v.pool, v.cache, status=status or None, queue=queue or None,
                                 name=name or None, since=parse_time(since),
                                 until=parse_time(until), cursor=cursor)
    query = "&".join(f"{k}={quote(val)}" for k, val in filters.items() if val)
    context = {"filters": filters, "query": query, "cursor": cursor, **data}
    if not v.partial:
        context.update(queue_names=await views.queue_names(v.pool), statuses=TASK_STATUSES)
    return context


@view("/tasks/{task_id}", "/partials/task/{task_id}", "task.html", nav="tasks")
async def task(v: View, task_id: TaskId) -> dict[str, Any]:
    data = await views.task_detail(v.pool, v.cache, task_id)
    if data is None:
        raise Missing(f"task {task_id}")
    return {"message": None, **data}


@view("/trees", "/partials/trees", "trees.html", nav="trees")
async def trees(v: View, cursor: Cursor = None) -> dict[str, Any]:
    return await views.tree_index(v.pool, v.cache, cursor)


@view("/trees/{task_id}", "/partials/tree/{task_id}", "tree.html", nav="trees")
async def tree(v: View, task_id: TaskId, open_: OpenParam = None) -> dict[str, Any]:
    found = await views.tree_view(v.pool, v.cache, task_id, open_)
    if found is None:
        raise Missing(f"task {task_id}")
    return {"tree": found}


@view("/workers", "/partials/workers", "workers.html", nav="workers")
async def workers(v: View) -> dict[str, Any]:
    return await views.workers(v.pool, v.cache, v.settings.worker_offline_seconds)


@view("/definitions", "/partials/definitions", "definitions.html", nav="definitions")
async def definitions(v: View) -> dict[str, Any]:
    return await views.definitions(v.pool, v.cache)


@view("/kv", "/partials/kv", "kv.html", nav="kv")
async def kv(v: View, prefix: KvPrefix = "", after: KvAfter = None) -> dict[str, Any]:
    # A page load reads now (a key just set shows at once); the partial's timer is cached.
    data = await views.kv_page(v.pool, v.cache if v.partial else None, prefix, after or None)
    return {"prefix": prefix, "after": after, "kv_refresh_seconds": views.KV_REFRESH_SECONDS,
            **data}


@view("/schedules", "/partials/schedules", "schedules.html", nav="schedules")
async def schedules(v: View) -> dict[str, Any]:
    return {"message": None, **await views.schedules(v.pool, v.cache)}


@view("/workflows", "/partials/workflows", "workflows.html", "partials/workflow_runs.html",
      nav="workflows")
async def workflows(v: View, name: Text = None, cursor: Cursor = None) -> dict[str, Any]:
    data = await views.workflows(v.pool, v.cache, name or None, cursor)
    return {"name": name or "", **data}


@view("/workflows/runs/{run_id}", "/partials/run/{run_id}", "run.html", nav="workflows")
async def run(v: View, run_id: TaskId) -> dict[str, Any]:
    data = await views.workflow_run(v.pool, v.cache, run_id)
    if data is None:
        raise Missing(f"workflow run {run_id}")
    return data


@router.get("/partials/health")
async def health_banner(request: Request) -> Response:
    """The queue health banner every page loads (empty while healthy)."""
    guard(request)
    health = await views.queue_health(pool(request), studio(request).cache,
                                      Thresholds.of(settings(request)))
    return page(request, "partials/health.html", {"health": health})

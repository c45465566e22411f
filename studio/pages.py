"""The studio's pages, each with its partial (one view function serves both, see
:func:`~branchwork.studio.web.view`): overview, tasks, trees, queues, performance, workers,
definitions (with the send form), key-value, schedules and workflows. Every one reads
through ``views`` (the read model). List filters are read leniently (``filters.py``): a bad
value shows the page with a note, not a JSON error."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Path, Query, Request
from starlette.responses import RedirectResponse, Response

from ..app.read import streams as stream_reads
from ..app.read.health import Thresholds
from ..protocol import KEY_MAX, MAX_TASK_ID, TASK_STATUSES
from . import forms, views
from .filters import Filters
from .web import Missing, View, guard, page, pool, router, settings, studio, view

TaskId = Annotated[int, Path(ge=1, le=MAX_TASK_ID)]
Text = Annotated[str | None, Query(max_length=200)]
OpenParam = Annotated[str | None, Query(alias="open", max_length=4000)]
KvPrefix = Annotated[str, Query(max_length=KEY_MAX)]
KvAfter = Annotated[str | None, Query(max_length=KEY_MAX)]


@view("", "/partials/overview", "overview.html", nav="overview")
async def overview(v: View) -> dict[str, Any]:
    return await views.overview(v.pool, v.cache, v.settings.worker_offline_seconds)


@view("/tasks", "/partials/tasks", "tasks.html", nav="tasks")
async def tasks(v: View, status: Text = None, queue: Text = None, name: Text = None,
                since: Text = None, until: Text = None, cursor: Text = None,
                q: Text = None) -> dict[str, Any] | Response:
    checked = Filters()
    if q and not v.partial:
        ident = checked.task_id(q)
        if ident is not None:
            return RedirectResponse(f"/studio/tasks/{ident}", status_code=303)
    status_ok = checked.choice("status", status, TASK_STATUSES)
    since_at, until_at = checked.time("from", since), checked.time("until", until)
    filters = {"status": status_ok or "", "queue": queue or "", "name": name or "",
               "since": since if since_at else "", "until": until if until_at else ""}
    at = checked.cursor(cursor)
    data = await views.task_list(v.pool, v.cache, status=status_ok, queue=queue or None,
                                 name=name or None, since=since_at, until=until_at, cursor=at)
    query = "&".join(f"{k}={quote(val)}" for k, val in filters.items() if val)
    context = {"filters": filters, "query": query, "cursor": at, "notes": checked.notes,
               "message": None, **data}
    if not v.partial:
        context.update(queue_names=await views.queue_names(v.pool), statuses=TASK_STATUSES)
    return context


@view("/tasks/{task_id}", "/partials/task/{task_id}", "task.html", nav="tasks")
async def task(v: View, task_id: TaskId, sent: Text = None) -> dict[str, Any]:
    data = await views.task_detail(v.pool, v.cache, task_id)
    if data is None:
        raise Missing(f"task {task_id}")
    return {"message": "Sent." if sent and not v.partial else None, **data}


@view("/trees", "/partials/trees", "trees.html", nav="trees")
async def trees(v: View, cursor: Text = None) -> dict[str, Any]:
    checked = Filters()
    data = await views.tree_index(v.pool, v.cache, checked.cursor(cursor))
    return {"notes": checked.notes, **data}


@view("/trees/{task_id}", "/partials/tree/{task_id}", "tree.html", nav="trees")
async def tree(v: View, task_id: TaskId, open_: OpenParam = None) -> dict[str, Any]:
    found = await views.tree_view(v.pool, v.cache, task_id, open_)
    if found is None:
        raise Missing(f"task {task_id}")
    return {"message": None, **found}


@view("/workers", "/partials/workers", "workers.html", nav="workers")
async def workers(v: View) -> dict[str, Any]:
    return await views.workers(v.pool, v.cache, v.settings.worker_offline_seconds)


@view("/definitions", "/partials/definitions", "definitions.html", nav="definitions")
async def definitions(v: View, send: Text = None) -> dict[str, Any]:
    data = await views.definitions(v.pool, v.cache)
    if v.partial:
        return data
    return {**data, **send_form(data["definitions"], send)}


def send_form(defs: list[dict[str, Any]], name: str | None, values: dict[str, str] | None = None,
              error: str | None = None) -> dict[str, Any]:
    """The send form's context: the chosen definition, its fields (None: one JSON box), the
    values typed so far and the error to show beside them."""
    chosen = next((d for d in defs if d["name"] == name), None) if name else None
    return {"send": chosen, "send_name": name or "",
            "send_fields": forms.fields_of(chosen["args_schema"]) if chosen else None,
            "send_values": values or {}, "send_error": error, "raw_field": forms.RAW_FIELD}


@view("/queues", "/partials/queues", "queues.html", nav="queues")
async def queues(v: View) -> dict[str, Any]:
    return {"message": None, **await views.queues(v.pool, v.cache)}


@view("/performance", "/partials/performance", "performance.html", nav="performance")
async def performance(v: View, window: Text = None) -> dict[str, Any]:
    checked = Filters()
    chosen = checked.choice("window", window, tuple(views.RUN_TIME_WINDOWS)) or "24h"
    data = await views.performance(v.pool, v.cache, chosen)
    return {"window": chosen, "windows": list(views.RUN_TIME_WINDOWS), "notes": checked.notes,
            **data}


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
async def workflows(v: View, name: Text = None, cursor: Text = None) -> dict[str, Any]:
    checked = Filters()
    data = await views.workflows(v.pool, v.cache, name or None, checked.cursor(cursor))
    return {"name": name or "", "notes": checked.notes, **data}


@view("/workflows/runs/{run_id}", "/partials/run/{run_id}", "run.html", nav="workflows")
async def run(v: View, run_id: TaskId) -> dict[str, Any]:
    data = await views.workflow_run(v.pool, v.cache, run_id)
    if data is None:
        raise Missing(f"workflow run {run_id}")
    return {"message": None, **data}


@router.get("/partials/health")
async def health_banner(request: Request) -> Response:
    """The queue health banner every page loads (empty while healthy)."""
    guard(request)
    health = await views.queue_health(pool(request), studio(request).cache,
                                      Thresholds.of(settings(request)))
    return page(request, "partials/health.html", {"health": health})


@router.get("/partials/task-progress/{task_id}")
async def task_progress(request: Request, task_id: TaskId) -> Response:
    """A task's live progress bar and streamed text (docs/streaming.md): refetched when any
    stream changes or the task does."""
    guard(request)
    stream = await stream_reads.task_progress(pool(request), task_id)
    return page(request, "partials/task_progress.html", {"task_id": task_id, "stream": stream})

"""The studio's actions: cancel or retry a task (or the selected tasks of a list), cancel a
tree or a workflow run, pause or resume a schedule or a queue, change a queue's concurrency
limit, send a task from its definition. The same engine use cases as the API's routes,
behind the studio's session and CSRF checks (``app/access.py``: admins only; a viewer's
pages show no buttons)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Literal, cast

from fastapi import Path, Request
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from ..app.api.schemas import TaskIn
from ..app.engine import schedules as schedule_engine
from ..app.engine.bulk import Action, TaskSelection, bulk_tasks
from ..app.engine.cancel import cancel_task
from ..app.engine.errors import Conflict, DomainError, NotFound
from ..app.engine.queues import configure_queue
from ..app.engine.rerun import rerun_from
from ..app.engine.retry import retry_task
from ..app.engine.runs import cancel_run
from ..app.engine.send import send_tasks
from ..app.engine.trees import cancel_subtree
from ..app.errors import ApiError
from ..protocol import (
    LABEL_PATTERN,
    MAX_CONCURRENCY_LIMIT,
    QUEUE_NAME_MAX,
    QUEUE_NAME_PATTERN,
    SCHEDULE_NAME_MAX,
    TASK_STATUSES,
)
from . import forms, views
from .filters import Filters
from .live import VersionCache
from .pages import TaskId, send_form
from .web import check_post, is_htmx, page, pool, router, server, studio

ScheduleName = Annotated[str, Path(min_length=1, max_length=SCHEDULE_NAME_MAX,
                                   pattern=LABEL_PATTERN)]


@dataclass(frozen=True)
class _Shown:
    """The page an action on one thing (task, tree, run) goes back to."""

    url: str  # ``{}``: the thing's id
    template: str  # the partial htmx swaps in
    read: Callable[[AsyncConnectionPool, VersionCache, int], Awaitable[dict[str, Any] | None]]
    what: str  # in the 404 if it is gone
    cached: str | None  # the cache key's head: forget that entry; None: forget them all


TASK_PAGE = _Shown("/studio/tasks/{}", "partials/task.html", views.task_detail, "task", "task")
# A tree's cancel changes many tasks: every cached view may show one of them.
TREE_PAGE = _Shown("/studio/trees/{}", "partials/tree.html",
                   partial(views.tree_view, open_text=None), "task", None)
RUN_PAGE = _Shown("/studio/workflows/runs/{}", "partials/run.html", views.workflow_run,
                  "workflow run", "run")


async def _after_action(request: Request, shown: _Shown, ident: int, message: str) -> Response:
    """A plain form post is sent back to the thing's page (303); htmx gets its partial,
    read again now, with ``message`` on top."""
    cache = studio(request).cache
    if shown.cached is None:
        cache.clear()
    else:
        cache.forget((shown.cached, ident))  # the observer has not seen the change yet
    if not is_htmx(request):
        return RedirectResponse(shown.url.format(ident), status_code=303)
    data = await shown.read(pool(request), cache, ident)
    if data is None:
        raise NotFound.of(shown.what, ident)
    return page(request, shown.template, {"message": message, **data})


@router.post("/tasks/{task_id}/cancel")
async def cancel(request: Request, task_id: TaskId) -> Response:
    await check_post(request)
    try:
        outcome = await cancel_task(server(request), task_id)
    except Conflict as refused:  # NotFound goes on: 404
        message = f"Not cancelled: the task is already {refused.details['status']}."
    else:
        message = ("Cancelled." if outcome.status == "cancelled" else
                   "Cancellation requested; the worker stops at its next heartbeat.")
    return await _after_action(request, TASK_PAGE, task_id, message)


@router.post("/tasks/{task_id}/retry")
async def retry(request: Request, task_id: TaskId) -> Response:
    await check_post(request)
    try:
        await retry_task(server(request), task_id)
    except Conflict as refused:
        message = ("Not retried: only failed or cancelled tasks can be; it is "
                   f"{refused.details['status']}.")
    else:
        message = "Queued again."
    return await _after_action(request, TASK_PAGE, task_id, message)


# The name is one escaped path segment in the studio's forms; ``path`` lets it hold "/".
@router.post("/schedules/{name:path}/{action}")
async def schedule_action(request: Request, name: ScheduleName,
                          action: Literal["pause", "resume"]) -> Response:
    await check_post(request)
    await schedule_engine.set_paused(server(request), name, action == "pause")
    if not is_htmx(request):
        return RedirectResponse("/studio/schedules", status_code=303)
    data = await views.schedules(pool(request), None)
    message = f"{'Paused' if action == 'pause' else 'Resumed'} {name}."
    return page(request, "partials/schedules.html", {"message": message, **data})


# --- queues: pause, resume, concurrency limit --------------------------------------------

QueueName = Annotated[str, Path(min_length=1, max_length=QUEUE_NAME_MAX,
                                pattern=QUEUE_NAME_PATTERN)]


async def _after_queue_action(request: Request, message: str) -> Response:
    # Their charts keep a result for a few seconds: drop it, or a live refresh right after
    # would show the old state again for a moment.
    for key in (("queues",), ("overview",)):
        studio(request).cache.forget(key)
    if not is_htmx(request):
        return RedirectResponse("/studio/queues", status_code=303)
    data = await views.queues(pool(request), None)
    return page(request, "partials/queues.html", {"message": message, **data})


# The name is one escaped path segment in the forms; ``path`` lets it hold "/".
@router.post("/queues/{name:path}/{action}")
async def queue_action(request: Request, name: QueueName,
                       action: Literal["pause", "resume", "limit"]) -> Response:
    data = await check_post(request)
    if action == "limit":
        text = data.get("limit", "").strip()
        if text and not (text.isdigit() and 0 < int(text) <= MAX_CONCURRENCY_LIMIT):
            raise ApiError(422, "invalid_limit",
                           f"the limit is a whole number from 1 to {MAX_CONCURRENCY_LIMIT}, or empty "
                           "for no limit")
        limit = int(text) if text else None
        await configure_queue(server(request), name, concurrency_limit=limit)
        message = f"{name}: {'limit ' + str(limit) if limit else 'no limit'}."
    else:
        await configure_queue(server(request), name, paused=action == "pause")
        message = f"{'Paused' if action == 'pause' else 'Resumed'} {name}."
    return await _after_queue_action(request, message)


# --- send a task from its definition ------------------------------------------------------

@router.post("/definitions/send")
async def send_from_definition(request: Request) -> Response:
    """The Definitions page's form: args built from the definition's schema; on success the
    browser goes to the new task's page, otherwise the form comes back with the error."""
    data = await check_post(request)
    defs = (await views.definitions(pool(request), studio(request).cache))["definitions"]
    name = data.get("name", "")
    chosen = next((d for d in defs if d["name"] == name), None)
    if chosen is None:
        raise NotFound.of("task definition", name[:200])
    try:
        args = forms.args_from(chosen["args_schema"], data)
        task = TaskIn.model_validate({
            **{k: v for k, v in (chosen.get("defaults") or {}).items()
               if k in TaskIn.model_fields and k not in ("name", "args")},
            "name": name, "args": args,
            **({"queue": data["queue"].strip()} if data.get("queue", "").strip() else
               {"queue": chosen["queue"]}),
            **({"priority": int(data["priority"])} if data.get("priority", "").strip()
               else {})})
        [sent] = await send_tasks(server(request), [task.model_dump()])
    except (forms.FormError, ValueError, DomainError) as refused:
        text = (refused.errors()[0]["msg"] if isinstance(refused, ValidationError)
                else str(refused))
        return page(request, "definitions.html", {
            "nav": "definitions", "definitions": defs,
            **send_form(defs, name, data, f"Not sent: {text}")}, 422)
    studio(request).cache.forget(("task", sent.id))
    return RedirectResponse(f"/studio/tasks/{sent.id}?sent=1", status_code=303)


# --- cancel a tree or a workflow run --------------------------------------------------------

@router.post("/trees/{task_id}/cancel")
async def cancel_tree(request: Request, task_id: TaskId) -> Response:
    """Cancel the tree ``task_id`` belongs to: its root and every descendant."""
    await check_post(request)
    found = await views.tree_view(pool(request), studio(request).cache, task_id, None)
    if found is None:
        raise NotFound.of("task", task_id)
    outcome = await cancel_subtree(server(request), found["tree"].root.id)
    message = (f"Cancelled {len(outcome['cancelled'])} queued tasks; asked "
               f"{len(outcome['cancel_requested'])} running ones to stop.")
    return await _after_action(request, TREE_PAGE, task_id, message)


@router.post("/workflows/runs/{run_id}/cancel")
async def cancel_workflow_run(request: Request, run_id: TaskId) -> Response:
    await check_post(request)
    try:
        await cancel_run(server(request), run_id, "cancelled in the studio")
    except Conflict as refused:
        message = f"Not cancelled: the run is already {refused.details['status']}."
    else:
        message = "Run cancelled: queued tasks cancelled, running ones asked to stop."
    return await _after_action(request, RUN_PAGE, run_id, message)


@router.post("/workflows/runs/{run_id}/rerun")
async def rerun_workflow_run(request: Request, run_id: TaskId) -> Response:
    """Re-run a finished run from the node in the form: that node and everything downstream
    run again, upstream results are kept (D's ``rerun_from``, the API's use case)."""
    data = await check_post(request)
    node = data.get("node", "")
    if not node or len(node) > 200:
        raise ApiError(422, "invalid_node", "name the node to re-run from")
    try:
        done = await rerun_from(server(request), run_id, node)
    except (Conflict, NotFound) as refused:
        if isinstance(refused, NotFound) and "no node" not in str(refused):
            raise
        message = f"Not re-run: {refused}."
    else:
        message = f"Re-running from {node}: {', '.join(done.nodes)}."
    return await _after_action(request, RUN_PAGE, run_id, message)


# --- bulk: the selected rows of the Tasks list, or everything its filter matches -----------

MAX_SELECTED = 200  # a page of the list is 50 rows; a few pages' worth at most
VERB = {"cancel": "Cancelled", "retry": "Queued again"}
LEFT = {"cancel": "already finished", "retry": "not failed or cancelled"}


def selected_ids(text: str) -> list[int]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or len(parts) > MAX_SELECTED or not all(
            p.isdigit() and 0 < int(p) < 2**63 for p in parts):
        raise ApiError(422, "invalid_selection",
                       f"select between 1 and {MAX_SELECTED} tasks (ids, comma-separated)")
    return sorted({int(p) for p in parts})


def filter_selection(data: dict[str, str]) -> tuple[TaskSelection, dict[str, str]]:
    """The Tasks list's filter as a bulk selection (status, queue, created from/until), and
    the same fields to carry into the confirmation form. Bad values: 422, nothing done."""
    if data.get("name", "").strip():
        raise ApiError(422, "invalid_filter", "“name contains” is not a bulk filter: select "
                       "the rows instead, or use the API's exact name filter")
    checked = Filters()
    status = checked.choice("status", data.get("status"), TASK_STATUSES)
    since, until = checked.time("from", data.get("since")), checked.time("until",
                                                                          data.get("until"))
    if checked.notes:
        raise ApiError(422, "invalid_filter", " ".join(checked.notes))
    queue = data.get("queue", "").strip() or None
    selection = TaskSelection(queue=queue, statuses=(status,) if status else (),
                              created_after=since, created_before=until)
    if selection.is_empty():
        raise ApiError(422, "empty_filter", "choose a status, queue or time range first: "
                       "a bulk action never means every task by default")
    carried = {k: data.get(k, "") for k in ("status", "queue", "since", "until")}
    return selection, carried


@router.post("/bulk/{action}")
async def bulk_action(request: Request, action: Annotated[str, Path(max_length=20)]) -> Response:
    """Selected rows (``ids``): the browser asked "Cancel 3 selected tasks?" first. The
    whole filter (``scope=filter``): a dry run answers the count to confirm, then
    ``confirmed=1`` acts (D's ``bulk_tasks``, batch by batch)."""
    data = await check_post(request)  # who may act first, then what was asked
    if action not in ("cancel", "retry"):
        raise ApiError(404, "not_found", f"no bulk action {action[:20]!r}: cancel or retry")
    state = server(request)
    if data.get("scope") == "filter":
        selection, carried = filter_selection(data)
        dry = data.get("confirmed") != "1"
        result = await bulk_tasks(state, cast(Action, action), selection, dry_run=dry)
        if dry:
            return page(request, "partials/bulk_confirm.html", {
                "action": action, "result": result, "carried": carried})
        message = (f"{VERB[action]}: {result.changed} of {result.matched} tasks matching "
                   "the filter.")
    else:
        ids = selected_ids(data.get("ids", ""))
        result = await bulk_tasks(state, cast(Action, action), TaskSelection.of_ids(ids))
        message = f"{VERB[action]}: {result.changed} of {len(ids)} selected tasks."
        if result.changed < len(ids):
            message += f" {len(ids) - result.changed} left as they were ({LEFT[action]})."
    studio(request).cache.clear()
    if not is_htmx(request):
        return RedirectResponse("/studio/tasks", status_code=303)
    return page(request, "partials/bulk_result.html", {"message": message})

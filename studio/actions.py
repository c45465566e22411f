"""The studio's actions (cancel or retry a task, pause or resume a schedule): the same engine
use cases as the API's routes, behind the studio's session and CSRF checks."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Path, Request
from starlette.responses import RedirectResponse, Response

from ..app.engine import schedules as schedule_engine
from ..app.engine.cancel import cancel_task
from ..app.engine.errors import Conflict
from ..app.engine.retry import retry_task
from ..protocol import LABEL_PATTERN, SCHEDULE_NAME_MAX
from . import views
from .pages import TaskId
from .web import check_post, is_htmx, page, pool, router, server, studio

ScheduleName = Annotated[str, Path(min_length=1, max_length=SCHEDULE_NAME_MAX,
                                   pattern=LABEL_PATTERN)]


async def _after_task_action(request: Request, task_id: int, message: str) -> Response:
    studio(request).cache.forget(("task", task_id))  # the observer has not seen it yet
    if not is_htmx(request):
        return RedirectResponse(f"/studio/tasks/{task_id}", status_code=303)
    data = await views.task_detail(pool(request), studio(request).cache, task_id)
    assert data is not None
    return page(request, "partials/task.html", {"message": message, **data})


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
    return await _after_task_action(request, task_id, message)


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
    return await _after_task_action(request, task_id, message)


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

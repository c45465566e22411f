"""The studio's people-in-the-loop: the Approvals page, the approval box of a task page, and
the Approve / Reject actions, which call the same engine use case as the API's routes
(``app/engine/approvals.py``), behind the studio's session and CSRF checks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query, Request
from starlette.responses import RedirectResponse, Response

from ..app.engine import approvals as engine
from ..app.engine.errors import Conflict
from ..app.read import approvals as read
from ..protocol import MAX_COMMENT, MAX_TASK_ID
from .web import View, caller, check_post, guard, is_htmx, page, pool, router, server, studio, view

TaskId = Annotated[int, Path(ge=1, le=MAX_TASK_ID)]
Cursor = Annotated[int | None, Query(ge=1, le=MAX_TASK_ID)]
PER_PAGE = 50


@view("/approvals", "/partials/approvals", "approvals.html", nav="approvals")
async def approvals(v: View, cursor: Cursor = None) -> dict[str, Any]:
    listed = await read.list_pending(v.pool, cursor=cursor, limit=PER_PAGE)
    return {"message": None, "approvals": listed.items, "next_cursor": listed.next_cursor,
            "cursor": cursor}


async def _task_box(request: Request, task_id: int, message: str | None) -> Response:
    data = await read.of_task(pool(request), task_id)
    return page(request, "partials/task_approval.html",
                {"task_id": task_id, "message": message, **data})


@router.get("/partials/task/{task_id}/approval")
async def task_approval(request: Request, task_id: TaskId) -> Response:
    guard(request)
    return await _task_box(request, task_id, None)


async def _decide(request: Request, task_id: int, approved: bool) -> Response:
    data = await check_post(request)
    who = caller(request)
    decision = engine.Decision(approved=approved,
                               comment=(data.get("comment") or "").strip()[:MAX_COMMENT] or None,
                               by=(who.name if who is not None else "") or engine.ANONYMOUS)
    try:
        out = await engine.decide(server(request), task_id, decision)
    except Conflict as refused:  # NotFound goes on: 404
        message = refused.message
    else:
        message = f"{out['decision'].capitalize()}; the task resumes."
    studio(request).cache.forget(("task", task_id))
    if not is_htmx(request):
        return RedirectResponse(f"/studio/tasks/{task_id}", status_code=303)
    if request.headers.get("HX-Target") == "approvals":  # a row of the Approvals page
        listed = await read.list_pending(pool(request), limit=PER_PAGE)
        return page(request, "partials/approvals.html",
                    {"message": f"Task #{task_id}: {message}", "approvals": listed.items,
                     "next_cursor": listed.next_cursor, "cursor": None})
    return await _task_box(request, task_id, message)


@router.post("/tasks/{task_id}/approve")
async def approve(request: Request, task_id: TaskId) -> Response:
    return await _decide(request, task_id, True)


@router.post("/tasks/{task_id}/reject")
async def reject(request: Request, task_id: TaskId) -> Response:
    return await _decide(request, task_id, False)

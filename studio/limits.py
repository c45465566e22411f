"""The studio's flow control: the Limits page (each rate limit's use and next free unit, each
concurrency key's running count, the tasks held back and by what) and the "why isn't it
running?" box of a task page. Both read the same functions as the API (``app/read/flow.py``,
``app/read/why.py``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Request
from starlette.responses import Response

from ..app.read import flow as flow_read
from ..app.read import why as why_read
from ..protocol import MAX_TASK_ID
from .web import View, guard, page, pool, router, settings, view

TaskId = Annotated[int, Path(ge=1, le=MAX_TASK_ID)]
# Buckets drain with time alone: a cached read is kept at most this long.
LIMITS_MIN_AGE = 2.0


@view("/limits", "/partials/limits", "limits.html", nav="limits")
async def limits(v: View) -> dict[str, Any]:
    return await v.cache.get(("limits",), lambda: flow_read.limits_page(v.pool),
                             min_age=LIMITS_MIN_AGE, topic="tasks")


@router.get("/partials/task/{task_id}/why")
async def task_why(request: Request, task_id: TaskId) -> Response:
    """A task page's "why isn't it running?" box; refetched when the task or its queues
    change. A task that does not exist renders nothing (the page says so already)."""
    guard(request)
    found = await why_read.find(pool(request), task_id,
                                settings(request).worker_offline_seconds)
    return page(request, "partials/task_why.html", {"task_id": task_id, "why": found})


__all__ = ["limits", "task_why"]

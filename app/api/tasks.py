"""Routes for senders and readers: send, read, list, cancel, retry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from ... import protocol
from .. import access
from ..engine.cancel import cancel_task as cancel
from ..engine.retry import retry_task as retry
from ..engine.send import SendOutcome, send_tasks
from ..jsonutil import JsonResponse, StrictJsonRoute
from ..read import tasks as read
from ..read import why as why_read
from .answers import (
    CancelledOut,
    RetriedOut,
    SentBatchOut,
    SentOut,
    TaskDetailOut,
    TaskPageOut,
    WhyOut,
)
from .deps import BodySize, CallerDep, Server
from .schemas import TaskBatchIn, TaskId, TaskIn, TaskStatus, fields_of

router = APIRouter(prefix="/v1/tasks", tags=["tasks"], route_class=StrictJsonRoute)

Id = Annotated[int | None, Query(ge=1, le=protocol.MAX_TASK_ID)]


@router.post("", response_model=SentOut, status_code=201, summary="Send one task")
async def send_task(task: TaskIn, server: Server, body_size: BodySize,
                    caller: CallerDep) -> JsonResponse:
    """Queue one task; an idempotency key already used answers the existing task."""
    access.check_sends(caller, [task])
    [out] = await send_tasks(server, [fields_of(task)],
                             check_sizes=body_size > server.settings.max_payload_bytes)
    return JsonResponse(_sent(out), status_code=201)


@router.post("/batch", response_model=SentBatchOut, status_code=201,
             summary="Send many tasks in one transaction")
async def send_task_batch(batch: TaskBatchIn, server: Server, body_size: BodySize,
                          caller: CallerDep) -> JsonResponse:
    """Queue many tasks atomically: all are stored, or none."""
    access.check_sends(caller, batch.tasks)
    outs = await send_tasks(server, [fields_of(t) for t in batch.tasks],
                            check_sizes=body_size > server.settings.max_payload_bytes)
    return JsonResponse({"tasks": [_sent(o) for o in outs]}, status_code=201)


def _sent(out: SendOutcome) -> dict[str, Any]:
    """One send's answer: the task and whether it was there already; a send folded into
    another task, or debounced, also says which task it joined (None: it opened the window).
    A plain send's answer is unchanged."""
    answer: dict[str, Any] = {"id": out.id, "duplicate": out.duplicate}
    if out.debounced or out.folded_into is not None:
        answer["debounced"] = out.debounced
        answer["folded_into"] = out.folded_into
    return answer


@router.get("/{task_id}", response_model=TaskDetailOut,
            summary="A task with its attempts, history and logs")
async def get_task(task_id: TaskId, server: Server, caller: CallerDep) -> dict[str, Any]:
    """One task with every state change and the logs of its attempts."""
    task = await read.get_task(server.pool, task_id)
    access.check_task(caller, task["name"], task["queue"])
    task["why"] = f"/v1/tasks/{task_id}/why"
    return task


@router.get("/{task_id}/why", response_model=WhyOut,
            summary="Why a task is not running")
async def why_task(task_id: TaskId, server: Server, caller: CallerDep) -> dict[str, Any]:
    """The reasons the server sees now: schedule, back-off, pause, limits, workers, waits."""
    answer = await why_read.why(server.pool, task_id, server.settings.worker_offline_seconds)
    access.check_task(caller, answer["name"], answer["queue"])
    return answer


@router.get("", response_model=TaskPageOut,
            summary="List tasks, newest first, with cursor pagination")
async def list_tasks(
    server: Server,
    status: TaskStatus | None = None,
    queue: Annotated[str | None, Query(max_length=100)] = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
    root_id: Id = None,
    parent_id: Id = None,
    workflow_run_id: Id = None,
    cursor: Id = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Tasks matching every filter given, newest first, a page at a time."""
    filters = read.TaskFilter(status=status, queue=queue, name=name, root_id=root_id,
                              parent_id=parent_id, workflow_run_id=workflow_run_id)
    page = await read.list_tasks(server.pool, filters, cursor=cursor, limit=limit)
    return {"tasks": page.items, "next_cursor": page.next_cursor}


@router.post("/{task_id}/cancel", response_model=CancelledOut,
             summary="Cancel a queued task, or ask a running one to stop")
async def cancel_task(task_id: TaskId, server: Server) -> dict[str, Any]:
    """Cancel a queued task now; a running one is asked to stop at its next heartbeat."""
    out = await cancel(server, task_id)
    return {"id": out.id, "status": out.status, "cancel_requested": True}


@router.post("/{task_id}/retry", response_model=RetriedOut,
             summary="Queue a failed or cancelled task again")
async def retry_task(task_id: TaskId, server: Server) -> dict[str, Any]:
    """Queue a failed or cancelled task again now, for one more attempt."""
    await retry(server, task_id)
    return {"id": task_id, "status": "queued"}

"""Routes for senders and readers: send, read, list, cancel, retry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from ... import protocol
from .. import access
from ..engine.cancel import cancel_task as cancel
from ..engine.retry import retry_task as retry
from ..engine.send import send_tasks
from ..jsonutil import JsonResponse, StrictJsonRoute
from ..read import tasks as read
from .deps import BodySize, CallerDep, Server
from .schemas import TaskBatchIn, TaskId, TaskIn, TaskStatus

router = APIRouter(prefix="/v1/tasks", tags=["tasks"], route_class=StrictJsonRoute)

Id = Annotated[int | None, Query(ge=1, le=protocol.MAX_TASK_ID)]


@router.post("", status_code=201, summary="Send one task")
async def send_task(task: TaskIn, server: Server, body_size: BodySize,
                    caller: CallerDep) -> JsonResponse:
    access.check_sends(caller, [task])
    [out] = await send_tasks(server, [task.model_dump()],
                             check_sizes=body_size > server.settings.max_payload_bytes)
    return JsonResponse({"id": out.id, "duplicate": out.duplicate}, status_code=201)


@router.post("/batch", status_code=201, summary="Send many tasks in one transaction")
async def send_batch(batch: TaskBatchIn, server: Server, body_size: BodySize,
                     caller: CallerDep) -> JsonResponse:
    access.check_sends(caller, batch.tasks)
    outs = await send_tasks(server, [t.model_dump() for t in batch.tasks],
                            check_sizes=body_size > server.settings.max_payload_bytes)
    return JsonResponse({"tasks": [{"id": o.id, "duplicate": o.duplicate} for o in outs]},
                        status_code=201)


@router.get("/{task_id}", summary="A task with its attempts, history and logs")
async def get_task(task_id: TaskId, server: Server, caller: CallerDep) -> dict[str, Any]:
    task = await read.get_task(server.pool, task_id)
    access.check_task(caller, task["name"], task["queue"])
    return task


@router.get("", summary="List tasks, newest first, with cursor pagination")
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
    filters = read.TaskFilter(status=status, queue=queue, name=name, root_id=root_id,
                              parent_id=parent_id, workflow_run_id=workflow_run_id)
    page = await read.list_tasks(server.pool, filters, cursor=cursor, limit=limit)
    return {"tasks": page.items, "next_cursor": page.next_cursor}


@router.post("/{task_id}/cancel", summary="Cancel a queued task, or ask a running one to stop")
async def cancel_task(task_id: TaskId, server: Server) -> dict[str, Any]:
    out = await cancel(server, task_id)
    return {"id": out.id, "status": out.status, "cancel_requested": True}


@router.post("/{task_id}/retry", summary="Queue a failed or cancelled task again")
async def retry_task(task_id: TaskId, server: Server) -> dict[str, Any]:
    await retry(server, task_id)
    return {"id": task_id, "status": "queued"}

"""Routes for senders and readers: send, read, list, cancel, retry."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from ..errors import ApiError
from ..jsonutil import JsonResponse, StrictJsonRoute, check_size
from ..store import tasks as store
from ..store.workflows import ensure_queues
from .deps import KnownQueuesDep, Pool, SettingsDep, body_size
from .schemas import TaskBatchIn, TaskId, TaskIn

router = APIRouter(prefix="/v1/tasks", tags=["tasks"], route_class=StrictJsonRoute)

TaskStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


def _prepare(items: list[TaskIn], payload_limit: int, body_small: bool) -> list[dict[str, Any]]:
    rows = []
    for i, item in enumerate(items):
        row = item.model_dump()
        if not body_small:
            check_size(row["args"], payload_limit, f"args of task {i}")
        if row["run_at"] is not None:
            row["run_at"] = row["run_at"].isoformat()
        rows.append(row)
    return rows


async def send_items(pool: Any, known: Any, items: list[TaskIn], payload_limit: int,
                     body_size: int) -> list[store.SendOutcome]:
    rows = _prepare(items, payload_limit, body_size <= payload_limit)
    new_queues = known.unknown(r["queue"] for r in rows)
    async with pool.connection() as conn:
        if new_queues:
            # First send to a queue: its row and the tasks commit together (glob claims see
            # both at once), and a refused send (unknown parent) leaves no empty queue.
            async with conn.cursor() as cur:
                await ensure_queues(cur, new_queues)
            outs = await store.send(conn, rows)
        else:
            # The insert is one statement, atomic by itself: autocommit saves the COMMIT round
            # trip (a parent check or duplicate look-up around it needs no shared snapshot).
            await conn.set_autocommit(True)
            try:
                return await store.send(conn, rows)
            finally:
                await conn.set_autocommit(False)
    known.remember(new_queues)
    return outs


@router.post("", status_code=201, summary="Send one task")
async def send_task(task: TaskIn, request: Request, pool: Pool, settings: SettingsDep,
                    known: KnownQueuesDep) -> JsonResponse:
    [out] = await send_items(pool, known, [task], settings.max_payload_bytes,
                             body_size(request))
    request.app.state.metrics.sent([task], [out])
    return JsonResponse({"id": out.id, "duplicate": out.duplicate}, status_code=201)


@router.post("/batch", status_code=201, summary="Send many tasks in one transaction")
async def send_batch(batch: TaskBatchIn, request: Request, pool: Pool, settings: SettingsDep,
                     known: KnownQueuesDep) -> JsonResponse:
    if len(batch.tasks) > settings.max_batch:
        raise ApiError(413, "batch_too_large",
                       f"{len(batch.tasks)} tasks in one batch, over the limit of "
                       f"{settings.max_batch}", {"limit": settings.max_batch})
    outs = await send_items(pool, known, batch.tasks, settings.max_payload_bytes,
                            body_size(request))
    request.app.state.metrics.sent(batch.tasks, outs)
    return JsonResponse({"tasks": [{"id": o.id, "duplicate": o.duplicate} for o in outs]},
                        status_code=201)


@router.get("/{task_id}", summary="A task with its attempts, history and logs")
async def get_task(task_id: TaskId, pool: Pool) -> dict[str, Any]:
    async with pool.connection() as conn:
        task = await store.get(conn, task_id)
        task["history"] = await store.history(conn, task_id)
        task["logs"] = await store.logs(conn, task_id)
    return task


@router.get("", summary="List tasks, newest first, with cursor pagination")
async def list_tasks(
    pool: Pool,
    status: TaskStatus | None = None,
    queue: Annotated[str | None, Query(max_length=100)] = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
    root_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    parent_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    workflow_run_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    cursor: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    filters = {"status": status, "queue": queue, "name": name, "root_id": root_id,
               "parent_id": parent_id, "workflow_run_id": workflow_run_id}
    async with pool.connection() as conn:
        rows = await store.list_tasks(conn, filters=filters, before_id=cursor, limit=limit)
    next_cursor = rows[-1]["id"] if len(rows) == limit else None
    return {"tasks": rows, "next_cursor": next_cursor}


@router.post("/{task_id}/cancel", summary="Cancel a queued task, or ask a running one to stop")
async def cancel_task(task_id: TaskId, pool: Pool) -> dict[str, Any]:
    async with pool.connection() as conn:
        rows = await store.cancel(conn, [task_id])
        if not rows:
            task = await store.get(conn, task_id)  # 404 when unknown
            raise ApiError(409, "already_finished",
                           f"task {task_id} is already {task['status']}",
                           {"status": task["status"]})
    row = rows[0]
    return {"id": task_id, "status": row["status"], "cancel_requested": True}


@router.post("/{task_id}/retry", summary="Queue a failed or cancelled task again")
async def retry_task(task_id: TaskId, pool: Pool) -> dict[str, Any]:
    row = await store.retry(pool, task_id)
    if row is None:
        async with pool.connection() as conn:
            task = await store.get(conn, task_id)
        raise ApiError(409, "not_retryable",
                       f"task {task_id} is {task['status']}; only failed or cancelled tasks "
                       "can be retried", {"status": task["status"]})
    return {"id": task_id, "status": "queued"}

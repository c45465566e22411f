"""The worker protocol: register, claim (long-poll), heartbeat, report, release."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from typing import Any

from fastapi import APIRouter, Request

from ..errors import ApiError, not_found
from ..jsonutil import JsonResponse, StrictJsonRoute, check_size
from ..notifier import is_glob
from ..store import tasks as store
from ..store import workers as worker_store
from ..store.like import escape_like
from .deps import (
    NotifierDep,
    Pool,
    QueueCacheDep,
    SettingsDep,
    SightingsDep,
    body_size,
    queue_cache_of,
)
from .schemas import (
    ClaimIn,
    CompleteIn,
    FailIn,
    HeartbeatIn,
    ReleaseIn,
    ReportIn,
    ResultIn,
    TaskId,
    WorkerId,
    WorkerRegisterIn,
)

router = APIRouter(prefix="/v1", tags=["workers"], route_class=StrictJsonRoute)


def glob_to_like(pattern: str) -> str:
    return escape_like(pattern).replace("*", "%").replace("?", "_")


async def _wait_disconnect(request: Request) -> None:
    """Returns when the client has gone away (the body is already read by then)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


@router.post("/workers/register", summary="Announce a worker and its task definitions")
async def register(body: WorkerRegisterIn, pool: Pool,
                   sightings: SightingsDep) -> dict[str, Any]:
    sightings.forget(body.worker_id)
    async with pool.connection() as conn:
        await worker_store.register(conn, body.worker_id, body.queues, body.info,
                                    [d.model_dump() for d in body.tasks])
    return {"worker_id": body.worker_id, "tasks": len(body.tasks)}


@router.post("/workers/{worker_id}/stop", summary="Mark a worker as stopped")
async def stop_worker(worker_id: WorkerId, pool: Pool,
                      sightings: SightingsDep) -> dict[str, Any]:
    sightings.forget(worker_id)
    async with pool.connection() as conn:
        await worker_store.stop(conn, worker_id)
    return {"worker_id": worker_id, "stopped": True}


@router.get("/workers", summary="Workers, online first")
async def list_workers(pool: Pool, settings: SettingsDep) -> dict[str, Any]:
    async with pool.connection() as conn:
        rows = await worker_store.list_workers(conn, settings.worker_offline_seconds)
    return {"workers": rows}


@router.get("/task-definitions", summary="Task definitions registered by workers")
async def list_definitions(pool: Pool) -> dict[str, Any]:
    async with pool.connection() as conn:
        return {"definitions": await worker_store.list_definitions(conn)}


@router.post("/claim", summary="Lease ready tasks, waiting up to wait_seconds for one")
async def claim(body: ClaimIn, request: Request, pool: Pool, settings: SettingsDep,
                notifier: NotifierDep, sightings: SightingsDep,
                queue_cache: QueueCacheDep) -> JsonResponse:
    exact = [q for q in body.queues if not is_glob(q)]
    globs = [q for q in body.queues if is_glob(q)]
    patterns = [glob_to_like(q) for q in globs]
    wait = min(body.wait_seconds, settings.max_wait_seconds)
    deadline = time.monotonic() + wait
    args = {"worker_id": body.worker_id, "queues": exact, "patterns": patterns,
            "task_names": body.task_names, "limit": body.limit,
            "lease_seconds": settings.lease_seconds, "globs": globs}
    await sightings.touch(pool, body.worker_id, body.queues, body.task_names)
    tasks = await store.claim(pool, special=await queue_cache.special(pool), **args)
    if tasks or wait <= 0:
        return JsonResponse({"tasks": request.app.state.metrics.claimed(tasks)})
    disconnect = asyncio.create_task(_wait_disconnect(request))
    try:
        async with notifier.subscribe(body.queues) as sub:
            while True:
                tasks = await store.claim(pool, special=await queue_cache.special(pool), **args)
                if tasks and disconnect.done():
                    # Nobody will receive these: hand them back rather than wait for the lease.
                    await store.release(pool, body.worker_id, [
                        {"id": t["id"], "lease_token": str(t["lease_token"])} for t in tasks])
                    return JsonResponse({"tasks": []})
                remaining = deadline - time.monotonic()
                if tasks or remaining <= 0 or disconnect.done():
                    return JsonResponse({"tasks": request.app.state.metrics.claimed(tasks)})
                waiter = asyncio.create_task(
                    sub.wait(min(remaining, settings.poll_interval_seconds)))
                await asyncio.wait({waiter, disconnect}, return_when=asyncio.FIRST_COMPLETED)
                if disconnect.done():
                    waiter.cancel()
                    return JsonResponse({"tasks": []})
    finally:
        disconnect.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await disconnect


@router.post("/heartbeat", summary="Extend leases; learn which tasks to cancel or were lost")
async def heartbeat(body: HeartbeatIn, pool: Pool, settings: SettingsDep,
                    sightings: SightingsDep) -> JsonResponse:
    items = [{"id": t.id, "lease_token": str(t.lease_token)} for t in body.tasks]
    rows = await store.heartbeat(pool, items, settings.lease_seconds) if items else []
    await sightings.touch(pool, body.worker_id)
    return JsonResponse({
        "tasks": rows,
        "cancel": [r["id"] for r in rows if r["cancel"]],
        "lost": [r["id"] for r in rows if not r["held"]],
        "lease_seconds": settings.lease_seconds,
    })


def _result_row(item: ResultIn, settings: Any, check: bool) -> tuple[dict[str, Any], str | None]:
    if check and item.outcome == "succeeded":
        check_size(item.result, settings.max_payload_bytes, f"result of task {item.id}")
    error = None
    if item.outcome != "succeeded":
        error = (item.error.model_dump() if item.error else
                 {"type": "Error", "message": "", "traceback": None})
    logs = item.logs
    if logs is not None and len(logs.encode()) > settings.max_log_bytes:
        logs = logs.encode()[-settings.max_log_bytes:].decode(errors="ignore")
        logs = "[earlier output truncated]\n" + logs
    row = {"id": item.id, "lease_token": str(item.lease_token), "outcome": item.outcome,
           "result": item.result if item.outcome == "succeeded" else None, "error": error,
           "retry_delay_seconds": item.retry_delay_seconds}
    return row, logs


def _verdict(row: dict[str, Any]) -> str:
    if row["applied"]:
        return "applied"
    if row["current_status"] is None:
        return "unknown_task"
    if row["same_lease"] and row["current_status"] != "running":
        return "already_recorded"
    return "stale_lease"


async def apply_results(results: list[ResultIn], request: Request, pool: Any,
                        settings: Any) -> list[dict[str, Any]]:
    check = body_size(request) > settings.max_payload_bytes
    rows, logs = [], []
    for item in results:
        row, log = _result_row(item, settings, check)
        rows.append(row)
        if log is not None:
            logs.append({"id": item.id, "output": log})
    special = await (await queue_cache_of(request)).special(pool)
    limited = {name for name, q in special.items() if q["concurrency_limit"] is not None}
    applied = await store.report(pool, rows, logs, limited=limited)
    request.app.state.metrics.reported(applied)
    return [{"id": r["id"], "outcome": _verdict(r),
             "status": r["new_status"] or r["current_status"]} for r in applied]


@router.post("/tasks/report", summary="Report a batch of outcomes, each fenced by its lease")
async def report(body: ReportIn, request: Request, pool: Pool,
                 settings: SettingsDep) -> JsonResponse:
    if len(body.results) > settings.max_batch:
        raise ApiError(413, "batch_too_large", f"over the limit of {settings.max_batch}",
                       {"limit": settings.max_batch})
    ids = [r.id for r in body.results]
    if len(set(ids)) != len(ids):
        dups = sorted(i for i, n in Counter(ids).items() if n > 1)
        raise ApiError(422, "duplicate_task", "a task appears more than once in one report",
                       {"ids": dups})
    return JsonResponse({"results": await apply_results(body.results, request, pool, settings)})


async def _report_one(item: ResultIn, request: Request, pool: Any,
                      settings: Any) -> dict[str, Any]:
    [out] = await apply_results([item], request, pool, settings)
    if out["outcome"] == "unknown_task":
        raise not_found("task", item.id)
    if out["outcome"] == "stale_lease":
        raise ApiError(409, "stale_lease",
                       f"the lease token of task {item.id} is no longer current; "
                       "the outcome was not recorded", {"status": out["status"]})
    return out


@router.post("/tasks/{task_id}/complete", summary="Report success of one attempt")
async def complete(task_id: TaskId, body: CompleteIn, request: Request, pool: Pool,
                   settings: SettingsDep) -> dict[str, Any]:
    item = ResultIn(id=task_id, lease_token=body.lease_token, outcome="succeeded",
                    result=body.result, logs=body.logs)
    return await _report_one(item, request, pool, settings)


@router.post("/tasks/{task_id}/fail", summary="Report failure of one attempt")
async def fail(task_id: TaskId, body: FailIn, request: Request, pool: Pool,
               settings: SettingsDep) -> dict[str, Any]:
    item = ResultIn(id=task_id, lease_token=body.lease_token, outcome="failed",
                    error=body.error, retry_delay_seconds=body.retry_delay_seconds,
                    logs=body.logs)
    return await _report_one(item, request, pool, settings)


@router.post("/tasks/release", summary="Hand leased tasks back without using a retry")
async def release(body: ReleaseIn, pool: Pool) -> dict[str, Any]:
    items = [{"id": t.id, "lease_token": str(t.lease_token)} for t in body.tasks]
    released = await store.release(pool, body.worker_id, items) if items else []
    return {"released": released}

"""The worker protocol: register, claim (long-poll), heartbeat, report, release."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from .. import access
from ..engine.claim import ClaimRequest
from ..engine.claim import claim as claim_tasks
from ..engine.heartbeat import heartbeat as beat
from ..engine.release import release as release_tasks
from ..engine.report import Outcome, report_one
from ..engine.report import report as report_batch
from ..engine.suspend import Wait
from ..engine.workers import register_worker, stop_worker
from ..jsonutil import JsonResponse, StrictJsonRoute
from ..read import workers as read
from .answers import (
    ClaimedOut,
    DefinitionsOut,
    HeartbeatOut,
    RegisteredOut,
    ReleasedOut,
    ReportedBatchOut,
    ReportedOut,
    StoppedOut,
    WorkersOut,
)
from .deps import BodySize, CallerDep, Server, body_size, server_of
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


def _outcome(item: ResultIn) -> Outcome:
    return Outcome(id=item.id, lease_token=str(item.lease_token), outcome=item.outcome,
                   result=item.result, error=item.error.model_dump() if item.error else None,
                   retry_delay_seconds=item.retry_delay_seconds, logs=item.logs,
                   wait=Wait(**item.wait.model_dump()) if item.wait else None)


@router.post("/workers/register", response_model=RegisteredOut, name="register_worker",
             summary="Announce a worker and its task definitions")
async def register(body: WorkerRegisterIn, server: Server, caller: CallerDep) -> dict[str, Any]:
    """Record a worker, its queues and the task definitions it runs (its start-up call)."""
    access.check_queues(caller, body.queues)
    # A scoped worker may run the whole app's registry: it describes the tasks of its queues.
    tasks = [d for d in body.tasks if access.in_scope(caller, d.queue)]
    await register_worker(server, body.worker_id, body.queues, body.info,
                          [d.model_dump() for d in tasks])
    return {"worker_id": body.worker_id, "tasks": len(tasks)}


@router.post("/workers/{worker_id}/stop", response_model=StoppedOut, name="stop_worker",
             summary="Mark a worker as stopped")
async def stop(worker_id: WorkerId, server: Server) -> dict[str, Any]:
    """Mark a worker as stopped at shutdown, so it is no longer listed as online."""
    await stop_worker(server, worker_id)
    return {"worker_id": worker_id, "stopped": True}


@router.get("/workers", response_model=WorkersOut, summary="Workers, online first")
async def list_workers(server: Server) -> dict[str, Any]:
    """The 500 workers seen last, with whether each is online and how many tasks it runs."""
    return {"workers": await read.list_workers(server.pool,
                                               server.settings.worker_offline_seconds)}


@router.get("/task-definitions", response_model=DefinitionsOut, name="list_task_definitions",
            summary="Task definitions registered by workers")
async def list_definitions(server: Server) -> dict[str, Any]:
    """Every task definition workers registered: queue, defaults and args schema."""
    return {"definitions": await read.list_definitions(server.pool)}


@router.post("/claim", response_model=ClaimedOut, name="claim_tasks",
             summary="Lease ready tasks, waiting up to wait_seconds for one")
async def claim(body: ClaimIn, request: Request) -> JsonResponse:
    """Lease up to limit ready tasks; long-polls up to wait_seconds while none is ready."""
    # Claims, heartbeats and reports are most requests: they read the server state and the
    # caller from the request rather than through dependencies, which FastAPI solves anew on
    # every request.
    server = server_of(request)
    access.check_queues(access.caller_of(request), body.queues)

    async def wait_disconnect() -> None:
        """Returns when the client has gone away (the body is already read by then)."""
        while (await request.receive())["type"] != "http.disconnect":
            pass

    req = ClaimRequest(worker_id=body.worker_id, queues=tuple(body.queues),
                       task_names=None if body.task_names is None else tuple(body.task_names),
                       limit=body.limit, wait_seconds=body.wait_seconds)
    return JsonResponse({"tasks": await claim_tasks(server, req, wait_disconnect)})


@router.post("/heartbeat", response_model=HeartbeatOut, name="send_heartbeat",
             summary="Extend leases; learn which tasks to cancel or were lost")
async def heartbeat(body: HeartbeatIn, request: Request) -> JsonResponse:
    """Extend the leases of running tasks and learn which to cancel or were lost."""
    out = await beat(server_of(request), body.worker_id,
                     [(t.id, str(t.lease_token), t.idle_seconds) for t in body.tasks])
    return JsonResponse({"tasks": out.tasks, "cancel": out.cancel, "lost": out.lost,
                         "lease_seconds": out.lease_seconds})


@router.post("/tasks/report", response_model=ReportedBatchOut, name="report_outcomes",
             summary="Report a batch of outcomes, each fenced by its lease")
async def report(body: ReportIn, request: Request) -> JsonResponse:
    """Record many attempts' outcomes at once; each is applied only under its current lease."""
    server = server_of(request)
    results = await report_batch(server, [_outcome(r) for r in body.results],
                                 check_sizes=body_size(request) > server.settings.max_payload_bytes)
    return JsonResponse({"results": results})


@router.post("/tasks/{task_id}/complete", response_model=ReportedOut, name="complete_task",
             summary="Report success of one attempt")
async def complete(task_id: TaskId, body: CompleteIn, server: Server,
                   body_size: BodySize) -> dict[str, Any]:
    """Record one attempt's success and result (409 when its lease is no longer current)."""
    item = Outcome(id=task_id, lease_token=str(body.lease_token), outcome="succeeded",
                   result=body.result, logs=body.logs)
    return await report_one(server, item,
                            check_sizes=body_size > server.settings.max_payload_bytes)


@router.post("/tasks/{task_id}/fail", response_model=ReportedOut, name="fail_task",
             summary="Report failure of one attempt")
async def fail(task_id: TaskId, body: FailIn, server: Server,
               body_size: BodySize) -> dict[str, Any]:
    """Record one attempt's failure; the task is retried while it has retries left."""
    item = Outcome(id=task_id, lease_token=str(body.lease_token), outcome="failed",
                   error=body.error.model_dump(), retry_delay_seconds=body.retry_delay_seconds,
                   logs=body.logs)
    return await report_one(server, item,
                            check_sizes=body_size > server.settings.max_payload_bytes)


@router.post("/tasks/release", response_model=ReleasedOut, name="release_tasks",
             summary="Hand leased tasks back without using a retry")
async def release(body: ReleaseIn, server: Server) -> dict[str, Any]:
    """Hand leased tasks back to their queue without using up a retry (a worker stopping)."""
    released = await release_tasks(server, body.worker_id,
                                   [(t.id, str(t.lease_token)) for t in body.tasks])
    return {"released": released}

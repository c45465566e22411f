"""Durable tasks over HTTP (docs/durable.md): post events, signal a task, and a task's steps
(read by a re-run, written by the running attempt under its lease)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from .. import access
from ..engine.events import post_event as post
from ..engine.signals import signal_task as signal
from ..engine.steps import record_step as record
from ..jsonutil import StrictJsonRoute
from ..read import tasks as read
from .answers import Answer, StepOut
from .deps import CallerDep, Server
from .schemas import EventIn, SignalIn, StepIn, TaskId

router = APIRouter(prefix="/v1", tags=["durable"], route_class=StrictJsonRoute)


class EventPostedOut(Answer):
    event_id: int
    key: str
    duplicate: bool  # an event with this id was posted before; nothing was done again
    resumed: int  # waiting tasks this post resumed


class SignalledOut(Answer):
    id: int
    name: str
    resumed: bool
    step: str  # the task's step the signal resolved


class TaskStepsOut(Answer):
    task_id: int
    steps: list[StepOut]


class StepRecordedOut(Answer):
    name: str
    recorded: bool  # written now; false: it was there already (a repeated write)
    result: Any  # the stored result


@router.post("/events", response_model=EventPostedOut, summary="Post an event")
async def post_event(body: EventIn, server: Server) -> dict[str, Any]:
    """Store an event and resume every task waiting on its key; a repeated id does nothing."""
    out = await post(server, body.key, body.payload, body.id)
    return {"event_id": out.event_id, "key": body.key, "duplicate": out.duplicate,
            "resumed": out.resumed}


@router.post("/tasks/{task_id}/signal", response_model=SignalledOut,
             summary="Signal a task waiting for it")
async def signal_task(task_id: TaskId, body: SignalIn, server: Server,
                      caller: CallerDep) -> dict[str, Any]:
    """Resume the task if it waits for a signal of this name; 409 not_waiting otherwise."""
    task = await read.task_brief(server.pool, task_id)
    if task is not None:
        access.check_task(caller, task["name"], task["queue"])
    step = await signal(server, task_id, body.name, body.payload)
    return {"id": task_id, "name": body.name, "resumed": True, "step": step}


@router.get("/tasks/{task_id}/steps", response_model=TaskStepsOut,
            summary="The finished steps of a durable task")
async def list_task_steps(task_id: TaskId, server: Server,
                          caller: CallerDep) -> dict[str, Any]:
    """The task's stored steps, sleeps and waits in order, as a re-run replays them."""
    task, steps = await read.task_steps(server.pool, task_id)
    access.check_task(caller, task["name"], task["queue"])
    return {"task_id": task_id, "steps": steps}


@router.post("/tasks/{task_id}/steps", response_model=StepRecordedOut,
             summary="Record a step result under the lease")
async def record_task_step(task_id: TaskId, body: StepIn, server: Server) -> dict[str, Any]:
    """Store a step's result once per task; a stale lease token stores nothing (409)."""
    out = await record(server, task_id, str(body.lease_token), body.name, body.fn,
                       body.result, body.duration_seconds)
    return {"name": out.name, "recorded": out.recorded, "result": out.result}

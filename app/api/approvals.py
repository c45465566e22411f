"""People in the loop: the approvals tasks wait for, and a person's approve or reject."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from ... import protocol
from ..engine import approvals as engine
from ..engine.tokens import Caller
from ..jsonutil import StrictJsonRoute
from ..read import approvals as read
from ..state import ServerState
from .answers import ApprovalDecisionOut, ApprovalsOut
from .deps import CallerDep, Server
from .schemas import DecisionIn, TaskId

router = APIRouter(prefix="/v1", tags=["approvals"], route_class=StrictJsonRoute)



async def _decide(server: ServerState, caller: Caller, task_id: int, approved: bool,
                  body: DecisionIn | None) -> dict[str, Any]:
    decision = engine.Decision(approved=approved, comment=body.comment if body else None,
                               by=caller.name or engine.ANONYMOUS)
    return await engine.decide(server, task_id, decision)


@router.get("/approvals", response_model=ApprovalsOut,
            summary="Tasks waiting for an approval, newest first")
async def list_approvals(
    server: Server,
    queue: Annotated[str | None, Query(max_length=protocol.QUEUE_NAME_MAX)] = None,
    cursor: Annotated[int | None, Query(ge=1, le=protocol.MAX_TASK_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The pending approvals with their questions; page on with ``next_cursor``."""
    page = await read.list_pending(server.pool, cursor=cursor, limit=limit, queue=queue)
    return {"approvals": page.items, "next_cursor": page.next_cursor}


@router.post("/tasks/{task_id}/approve", response_model=ApprovalDecisionOut,
             summary="Approve what a task waits for and resume it")
async def approve_task(task_id: TaskId, server: Server, caller: CallerDep,
                       body: DecisionIn | None = None) -> dict[str, Any]:
    """The recorded decision (who, when, comment); 409 if decided already or not asked."""
    return await _decide(server, caller, task_id, True, body)


@router.post("/tasks/{task_id}/reject", response_model=ApprovalDecisionOut,
             summary="Reject what a task waits for and resume it")
async def reject_task(task_id: TaskId, server: Server, caller: CallerDep,
                      body: DecisionIn | None = None) -> dict[str, Any]:
    """The recorded decision (who, when, comment); 409 if decided already or not asked."""
    return await _decide(server, caller, task_id, False, body)

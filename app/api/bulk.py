"""Operating at scale: cancel, retry or delete tasks by filter, re-run a workflow run from a
node, and prune what is past its retention (docs/operations.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import Field, StrictBool, model_validator

from ... import protocol
from ..engine import bulk as engine
from ..engine.rerun import rerun_from
from ..engine.retention import prune
from ..jsonutil import StrictJsonRoute
from .answers import BulkOut, PruneOut, RerunOut
from .deps import Server
from .schemas import BodyTaskId, QueueName, Seconds, Strict, TaskName, UtcTime

router = APIRouter(prefix="/v1", tags=["operations"], route_class=StrictJsonRoute)

RunId = Annotated[int, Path(ge=1, le=protocol.MAX_TASK_ID)]
NodeName = Annotated[str, Field(min_length=1, max_length=200)]


class TaskFilterIn(Strict):
    """Which tasks: every field given must hold (unset fields select everything)."""

    queue: QueueName | None = None
    name: TaskName | None = None
    status: Annotated[list[protocol.TaskStatus], Field(max_length=10)] | None = None
    created_after: UtcTime | None = None
    created_before: UtcTime | None = None
    older_than_seconds: Seconds | None = Field(
        default=None, description="created more than this long ago (instead of created_before)")
    root_id: BodyTaskId | None = None
    workflow_run_id: BodyTaskId | None = None
    error_type: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    ids: Annotated[list[BodyTaskId], Field(max_length=10_000)] | None = None
    all: StrictBool = Field(default=False, description="needed when no other field is given")

    @model_validator(mode="after")
    def _one_end(self) -> TaskFilterIn:
        if self.older_than_seconds is not None and self.created_before is not None:
            raise ValueError("give older_than_seconds or created_before, not both")
        return self

    def selection(self) -> engine.TaskSelection:
        before = self.created_before
        if self.older_than_seconds is not None:
            before = datetime.now(UTC) - timedelta(seconds=self.older_than_seconds)
        return engine.TaskSelection(
            queue=self.queue, name=self.name, statuses=tuple(self.status or ()),
            created_after=self.created_after, created_before=before, root_id=self.root_id,
            workflow_run_id=self.workflow_run_id, error_type=self.error_type,
            ids=tuple(self.ids or ()), all=self.all)


class BulkIn(TaskFilterIn):
    action: Literal["cancel", "retry", "delete"]
    dry_run: StrictBool = False


class RerunIn(Strict):
    from_node: NodeName


class PruneIn(Strict):
    older_than_seconds: Seconds | None = Field(
        default=None, description="finished more than this long ago, whatever the retention "
        "settings say; unset: each queue's retention")
    queue: QueueName | None = None
    dry_run: StrictBool = False


@router.post("/tasks/bulk", response_model=BulkOut,
             summary="Cancel, retry or delete tasks by filter")
async def bulk_tasks(body: BulkIn, server: Server) -> dict[str, object]:
    """How many tasks the filter matched and how many the action changed (or would)."""
    out = await engine.bulk_tasks(server, body.action, body.selection(), dry_run=body.dry_run)
    return {"action": out.action, "matched": out.matched, "changed": out.changed,
            "dry_run": out.dry_run}


@router.post("/workflow-runs/{run_id}/rerun", response_model=RerunOut,
             summary="Re-run a finished workflow run from a node")
async def rerun_workflow_run(run_id: RunId, body: RerunIn,
                             server: Server) -> dict[str, object]:
    """The node and everything downstream run again; upstream results are kept."""
    out = await rerun_from(server, run_id, body.from_node)
    return {"run_id": out.run_id, "from_node": out.from_node, "nodes": out.nodes,
            "queued": out.queued, "status": "running"}


@router.post("/prune", response_model=PruneOut,
             summary="Delete finished tasks and runs past their retention")
async def prune_finished(body: PruneIn, server: Server) -> dict[str, object]:
    """What was deleted (a dry run: what would be): tasks, runs and expired KV entries."""
    out = await prune(server, older_than_seconds=body.older_than_seconds, queue=body.queue,
                      dry_run=body.dry_run)
    return {"tasks": out.tasks, "runs": out.runs, "kv": out.kv, "dry_run": out.dry_run}

"""DAG workflows: register definitions, start runs, read, cancel and wait on them, the run's
channel, and the directives with which a node task changes the run's course."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import Field, StrictBool, StrictFloat, StrictInt, model_validator

from ...protocol import (
    KEY_MAX,
    KEY_PATTERN,
    MAX_SECONDS,
    MAX_TASK_ID,
    MAX_WORKFLOW_NODES,
    TASK_NAME_MAX,
    TASK_NAME_PATTERN,
    dag_problem,
)
from .. import access
from ..engine import channel, directives, runs
from ..engine import workflows as engine
from ..engine.errors import InvalidInput
from ..jsonutil import StrictJsonRoute
from ..read import workflows as read
from .answers import (
    ChannelEntryOut,
    ChannelOut,
    ChannelValueOut,
    DirectiveOut,
    RunCancelledOut,
    RunDetailOut,
    RunsOut,
    RunStartedOut,
    RunStatus,
    RunWaitOut,
    WorkflowOut,
    WorkflowRegisteredOut,
    WorkflowsOut,
)
from .deps import CallerDep, Server, WaitTimeout
from .schemas import BodyTaskId, Key, Priority, QueueName, Seconds, Strict, TaskName

router = APIRouter(prefix="/v1", tags=["workflows"], route_class=StrictJsonRoute)

NodeName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z_][\w.:\-/#]*$")]
WorkflowName = Annotated[str, Path(min_length=1, max_length=TASK_NAME_MAX,
                                   pattern=TASK_NAME_PATTERN)]
RunId = Annotated[int, Path(ge=1, le=MAX_TASK_ID)]
# A key may hold "/" (the routes take the rest of the path, as the KV routes do), so every
# key the schema accepts can be read back.
ChannelKey = Annotated[str, Path(min_length=1, max_length=KEY_MAX, pattern=KEY_PATTERN)]
# Body numbers and booleans are strict, as in the engine's schemas ("5" or true is no 5).
Timeout = Annotated[StrictFloat, Field(gt=0, le=MAX_SECONDS)]


class TaskOptions(Strict):
    """Per-node (or per-directive) task settings; unset ones come from the run."""

    queue: QueueName | None = None
    priority: Priority | None = None
    max_retries: Annotated[StrictInt, Field(ge=0, le=1000)] | None = None
    retry_delay_seconds: Seconds | None = None
    retry_backoff: Literal["fixed", "linear", "exponential"] | None = None
    retry_max_delay_seconds: Seconds | None = None
    timeout_seconds: Timeout | None = None


class NodeIn(TaskOptions):
    name: NodeName
    task: TaskName
    max_cycles: Annotated[StrictInt, Field(ge=1, le=100_000)] = 1
    args: Any = None


class HandlerIn(TaskOptions):
    """A workflow handler: the task queued once when a run ends (docs/workflows.md)."""

    task: TaskName


class WorkflowIn(Strict):
    name: TaskName
    queue: QueueName = "default"
    priority: Priority = 5
    timeout_seconds: Timeout | None = None
    args_schema: dict[str, Any] | None = None
    nodes: Annotated[list[NodeIn], Field(min_length=1, max_length=MAX_WORKFLOW_NODES)]
    edges: Annotated[list[tuple[NodeName, NodeName]], Field(max_length=100_000)] = []
    # The tasks queued once when a run fails (or is cancelled, or times out) / succeeds.
    on_failure: HandlerIn | None = None
    on_success: HandlerIn | None = None
    # Event keys that start a run (docs/durable.md, "Event triggers").
    on_events: Annotated[list[Key], Field(max_length=100)] = []

    @model_validator(mode="after")
    def _dag(self) -> WorkflowIn:
        problem = dag_problem([n.name for n in self.nodes], self.edges)
        if problem is not None:
            raise ValueError(f"not a workflow DAG: {problem}")
        return self


class RunIn(Strict):
    args: Any = None
    queue: QueueName | None = None
    priority: Priority | None = None
    timeout_seconds: Timeout | None = None
    idempotency_key: Key | None = None


class TaskSpecIn(TaskOptions):
    name: TaskName
    args: Any = None


class DirectiveIn(Strict):
    task_id: BodyTaskId
    lease_token: uuid.UUID
    action: Literal["next_task", "next_iteration", "terminate", "cancel"]
    task: TaskSpecIn | None = None
    node: NodeName | None = None
    goto: StrictBool = False
    args: Any = None
    reason: Annotated[str, Field(max_length=10_000)] | None = None

    @model_validator(mode="after")
    def _needs_task(self) -> DirectiveIn:
        if self.action == "next_task" and self.task is None:
            raise ValueError("next_task needs task")
        return self


class ChannelValueIn(Strict):
    value: Any


class ChannelIncrementIn(Strict):
    by: Annotated[StrictInt, Field(ge=-(2**62), le=2**62)] = 1


def _nodes(body: WorkflowIn) -> dict[str, dict[str, Any]]:
    nodes = {}
    for node in body.nodes:
        cfg = node.model_dump(exclude={"name"}, exclude_none=True)
        if "args" in node.model_fields_set:
            cfg["args"] = node.args
        nodes[node.name] = cfg
    return nodes


def _handlers(body: WorkflowIn) -> dict[str, dict[str, Any]]:
    return {kind: handler.model_dump(exclude_none=True)
            for kind, handler in (("on_failure", body.on_failure),
                                  ("on_success", body.on_success)) if handler is not None}


@router.put("/workflows/{name}", response_model=WorkflowRegisteredOut,
            summary="Register (or replace) a workflow definition")
async def register_workflow(name: WorkflowName, body: WorkflowIn, caller: CallerDep,
                            server: Server) -> dict[str, Any]:
    """Store a workflow's nodes and edges under its name; runs started later use it."""
    if body.name != name:
        raise InvalidInput(f"the body names {body.name!r}, the path {name!r}",
                           code="name_mismatch")
    access.check_queues(caller, [body.queue, *(n.queue for n in body.nodes if n.queue),
                                 *(h.queue for h in (body.on_failure, body.on_success)
                                   if h is not None and h.queue)])
    await engine.register(server, name, queue=body.queue, priority=body.priority,
                          timeout_seconds=body.timeout_seconds, args_schema=body.args_schema,
                          nodes=_nodes(body), edges=[list(e) for e in dict.fromkeys(body.edges)],
                          handlers=_handlers(body),
                          on_events=body.on_events)
    return {"name": name, "nodes": len(body.nodes), "edges": len(body.edges)}


@router.get("/workflows", response_model=WorkflowsOut, summary="Registered workflow definitions")
async def list_workflows(server: Server) -> dict[str, Any]:
    """Every registered workflow definition."""
    return {"workflows": await read.list_definitions(server.pool)}


@router.get("/workflows/{name}", response_model=WorkflowOut, summary="One workflow definition")
async def get_workflow(name: WorkflowName, server: Server) -> Any:
    """One workflow definition: its nodes, edges, defaults and args schema."""
    return await read.get_definition(server.pool, name)


@router.post("/workflows/{name}/runs", response_model=RunStartedOut,
             name="start_workflow_run", status_code=201,
             summary="Start a run of a workflow")
async def start_run(name: WorkflowName, body: RunIn, server: Server,
                    caller: CallerDep) -> dict[str, Any]:
    """Start a run: its root nodes are queued now; a repeated idempotency key answers
    the run it started."""
    access.check_workflow(caller, name)
    run_id, duplicate = await runs.start_run(
        server, name, body.args, queue=body.queue, priority=body.priority,
        timeout_seconds=body.timeout_seconds, idempotency_key=body.idempotency_key)
    return {"id": run_id, "duplicate": duplicate}


@router.get("/workflow-runs", response_model=RunsOut, name="list_workflow_runs",
            summary="Workflow runs, newest first")
async def list_runs(
    server: Server,
    workflow: Annotated[str | None, Query(max_length=200)] = None,
    status: RunStatus | None = None,
    cursor: Annotated[int | None, Query(ge=1, le=MAX_TASK_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Workflow runs matching the filters, newest first, a page at a time."""
    page = await read.list_runs(server.pool, workflow=workflow, status=status, cursor=cursor,
                                limit=limit)
    return {"runs": page.items, "next_cursor": page.next_cursor}


@router.get("/workflow-runs/{run_id}", response_model=RunDetailOut, name="get_workflow_run",
            summary="A run with its nodes, their results and channel")
async def get_run(run_id: RunId, server: Server, caller: CallerDep) -> dict[str, Any]:
    """A run with every node's status, task and result, and its channel."""
    run = await read.get_run(server.pool, run_id)
    access.check_workflow(caller, run["workflow_name"])
    return run


@router.post("/workflow-runs/{run_id}/cancel", response_model=RunCancelledOut,
             name="cancel_workflow_run",
             summary="Cancel a running workflow run")
async def cancel_run(run_id: RunId, server: Server) -> dict[str, Any]:
    """Cancel a running run: its queued node tasks are cancelled, running ones asked to stop."""
    return await runs.cancel_run(server, run_id, "cancelled through the API",
                                 {"type": "WorkflowCancelled",
                                  "message": "cancelled through the API"})


@router.get("/workflow-runs/{run_id}/wait", response_model=RunWaitOut, name="wait_workflow_run",
            summary="Long-poll until the run has finished")
async def wait_run(run_id: RunId, server: Server, timeout_seconds: WaitTimeout,
                   caller: CallerDep) -> dict[str, Any]:
    """Wait up to timeout_seconds for the run to finish; answers the run either way."""
    if caller.role == "sender":  # its scope is checked before it may wait
        access.check_workflow(caller, (await read.get_run(server.pool, run_id))["workflow_name"])
    return await read.wait_run(server.pool, run_id, timeout_seconds)


@router.post("/workflow-runs/{run_id}/directives", response_model=DirectiveOut,
             name="send_directive",
             summary="From a running node task: change the run's course (fenced by lease)")
async def directive(run_id: RunId, body: DirectiveIn, server: Server) -> dict[str, Any]:
    """From a node task under its lease: add a task, loop, jump, end or cancel the run."""
    payload: dict[str, Any] = {"action": body.action, "goto": body.goto, "node": body.node,
                               "reason": body.reason}
    if "args" in body.model_fields_set:
        payload["args"] = body.args
    if body.task is not None:
        payload["spec"] = _spec(body.task)
    return await directives.record(server, run_id, body.task_id, str(body.lease_token), payload)


def _spec(task: TaskSpecIn) -> dict[str, Any]:
    """A directive's task, resolved like a node's (unset options: the engine's defaults)."""
    spec = engine.task_spec(task.model_dump(), task.name, task.queue or "default")
    if "args" in task.model_fields_set:
        spec["args"] = task.args
    return spec


@router.get("/workflow-runs/{run_id}/channel", response_model=ChannelOut,
            name="list_channel_entries",
            summary="The run's channel: every key")
async def channel_list(run_id: RunId, server: Server) -> dict[str, Any]:
    """Every key and value of the run's channel, shared by its node tasks."""
    return {"run_id": run_id, "entries": await read.channel_list(server.pool, run_id)}


@router.get("/workflow-runs/{run_id}/channel/{key:path}", response_model=ChannelEntryOut,
            name="get_channel_entry",
            summary="One channel value")
async def channel_get(run_id: RunId, key: ChannelKey, server: Server) -> Any:
    """One value of the run's channel (404 when the key has none)."""
    return await read.channel_get(server.pool, run_id, key)


@router.put("/workflow-runs/{run_id}/channel/{key:path}", response_model=ChannelValueOut,
            name="set_channel_value",
            summary="Set a channel value (any JSON)")
async def channel_set(run_id: RunId, key: ChannelKey, body: ChannelValueIn,
                      server: Server) -> dict[str, Any]:
    """Store any JSON value under a key of the run's channel."""
    await channel.set_value(server, run_id, key, body.value)
    return {"run_id": run_id, "key": key, "value": body.value}


@router.post("/workflow-runs/{run_id}/channel/{key:path}/increment",
             response_model=ChannelValueOut, name="increment_channel_value",
             summary="Atomically add to an integer channel value")
async def channel_increment(run_id: RunId, key: ChannelKey, body: ChannelIncrementIn,
                            server: Server) -> dict[str, Any]:
    """Add to an integer channel value atomically (a missing key counts as 0)."""
    value = await channel.increment(server, run_id, key, body.by)
    return {"run_id": run_id, "key": key, "value": value}

"""DAG workflows: register definitions, start runs, read, cancel and wait on them, the run's
channel, and the directives with which a node task changes the run's course."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import Field, StrictBool, StrictFloat, StrictInt, model_validator

from ..errors import ApiError
from ..jsonutil import StrictJsonRoute, check_size
from ..store import workflow_engine as engine
from ..store import workflows as store
from .deps import Pool, SettingsDep
from .schemas import BodyTaskId, Key, Priority, QueueName, Seconds, Strict, TaskName

router = APIRouter(prefix="/v1", tags=["workflows"], route_class=StrictJsonRoute)

NodeName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z_][\w.:\-/#]*$")]
WorkflowName = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z_][\w.:\-/]*$")]
RunId = Annotated[int, Path(ge=1, le=2**63 - 1)]
ChannelKey = Annotated[str, Path(min_length=1, max_length=512, pattern=r"^[^\x00]+$")]
RunStatus = Literal["running", "succeeded", "failed", "cancelled"]
MAX_NODES = 1000
WAIT_POLL_SECONDS = 0.2
# Body numbers and booleans are strict, as in the engine's schemas ("5" or true is no 5).
Timeout = Annotated[StrictFloat, Field(gt=0, le=31_536_000)]


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


class WorkflowIn(Strict):
    name: TaskName
    queue: QueueName = "default"
    priority: Priority = 5
    timeout_seconds: Timeout | None = None
    args_schema: dict[str, Any] | None = None
    nodes: Annotated[list[NodeIn], Field(min_length=1, max_length=MAX_NODES)]
    edges: Annotated[list[tuple[NodeName, NodeName]], Field(max_length=100_000)] = []

    @model_validator(mode="after")
    def _dag(self) -> WorkflowIn:
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ValueError("node names must be unique")
        known = set(names)
        for src, dst in self.edges:
            if src not in known or dst not in known:
                raise ValueError(f"edge {src} -> {dst} names an unknown node")
            if src == dst:
                raise ValueError(f"edge {src} -> {dst} is a self-loop; use next_iteration")
        indegree = {n: 0 for n in names}
        down: dict[str, list[str]] = {n: [] for n in names}
        for src, dst in set(self.edges):
            indegree[dst] += 1
            down[src].append(dst)
        ready = [n for n, d in indegree.items() if d == 0]
        seen = 0
        while ready:
            node = ready.pop()
            seen += 1
            for nxt in down[node]:
                indegree[nxt] -= 1
                if indegree[nxt] == 0:
                    ready.append(nxt)
        if seen != len(names):
            raise ValueError("the edges form a cycle; a workflow must be a DAG")
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


def _definition(body: WorkflowIn) -> dict[str, Any]:
    nodes = {}
    for node in body.nodes:
        cfg = node.model_dump(exclude={"name"}, exclude_none=True)
        if "args" in node.model_fields_set:
            cfg["args"] = node.args
        nodes[node.name] = cfg
    return {"name": body.name, "queue": body.queue, "priority": body.priority,
            "timeout_seconds": body.timeout_seconds, "args_schema": body.args_schema,
            "nodes": nodes, "edges": [list(e) for e in dict.fromkeys(body.edges)]}


@router.put("/workflows/{name}", summary="Register (or replace) a workflow definition")
async def register_workflow(name: WorkflowName, body: WorkflowIn, pool: Pool,
                            settings: SettingsDep) -> dict[str, Any]:
    if body.name != name:
        raise ApiError(422, "name_mismatch", f"the body names {body.name!r}, the path {name!r}")
    for node in body.nodes:
        check_size(node.args, settings.max_payload_bytes, f"args of node {node.name}")
    store.check_args_schema(body.args_schema)
    async with pool.connection() as conn:
        await store.upsert_definition(conn, _definition(body))
    return {"name": name, "nodes": len(body.nodes), "edges": len(body.edges)}


@router.get("/workflows", summary="Registered workflow definitions")
async def list_workflows(pool: Pool) -> dict[str, Any]:
    async with pool.connection() as conn:
        return {"workflows": await store.list_definitions(conn)}


@router.get("/workflows/{name}", summary="One workflow definition")
async def get_workflow(name: WorkflowName, pool: Pool) -> dict[str, Any]:
    async with pool.connection() as conn:
        return await store.get_definition(conn, name)


@router.post("/workflows/{name}/runs", status_code=201, summary="Start a run of a workflow")
async def start_run(name: WorkflowName, body: RunIn, pool: Pool,
                    settings: SettingsDep) -> dict[str, Any]:
    check_size(body.args, settings.max_payload_bytes, "args of the run")
    async with pool.connection() as conn:
        run_id, duplicate = await store.create_run(
            conn, name, body.args, queue=body.queue, priority=body.priority,
            timeout_seconds=body.timeout_seconds, idempotency_key=body.idempotency_key)
    return {"id": run_id, "duplicate": duplicate}


@router.get("/workflow-runs", summary="Workflow runs, newest first")
async def list_runs(
    pool: Pool,
    workflow: Annotated[str | None, Query(max_length=200)] = None,
    status: RunStatus | None = None,
    cursor: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    async with pool.connection() as conn:
        rows = await store.list_runs(conn, workflow_name=workflow, status=status,
                                     before_id=cursor, limit=limit)
    return {"runs": rows, "next_cursor": rows[-1]["id"] if len(rows) == limit else None}


async def _run_view(pool: Any, run_id: int) -> dict[str, Any]:
    async with pool.connection() as conn:
        run = await store.get_run(conn, run_id)
        run["nodes"] = await store.run_nodes(conn, run_id)
        run["channel"] = await store.channel_list(conn, run_id)
    return run


@router.get("/workflow-runs/{run_id}", summary="A run with its nodes, their results and channel")
async def get_run(run_id: RunId, pool: Pool) -> dict[str, Any]:
    return await _run_view(pool, run_id)


@router.post("/workflow-runs/{run_id}/cancel", summary="Cancel a running workflow run")
async def cancel_run(run_id: RunId, pool: Pool) -> dict[str, Any]:
    async with pool.connection() as conn:
        return await engine.cancel_run(conn, run_id, "cancelled through the API",
                                       {"type": "WorkflowCancelled",
                                        "message": "cancelled through the API"})


@router.get("/workflow-runs/{run_id}/wait", summary="Long-poll until the run has finished")
async def wait_run(
    run_id: RunId, pool: Pool, settings: SettingsDep,
    timeout_seconds: Annotated[float, Query(ge=0, le=3600)] = 30.0,
) -> dict[str, Any]:
    deadline = time.monotonic() + min(timeout_seconds, settings.max_wait_seconds)
    while True:
        async with pool.connection() as conn:
            run = await store.get_run(conn, run_id)
        if run["status"] != "running" or time.monotonic() >= deadline:
            break
        await asyncio.sleep(min(WAIT_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
    view = await _run_view(pool, run_id)
    view["finished"] = view["status"] != "running"
    return view


@router.post("/workflow-runs/{run_id}/directives",
             summary="From a running node task: change the run's course (fenced by lease)")
async def directive(run_id: RunId, body: DirectiveIn, pool: Pool,
                    settings: SettingsDep) -> dict[str, Any]:
    payload: dict[str, Any] = {"action": body.action, "goto": body.goto, "node": body.node,
                               "reason": body.reason}
    if "args" in body.model_fields_set:
        check_size(body.args, settings.max_payload_bytes, "args")
        payload["args"] = body.args
    if body.task is not None:
        check_size(body.task.args, settings.max_payload_bytes, "task args")
        payload["spec"] = _spec(body.task)
    async with pool.connection() as conn:
        async with conn.cursor() as cur:
            await cur.execute("SELECT workflow_run_id FROM tasks WHERE id = %s", (body.task_id,))
            row = await cur.fetchone()
        if row is not None and row["workflow_run_id"] != run_id:
            raise ApiError(409, "not_in_run", f"task {body.task_id} is not part of run {run_id}")
        return await engine.directive(conn, body.task_id, str(body.lease_token), payload)


def _spec(task: TaskSpecIn) -> dict[str, Any]:
    """A directive's task, resolved like a node's (unset options: the engine's defaults)."""
    spec: dict[str, Any] = {"name": task.name, "queue": task.queue or "default"}
    for key, default in store.TASK_DEFAULTS.items():
        value = getattr(task, key)
        spec[key] = value if value is not None else default
    if "args" in task.model_fields_set:
        spec["args"] = task.args
    return spec


@router.get("/workflow-runs/{run_id}/channel", summary="The run's channel: every key")
async def channel_list(run_id: RunId, pool: Pool) -> dict[str, Any]:
    async with pool.connection() as conn:
        return {"run_id": run_id, "entries": await store.channel_list(conn, run_id)}


@router.get("/workflow-runs/{run_id}/channel/{key}", summary="One channel value")
async def channel_get(run_id: RunId, key: ChannelKey, pool: Pool) -> dict[str, Any]:
    async with pool.connection() as conn:
        return await store.channel_get(conn, run_id, key)


@router.put("/workflow-runs/{run_id}/channel/{key}", summary="Set a channel value (any JSON)")
async def channel_set(run_id: RunId, key: ChannelKey, body: ChannelValueIn, pool: Pool,
                      settings: SettingsDep) -> dict[str, Any]:
    check_size(body.value, settings.max_payload_bytes, "value")
    async with pool.connection() as conn:
        await store.channel_set(conn, run_id, key, body.value)
    return {"run_id": run_id, "key": key, "value": body.value}


@router.post("/workflow-runs/{run_id}/channel/{key}/increment",
             summary="Atomically add to an integer channel value")
async def channel_increment(run_id: RunId, key: ChannelKey, body: ChannelIncrementIn,
                            pool: Pool) -> dict[str, Any]:
    async with pool.connection() as conn:
        value = await store.channel_increment(conn, run_id, key, body.by)
    return {"run_id": run_id, "key": key, "value": value}

"""What the v1 API answers: one model per JSON answer, the ``response_model`` of its route.

The models document the answers (``/openapi.json``, the docs pages, generated clients); they do
not filter them: a route's answer is sent as the route returns it (``jsonutil.StrictJsonRoute``:
no per-request validation, no field dropped). ``tests/test_openapi.py`` holds real answers to
these models, so a key a route returns but its model does not declare fails there.

``Answer`` models are closed (every key declared); ``OpenAnswer`` ones may carry more keys
than they declare (an error's details, a definition's options). Task args, results and KV or
channel values are any JSON (``Any``). Request bodies are in ``schemas.py``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ... import protocol as P
from .schemas import SentOut

__all__ = ["SentOut"]  # a send's answer, declared with the request bodies it answers

TaskStatus = P.TaskStatus
RunStatus = Literal["running", "succeeded", "failed", "cancelled"]
# Each status of a task with how many tasks of a tree (or a queue) are in it.
Rollup = dict[str, int]


class Answer(BaseModel):
    """A JSON object whose every key is declared."""


class OpenAnswer(Answer):
    """A JSON object with the declared keys and possibly others (``additionalProperties``)."""

    model_config = ConfigDict(extra="allow")


# -- tasks --------------------------------------------------------------------------------------


class ErrorOut(OpenAnswer):
    """Why an attempt (or a run) failed: the exception's type and message, its traceback when
    the worker sent one; sweeps and runs add details (``node``, ``task_id``)."""

    type: str
    message: str = ""
    traceback: str | None = None


class TaskOut(Answer):
    """A task as listed: its settings, state and outcome (no history)."""

    id: int
    name: str
    queue: str
    status: TaskStatus
    args: Any = Field(description="any JSON, as sent")
    priority: int
    run_at: datetime
    attempts: int
    max_retries: int
    retry_delay_seconds: float
    retry_backoff: str
    retry_max_delay_seconds: float
    timeout_seconds: float | None
    idempotency_key: str | None
    parent_id: int | None
    root_id: int
    depth: int
    spawn_key: str | None
    workflow_run_id: int | None
    workflow_node: str | None
    worker_id: str | None
    lease_expires_at: datetime | None
    cancel_requested: bool
    result: Any = Field(description="any JSON the task returned; null until it succeeded")
    error: ErrorOut | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    stuck_after_seconds: float | None
    stuck_action: P.StuckAction | None
    last_progress_at: datetime | None
    debounce_key: str | None = None
    unique_key: str | None = None
    unique_until: datetime | None = None
    stuck: bool = Field(description="running with no progress past its stuck rule")


class HistoryOut(Answer):
    attempt: int
    event: str
    status: TaskStatus
    worker_id: str | None
    error: ErrorOut | None
    at: datetime


class LogOut(Answer):
    attempt: int
    output: str
    at: datetime


class StepOut(Answer):
    """A finished step of a durable task (docs/durable.md): its result is reused on reruns."""

    name: str
    kind: str
    fn: str | None
    position: int
    result: Any
    attempt: int
    started_at: datetime | None
    finished_at: datetime


class WaitOut(Answer):
    """What a ``waiting`` task waits for: an event key, a signal, a sleep's deadline..."""

    task_id: int
    step: str
    kind: str
    key: str | None
    detail: Any
    deadline: datetime | None
    since: datetime | None
    created_at: datetime


class TaskDetailOut(TaskOut):
    """A task with its history (every state change), the logs of its attempts, and for a
    durable task its finished steps and what it waits for."""

    history: list[HistoryOut]
    logs: list[LogOut]
    steps: list[StepOut] = []
    wait: WaitOut | None = None
    why: str = Field(description="the path of this task's GET .../why")


class TaskPageOut(Answer):
    tasks: list[TaskOut]
    next_cursor: int | None = Field(description="pass as cursor for the next page; null: last")


class SentBatchOut(Answer):
    tasks: list[SentOut] = Field(description="one per task sent, in the order sent")


class CancelledOut(Answer):
    id: int
    status: TaskStatus
    cancel_requested: bool


class RetriedOut(Answer):
    id: int
    status: TaskStatus


# -- the worker protocol ----------------------------------------------------------------------


class RegisteredOut(Answer):
    worker_id: str
    tasks: int = Field(description="task definitions recorded")


class StoppedOut(Answer):
    worker_id: str
    stopped: bool


class WorkerOut(Answer):
    id: str
    queues: list[str]
    task_names: list[str]
    info: dict[str, Any]
    started_at: datetime
    last_seen_at: datetime
    stopped_at: datetime | None
    online: bool
    running: int


class WorkersOut(Answer):
    workers: list[WorkerOut]


class DefinitionOut(Answer):
    name: str
    queue: str
    defaults: dict[str, Any]
    args_schema: dict[str, Any] | None
    updated_at: datetime


class DefinitionsOut(Answer):
    definitions: list[DefinitionOut]


class ClaimedTaskOut(Answer):
    """A leased task: what the worker runs, and the lease token its outcome must carry."""

    id: int
    name: str
    queue: str
    args: Any = Field(description="any JSON, as sent")
    priority: int
    attempts: int
    max_retries: int
    timeout_seconds: float | None
    lease_token: uuid.UUID
    lease_expires_at: datetime
    parent_id: int | None
    root_id: int
    depth: int
    workflow_run_id: int | None
    workflow_node: str | None
    run_at: datetime
    created_at: datetime
    replay: bool = Field(default=False, description="durable steps are stored: a re-run "
                         "reads them first (docs/durable.md)")


class ClaimedOut(Answer):
    tasks: list[ClaimedTaskOut] = Field(description="empty when none was ready in time")


class LeaseOut(Answer):
    id: int
    held: bool = Field(description="false: the lease is lost, stop the task")
    cancel: bool = Field(description="a cancel was requested: stop the task")
    lease_expires_at: datetime | None


class HeartbeatOut(Answer):
    tasks: list[LeaseOut]
    cancel: list[int] = Field(description="ids whose cancel was requested")
    lost: list[int] = Field(description="ids whose lease is no longer this worker's")
    lease_seconds: float


class ReportedOut(Answer):
    """One outcome's fate: ``applied``, or why not (``stale_lease``: the lease is no longer
    current; ``already_recorded``: this lease's outcome was recorded before; ``unknown_task``)."""

    id: int
    outcome: Literal["applied", "stale_lease", "already_recorded", "unknown_task"]
    status: TaskStatus | None = Field(description="the task's status after the report")


class ReportedBatchOut(Answer):
    results: list[ReportedOut] = Field(description="one per outcome, in the order sent")


class ReleasedOut(Answer):
    released: list[int] = Field(description="ids handed back to their queue")


# -- queues -----------------------------------------------------------------------------------


class QueueSettingsOut(Answer):
    """A queue's settings; a null rule or retention means the server's default."""

    name: str
    concurrency_limit: int | None
    paused: bool
    stuck_after_seconds: float | None
    stuck_action: P.StuckAction | None
    retention_succeeded_seconds: float | None = None
    retention_failed_seconds: float | None = None
    retention_cancelled_seconds: float | None = None


class QueueOut(QueueSettingsOut):
    """A queue's settings and how many of its tasks are in each status."""

    queued: int
    running: int
    waiting: int = 0
    succeeded: int
    failed: int
    cancelled: int


class QueuesOut(Answer):
    queues: list[QueueOut]


class ThroughputSeriesOut(Answer):
    succeeded: list[int]
    failed: list[int]


class ThroughputOut(Answer):
    minutes: int = Field(description="length of each series, one value a minute, oldest first")
    queues: dict[str, ThroughputSeriesOut]


class PurgedOut(Answer):
    queue: str
    purged: int = Field(description="queued tasks cancelled")


# -- trees ------------------------------------------------------------------------------------


class TreeTaskOut(Answer):
    id: int
    name: str
    queue: str
    status: TaskStatus
    parent_id: int | None
    root_id: int
    depth: int
    spawn_key: str | None
    attempts: int
    max_retries: int
    workflow_run_id: int | None
    workflow_node: str | None
    error: ErrorOut | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None


class RootOut(TreeTaskOut):
    rollup: Rollup
    total: int


class RootsOut(Answer):
    roots: list[RootOut]
    next_cursor: int | None


class TreeNodeOut(TreeTaskOut):
    children: list[TreeNodeOut]


class TreeOut(Answer):
    root_id: int
    rollup: Rollup
    total: int
    finished: bool = Field(description="no task of the tree is queued or running")
    truncated: bool = Field(description="more tasks than the limit: some are not shown")
    tree: TreeNodeOut


class TreeWaitOut(Answer):
    root_id: int
    finished: bool
    rollup: Rollup


class TreeCancelledOut(Answer):
    id: int
    cancelled: list[int] = Field(description="queued tasks cancelled now")
    cancel_requested: list[int] = Field(description="running tasks asked to stop")


# -- workflows --------------------------------------------------------------------------------


class WorkflowRegisteredOut(Answer):
    name: str
    nodes: int
    edges: int


class WorkflowGraphOut(OpenAnswer):
    nodes: dict[str, dict[str, Any]] = Field(description="node name -> its task and options")
    edges: list[list[str]] = Field(description="[upstream, downstream] pairs")


class WorkflowOut(Answer):
    name: str
    queue: str
    definition: WorkflowGraphOut
    args_schema: dict[str, Any] | None
    timeout_seconds: float | None
    priority: int
    updated_at: datetime


class WorkflowsOut(Answer):
    workflows: list[WorkflowOut]


class RunStartedOut(Answer):
    id: int
    duplicate: bool = Field(description="the idempotency key named an existing run")


class RunOut(Answer):
    id: int
    workflow_name: str
    status: RunStatus
    args: Any
    queue: str
    priority: int
    timeout_seconds: float | None
    deadline_at: datetime | None
    idempotency_key: str | None
    reason: str | None
    error: ErrorOut | None
    created_at: datetime
    finished_at: datetime | None


class RunsOut(Answer):
    runs: list[RunOut]
    next_cursor: int | None


class NodeOut(Answer):
    node: str
    status: str
    upstream: list[str]
    dynamic: bool = Field(description="added by a directive, not in the definition")
    runs: int
    max_cycles: int
    task_id: int | None
    task_name: str | None
    task_status: TaskStatus | None
    attempts: int | None
    result: Any
    error: ErrorOut | None
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


class ChannelEntryOut(Answer):
    key: str
    value: Any
    updated_at: datetime


class HandlerOut(Answer):
    """The handler task queued when the run ended (docs/workflows.md, "Handlers")."""

    kind: Literal["on_failure", "on_success"]
    task_id: int | None
    created_at: datetime


class RunDetailOut(RunOut):
    """A run with its nodes (their tasks' status and results), its channel, and the handler
    task queued when it ended."""

    nodes: list[NodeOut]
    channel: list[ChannelEntryOut]
    handler: HandlerOut | None = None


class RunWaitOut(RunDetailOut):
    finished: bool = Field(description="false: the wait timed out first")


class RunCancelledOut(Answer):
    id: int
    status: RunStatus
    reason: str | None


class DirectiveOut(Answer):
    run_id: int
    accepted: bool
    runs: int | None = None
    max_cycles: int | None = None
    run_status: RunStatus | None = Field(None, description="set when the directive ended "
                                                           "the run")


class ChannelOut(Answer):
    run_id: int
    entries: list[ChannelEntryOut]


class ChannelValueOut(Answer):
    run_id: int
    key: str
    value: Any


# -- schedules --------------------------------------------------------------------------------


class ScheduleOut(Answer):
    name: str
    kind: Literal["task", "workflow"]
    target: str
    cron: str
    timezone: str
    args: Any
    options: dict[str, Any]
    misfire: Literal["skip", "catch_up"]
    grace_seconds: float
    paused: bool
    source: str = Field(description="api or worker: who wrote it last")
    next_fire_at: datetime | None
    last_fire_at: datetime | None
    last_sent_id: int | None
    created_at: datetime
    updated_at: datetime


class SchedulesOut(Answer):
    schedules: list[ScheduleOut]


class ScheduleDeletedOut(Answer):
    name: str
    deleted: bool


class LeaderLeaseOut(Answer):
    name: str
    holder: str
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime
    live: bool


class LeaderOut(Answer):
    replica: str | None
    is_leader: bool
    leases: list[LeaderLeaseOut]


# -- KV ---------------------------------------------------------------------------------------


class KVEntryOut(Answer):
    key: str
    value: str
    updated_at: datetime


class KVPageOut(Answer):
    items: list[KVEntryOut]
    next_cursor: str | None = Field(description="pass as after for the next page; null: last")


class KVValueOut(Answer):
    key: str
    value: str


class KVCounterOut(Answer):
    key: str
    value: int


class KVDeletedOut(Answer):
    key: str
    deleted: bool = Field(description="false: there was no such key")


class KVSetOut(Answer):
    key: str
    set: bool = Field(description="false: the key existed, nothing was written")


# -- tokens -----------------------------------------------------------------------------------


class TokenOut(Answer):
    id: int
    name: str
    role: P.TokenRole
    queues: list[str]
    names: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreatedOut(TokenOut):
    token: str = Field(description="the secret: shown only in this answer")


class TokensOut(Answer):
    tokens: list[TokenOut]


# -- health -----------------------------------------------------------------------------------


class TableHealthOut(OpenAnswer):
    live_tuples: int
    dead_tuples: int
    last_autovacuum: datetime | None
    last_vacuum: datetime | None
    autovacuum_count: int


class QueueHealthOut(Answer):
    ok: bool
    warnings: list[str]
    oldest_transaction: dict[str, Any] | None
    tables: dict[str, TableHealthOut]
    stuck: dict[str, int] = Field(description="queue -> running tasks stuck")


class HealthOut(Answer):
    status: Literal["ok", "unavailable"]
    database: bool
    listening: bool = Field(description="this replica's LISTEN connection is up")
    queue_health: QueueHealthOut | None = None


# -- approvals (docs/durable.md, "Approvals") ------------------------------------------------


class ApprovalOut(Answer):
    """A task waiting for a person's decision, with the question it asked."""

    task_id: int
    task_name: str
    queue: str
    step: str = Field(description="the task's step the decision fills")
    question: str | None
    since: datetime
    deadline: datetime | None = Field(description="when the wait times out, if it does")
    root_id: int
    workflow_run_id: int | None


class ApprovalsOut(Answer):
    approvals: list[ApprovalOut]
    next_cursor: int | None


class ApprovalDecisionOut(Answer):
    """A recorded decision: the value the resumed task reads back, with its task and step."""

    task_id: int
    step: str
    approved: bool
    decision: Literal["approved", "rejected"]
    comment: str | None
    by: str = Field(description="the name of the token that decided, or anonymous")
    at: str = Field(description="when it was decided (ISO 8601)")
    question: str | None


# --- flow control: rate limits (app/api/limits.py) ---------------------------------------

class RateLimitOut(Answer):
    """A named limit: ``units`` per ``period_seconds`` spaced evenly, ``burst`` more at once."""

    name: str
    units: int
    period_seconds: float
    burst: int
    created_at: datetime
    updated_at: datetime


class RateLimitBucketOut(Answer):
    key: str = Field(description="the key ('' for an unkeyed use)")
    full_at: datetime = Field(description="when this key's bucket is full again")


class RateLimitStateOut(RateLimitOut):
    buckets: list[RateLimitBucketOut]


class RateLimitListOut(Answer):
    rate_limits: list[RateLimitOut]


class RateLimitDeletedOut(Answer):
    name: str
    deleted: bool


class QueueRateLimitOut(Answer):
    queue: str
    rate_limit: str | None


# -- why isn't it running? (docs/flow-control.md) ---------------------------------------------


class ReasonOut(OpenAnswer):
    """One reason a task is not running. Besides ``code`` and ``message`` it carries the
    details of its code: ``until``, ``queue``, ``limit``, ``key``, ``held_by``,
    ``next_unit_at``, ``stuck_ids``, ``kind``, ``ahead``... (docs/flow-control.md)."""

    code: str
    message: str


class WhyOut(Answer):
    task_id: int
    name: str
    queue: str
    status: TaskStatus
    running: bool
    reasons: list[ReasonOut] = Field(description="empty while it runs and once it finished")
    checked_at: datetime = Field(description="the database's clock when the reasons held")


# -- bulk operations, re-run, prune (docs/operations.md) -----------------------------------


class BulkOut(Answer):
    action: Literal["cancel", "retry", "delete"]
    matched: int = Field(description="tasks the filter selects, in any state")
    changed: int = Field(description="tasks the action changed (a dry run: would change)")
    dry_run: bool


class RerunOut(Answer):
    run_id: int
    from_node: str
    nodes: list[str] = Field(description="every node that runs again, in name order")
    queued: list[str] = Field(description="those queued now; the rest wait for their inputs")
    status: RunStatus


class PruneOut(Answer):
    tasks: int = Field(description="tasks deleted with their history and logs (a dry run: "
                       "would be), those of deleted runs included")
    runs: int = Field(description="finished workflow runs deleted with their nodes")
    kv: int = Field(description="expired KV entries deleted")
    dry_run: bool


# -- progress and streams (docs/streaming.md) ----------------------------------------------


class StreamWrittenOut(Answer):
    task_id: int
    chunks: int = Field(description="the task's chunks stored so far: the last seq")

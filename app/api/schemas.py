"""Request and response bodies of the v1 API: the contract clients and workers code against.

Field rules (name patterns, limits, statuses) come from ``branchwork.protocol``, the module
the client and the worker check with too.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    field_validator,
    model_validator,
)

from ... import protocol as P

TaskName = Annotated[str, Field(min_length=1, max_length=P.TASK_NAME_MAX,
                                pattern=P.TASK_NAME_PATTERN)]
QueueName = Annotated[str, Field(min_length=1, max_length=P.QUEUE_NAME_MAX,
                                 pattern=P.QUEUE_NAME_PATTERN)]
# Globs: ``*`` and ``?`` only (they map onto SQL LIKE; character classes do not).
QueuePattern = Annotated[str, Field(min_length=1, max_length=P.QUEUE_NAME_MAX,
                                    pattern=P.QUEUE_SELECTOR_PATTERN)]
WorkerId = Annotated[str, Field(min_length=1, max_length=P.WORKER_ID_MAX,
                                pattern=P.LABEL_PATTERN)]
Key = Annotated[str, Field(min_length=1, max_length=P.KEY_MAX, pattern=P.KEY_PATTERN)]
TaskId = Annotated[int, Field(ge=1, le=P.MAX_TASK_ID)]  # paths and queries (text, converted)
# In JSON bodies numbers must be numbers: "5" or true is a wrong type, not a 5 or a 1.
BodyTaskId = Annotated[StrictInt, Field(ge=1, le=P.MAX_TASK_ID)]
Priority = Annotated[StrictInt, Field(ge=P.MIN_PRIORITY, le=P.MAX_PRIORITY)]
Seconds = Annotated[StrictFloat, Field(ge=0, le=P.MAX_SECONDS)]
TaskStatus = P.TaskStatus
RetryBackoff = Literal[P.RETRY_BACKOFFS]  # type: ignore[valid-type]
StuckAfter = Annotated[StrictFloat, Field(gt=0, le=P.MAX_SECONDS)]
StuckAction = P.StuckAction

DEFAULT_PRIORITY = P.DEFAULT_PRIORITY


class Strict(BaseModel):
    """Unknown fields are refused: a typo must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid")


class TaskIn(Strict):
    name: TaskName
    args: Any = None
    queue: QueueName = P.DEFAULT_QUEUE
    priority: Priority = DEFAULT_PRIORITY
    max_retries: Annotated[StrictInt, Field(ge=0, le=P.MAX_RETRIES)] = 0
    retry_delay_seconds: Seconds = 1.0
    retry_backoff: RetryBackoff = "exponential"
    retry_max_delay_seconds: Seconds = 3600.0
    timeout_seconds: Annotated[StrictFloat, Field(gt=0, le=P.MAX_SECONDS)] | None = None
    stuck_after_seconds: StuckAfter | None = None
    stuck_action: StuckAction | None = None
    delay_seconds: Seconds | None = None
    run_at: datetime | None = None
    idempotency_key: Key | None = None
    parent_id: BodyTaskId | None = None
    spawn_key: Key | None = None

    @field_validator("run_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @model_validator(mode="after")
    def _one_start(self) -> TaskIn:
        if self.delay_seconds is not None and self.run_at is not None:
            raise ValueError("give delay_seconds or run_at, not both")
        if self.spawn_key is not None and self.parent_id is None:
            raise ValueError("spawn_key needs parent_id")
        return self


class TaskBatchIn(Strict):
    tasks: Annotated[list[TaskIn], Field(min_length=1)]


class SentOut(BaseModel):
    id: int
    duplicate: bool


class ClaimIn(Strict):
    worker_id: WorkerId
    queues: Annotated[list[QueuePattern], Field(min_length=1, max_length=100)] = [P.DEFAULT_QUEUE]
    task_names: Annotated[list[TaskName], Field(max_length=10_000)] | None = None
    limit: Annotated[StrictInt, Field(ge=1, le=1000)] = 1
    wait_seconds: Annotated[StrictFloat, Field(ge=0, le=3600)] = 0.0


class LeaseRef(Strict):
    id: BodyTaskId
    lease_token: uuid.UUID


class HeartbeatLease(LeaseRef):
    # Seconds since the attempt last showed progress, measured by the worker (so no clock
    # is compared across machines). Absent: the heartbeat itself counts as progress.
    idle_seconds: Seconds | None = None


class HeartbeatIn(Strict):
    worker_id: WorkerId
    tasks: Annotated[list[HeartbeatLease], Field(max_length=10_000)] = []


class ErrorInfo(Strict):
    type: Annotated[str, Field(max_length=500)] = "Error"
    message: Annotated[str, Field(max_length=100_000)] = ""
    traceback: Annotated[str, Field(max_length=1_000_000)] | None = None


class ResultIn(Strict):
    id: BodyTaskId
    lease_token: uuid.UUID
    outcome: Literal["succeeded", "failed", "cancelled"]
    result: Any = None
    error: ErrorInfo | None = None
    retry_delay_seconds: Seconds | None = None
    logs: str | None = None


class ReportIn(Strict):
    worker_id: WorkerId | None = None
    results: Annotated[list[ResultIn], Field(min_length=1)]


class CompleteIn(Strict):
    lease_token: uuid.UUID
    result: Any = None
    logs: str | None = None


class FailIn(Strict):
    lease_token: uuid.UUID
    error: ErrorInfo = ErrorInfo()
    retry_delay_seconds: Seconds | None = None
    logs: str | None = None


class ReleaseIn(Strict):
    worker_id: WorkerId
    tasks: Annotated[list[LeaseRef], Field(max_length=10_000)]


class QueueIn(Strict):
    concurrency_limit: Annotated[StrictInt, Field(ge=0, le=1_000_000)] | None = None
    paused: StrictBool | None = None
    # Stuck rule of the queue's tasks that set none (null: the server's; omitted: unchanged).
    stuck_after_seconds: StuckAfter | None = None
    stuck_action: StuckAction | None = None


class TaskDefinitionIn(Strict):
    name: TaskName
    queue: QueueName = P.DEFAULT_QUEUE
    defaults: dict[str, Any] = {}
    args_schema: dict[str, Any] | None = None


class WorkerRegisterIn(Strict):
    worker_id: WorkerId
    queues: Annotated[list[QueuePattern], Field(max_length=100)] = []
    info: dict[str, Any] = {}
    tasks: Annotated[list[TaskDefinitionIn], Field(max_length=10_000)] = []

    @model_validator(mode="after")
    def _unique_tasks(self) -> WorkerRegisterIn:
        # One upsert statement cannot write a definition twice; which copy should win is a
        # guess, so a registry listing a name twice is refused rather than half-applied.
        counts = Counter(d.name for d in self.tasks)
        dups = sorted(n for n, k in counts.items() if k > 1)
        if dups:
            raise ValueError(f"task names must be unique; repeated: {', '.join(dups[:10])}")
        return self


class KVValueIn(Strict):
    value: str


class KVIncrementIn(Strict):
    by: Annotated[StrictInt, Field(ge=-(2**62), le=2**62)] = 1

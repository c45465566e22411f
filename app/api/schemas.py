"""Request and response bodies of the v1 API: the contract clients and workers code against.

Field rules (name patterns, limits, statuses) come from ``branchwork.protocol``, the module
the client and the worker check with too.
"""

from __future__ import annotations

import functools
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
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


def as_utc(value: datetime) -> datetime:
    """A time given without a zone is taken as UTC (not as the server's local time)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


UtcTime = Annotated[datetime, AfterValidator(as_utc)]


class Strict(BaseModel):
    """Unknown fields are refused: a typo must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid")


RateLimitName = Annotated[str, Field(min_length=1, max_length=P.RATE_LIMIT_NAME_MAX,
                                     pattern=P.RATE_LIMIT_NAME_PATTERN)]
KeyPath = Annotated[str, Field(min_length=1, max_length=P.KEY_PATH_MAX,
                               pattern=P.KEY_PATH_PATTERN)]


class RateLimitUse(Strict):
    """A rate limit a task consumes: ``units`` of limit ``limit``, per key (given, or read
    from the args at ``key_path``) or for all (no key)."""

    limit: RateLimitName
    key: Key | None = None
    key_path: KeyPath | None = None
    units: Annotated[StrictInt, Field(ge=1, le=P.MAX_RATE_UNITS)] = 1

    @model_validator(mode="after")
    def _one_key(self) -> RateLimitUse:
        if self.key is not None and self.key_path is not None:
            raise ValueError("give key or key_path, not both")
        return self


class RateLimitIn(Strict):
    """A named limit: ``units`` per ``period_seconds``, ``burst`` more at once."""

    units: Annotated[StrictInt, Field(ge=1, le=P.MAX_RATE_UNITS)]
    period_seconds: Annotated[StrictFloat | StrictInt, Field(gt=0, le=P.MAX_SECONDS)]
    burst: Annotated[StrictInt, Field(ge=0, le=P.MAX_RATE_UNITS)] = 0


class QueueRateLimitIn(Strict):
    """The named limit every task of a queue consumes one unit of (null: none)."""

    limit: RateLimitName | None


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
    run_at: UtcTime | None = None
    idempotency_key: Key | None = None
    parent_id: BodyTaskId | None = None
    spawn_key: Key | None = None
    # Send windows (docs/flow-control.md): debounce by a key given or read from the args,
    # and idempotency keys that expire or hold only while their task is unfinished.
    debounce_seconds: Annotated[StrictFloat, Field(gt=0, le=P.MAX_SECONDS)] | None = None
    debounce_key: Key | None = None
    debounce_key_path: KeyPath | None = None
    debounce_max_seconds: Annotated[StrictFloat, Field(gt=0, le=P.MAX_SECONDS)] | None = None
    unique_for: Annotated[StrictFloat, Field(gt=0, le=P.MAX_SECONDS)] | None = None
    unique_while: Literal[P.UNIQUE_WHILE] | None = None  # type: ignore[valid-type]
    # Flow control (docs/flow-control.md): a concurrency key (given, or read from the args)
    # with at most ``concurrency_limit`` running and a strategy, and the rate limits consumed.
    concurrency_key: Key | None = None
    concurrency_key_path: KeyPath | None = None
    concurrency_limit: Annotated[StrictInt, Field(ge=1, le=1_000_000)] | None = None
    concurrency_strategy: P.ConcurrencyStrategy | None = None
    rate_limits: Annotated[list[RateLimitUse],
                           Field(max_length=P.MAX_RATE_LIMITS_PER_TASK)] | None = None

    @model_validator(mode="after")
    def _one_start(self) -> TaskIn:
        if self.delay_seconds is not None and self.run_at is not None:
            raise ValueError("give delay_seconds or run_at, not both")
        if self.spawn_key is not None and self.parent_id is None:
            raise ValueError("spawn_key needs parent_id")
        problem = P.send_window_problem(self.__dict__) or P.flow_problem(self.__dict__)
        if problem is not None:
            raise ValueError(problem)
        return self


def fields_of(model: BaseModel) -> dict[str, Any]:
    """``model.model_dump()`` at a fraction of its cost on a large batch: the validated
    values as they are, but for the fields that can hold a model (dumped by pydantic)."""
    out = dict(model.__dict__)
    for name in _model_fields(type(model)):
        if out[name] is not None:
            out[name] = model.model_dump(include={name})[name]
    return out


@functools.cache
def _model_fields(cls: type[BaseModel]) -> tuple[str, ...]:
    """The fields of ``cls`` whose type names a model (``TaskIn.rate_limits``)."""
    def names_model(tp: Any) -> bool:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            return True
        return any(names_model(arg) for arg in get_args(tp))
    return tuple(name for name, f in cls.model_fields.items() if names_model(f.annotation))


class TaskBatchIn(Strict):
    tasks: Annotated[list[TaskIn], Field(min_length=1)]


class SentOut(BaseModel):
    id: int
    duplicate: bool
    debounced: bool = False
    folded_into: int | None = None  # a debounced send: the open window's task it joined


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


StepName = Annotated[str, Field(min_length=1, max_length=P.STEP_NAME_MAX,
                                pattern=P.KEY_PATTERN)]
WaitKind = Literal[P.WAIT_KINDS]  # type: ignore[valid-type]


class WaitIn(Strict):
    """What a suspended attempt waits for (docs/durable.md, docs/protocol.md)."""

    kind: WaitKind
    step: StepName  # the step name its result is stored under
    key: Key | None = None  # the event key or the signal name
    until: UtcTime | None = None  # a sleep's due time, or
    seconds: Seconds | None = None  # a sleep's length from when the task reached it
    timeout_seconds: Seconds | None = None
    lookback_seconds: Annotated[StrictFloat, Field(ge=0, le=P.MAX_LOOKBACK_SECONDS)] | None = None
    # Since the task reached the wait, measured by the worker (no clocks compared).
    waited_seconds: Seconds = 0.0
    detail: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _complete(self) -> WaitIn:
        if self.kind == "sleep" and (self.until is None) == (self.seconds is None):
            raise ValueError("a sleep gives until or seconds (one of them)")
        if self.kind in ("event", "signal") and self.key is None:
            raise ValueError(f"a wait for a {self.kind} needs its key")
        return self


class ResultIn(Strict):
    id: BodyTaskId
    lease_token: uuid.UUID
    outcome: Literal["succeeded", "failed", "cancelled", "suspended"]
    result: Any = None
    error: ErrorInfo | None = None
    retry_delay_seconds: Seconds | None = None
    logs: str | None = None
    wait: WaitIn | None = None  # with "suspended" only

    @model_validator(mode="after")
    def _wait_iff_suspended(self) -> ResultIn:
        if (self.outcome == "suspended") != (self.wait is not None):
            raise ValueError("a suspended outcome carries its wait (and only it)")
        return self


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
    # Retention of its finished tasks and runs by status (docs/operations.md, "Retention"):
    # seconds after they finished; 0: kept forever; null: the server's; omitted: unchanged.
    retention_succeeded_seconds: Seconds | None = None
    retention_failed_seconds: Seconds | None = None
    retention_cancelled_seconds: Seconds | None = None


class TaskDefinitionIn(Strict):
    name: TaskName
    queue: QueueName = P.DEFAULT_QUEUE
    defaults: dict[str, Any] = {}
    args_schema: dict[str, Any] | None = None
    # Event keys that start this task (docs/durable.md, "Event triggers"); replaces the
    # task's earlier ones.
    on_events: Annotated[list[Key], Field(max_length=100)] = []


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
    # Expire the entry this long after the write (reads then find no value; the retention
    # service deletes it). Unset: kept until deleted; a write without it clears an old TTL.
    ttl_seconds: Annotated[StrictFloat, Field(gt=0, le=P.MAX_SECONDS)] | None = None


class KVIncrementIn(Strict):
    by: Annotated[StrictInt, Field(ge=-(2**62), le=2**62)] = 1


# -- durable tasks (docs/durable.md) ---------------------------------------------------------


class EventIn(Strict):
    key: Key
    payload: Any = None
    # The event's own id: a repeated post of one id is recognised and does nothing again.
    id: Key | None = None


class SignalIn(Strict):
    name: Key
    payload: Any = None


class StepIn(Strict):
    lease_token: uuid.UUID
    name: StepName
    fn: Annotated[str, Field(min_length=1, max_length=P.FN_NAME_MAX)] | None = None
    result: Any = None
    duration_seconds: Seconds = 0.0


class DecisionIn(Strict):
    """An approve or reject (docs/durable.md, "Approvals"): why, recorded with it."""

    comment: Annotated[str, Field(max_length=P.MAX_COMMENT)] | None = None

"""The schema: SQLModel table classes are its single source; alembic revisions follow them.

The hot path does not go through these classes (see ``store/``); they exist so that the
schema is declared once, migrations are generated from it and a test can compare the two.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlmodel import Field, SQLModel


def _ts(nullable: bool = True, default_now: bool = False) -> Any:
    return sa.Column(
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.func.now() if default_now else None,
    )


def _json(nullable: bool = True) -> Any:
    return sa.Column(JSONB, nullable=nullable)


class Task(SQLModel, table=True):
    """One row per logical task, holding its current state."""

    __tablename__ = "tasks"
    __table_args__ = (
        sa.CheckConstraint(
            "status IN ('queued','running','waiting','succeeded','failed','cancelled')",
            name="tasks_status_check",
        ),
        sa.CheckConstraint("priority BETWEEN 1 AND 10", name="tasks_priority_check"),
        # The claim index: only queued rows, in claim order within a queue; rows under flow
        # control (a fair tag) are in tasks_flow_claim_idx instead.
        sa.Index(
            "tasks_claim_idx",
            "queue",
            sa.text("priority DESC"),
            "run_at",
            "id",
            postgresql_where=sa.text("status = 'queued' AND fair_tag IS NULL"),
        ),
        sa.Index(
            "tasks_running_idx",
            "lease_expires_at",
            postgresql_where=sa.text("status = 'running'"),
        ),
        sa.Index(
            "tasks_idempotency_idx",
            "name",
            "idempotency_key",
            unique=True,
            postgresql_where=sa.text("idempotency_key IS NOT NULL"),
        ),
        sa.Index(
            "tasks_spawn_key_idx",
            "parent_id",
            "spawn_key",
            unique=True,
            postgresql_where=sa.text("spawn_key IS NOT NULL"),
        ),
        # Debounce (docs/flow-control.md): one open window per task name and key, the
        # queued task no attempt has started yet; later sends fold into it.
        sa.Index(
            "tasks_debounce_idx",
            "name",
            "debounce_key",
            unique=True,
            postgresql_where=sa.text(
                "debounce_key IS NOT NULL AND status = 'queued' AND started_at IS NULL"),
        ),
        # Keys held only while their task is not finished (``unique_while="active"``).
        sa.Index(
            "tasks_unique_active_idx",
            "name",
            "unique_key",
            unique=True,
            postgresql_where=sa.text(
                "unique_key IS NOT NULL AND unique_until IS NULL"
                " AND status NOT IN ('succeeded','failed','cancelled')"),
        ),
        sa.Index("tasks_root_idx", "root_id", "id"),
        # Only tasks with a parent (migration 0011): every query here names one, and a
        # task without one (most) costs no entry on each send, claim and report.
        sa.Index("tasks_parent_idx", "parent_id", "id",
                 postgresql_where=sa.text("parent_id IS NOT NULL")),
        sa.Index("tasks_status_idx", "status", "id"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True))
    name: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    queue: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    status: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    args: Any = Field(default=None, sa_column=_json())
    priority: int = Field(sa_column=sa.Column(sa.SmallInteger, nullable=False))
    run_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))
    attempts: int = Field(sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    max_retries: int = Field(sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    retry_delay_seconds: float = Field(
        sa_column=sa.Column(sa.Float, nullable=False, server_default="1")
    )
    retry_backoff: str = Field(
        sa_column=sa.Column(sa.Text, nullable=False, server_default="exponential")
    )
    retry_max_delay_seconds: float = Field(
        sa_column=sa.Column(sa.Float, nullable=False, server_default="3600")
    )
    timeout_seconds: float | None = Field(default=None, sa_column=sa.Column(sa.Float))
    idempotency_key: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    parent_id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    root_id: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    depth: int = Field(sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    spawn_key: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    # Flow control (docs/flow-control.md): the task's concurrency key (its value, resolved at
    # send; scope: the queue) and how many of that key may run; the rate limits it consumes
    # (``[{"limit", "key", "units"}]``); ``fair_tag`` is set iff any of these is, and orders
    # the flow claim (round robin across keys). The plain claim skips rows that have one.
    concurrency_key: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    concurrency_limit: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    rate_limits: Any = Field(default=None, sa_column=_json())
    fair_tag: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    workflow_run_id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    workflow_node: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    worker_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    lease_token: uuid.UUID | None = Field(default=None, sa_column=sa.Column(UUID(as_uuid=True)))
    lease_expires_at: datetime | None = Field(default=None, sa_column=_ts())
    timeout_at: datetime | None = Field(default=None, sa_column=_ts())
    cancel_requested: bool = Field(
        sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false())
    )
    result: Any = Field(default=None, sa_column=_json())
    error: Any = Field(default=None, sa_column=_json())
    created_at: datetime | None = Field(default=None, sa_column=_ts(nullable=False, default_now=True))
    started_at: datetime | None = Field(default=None, sa_column=_ts())
    finished_at: datetime | None = Field(default=None, sa_column=_ts())
    # Liveness (docs/operations.md, "Stuck tasks"): when the running attempt last showed
    # progress (claim, a context call, a report), and the task's own stuck settings (None:
    # the queue's, then the server's).
    last_progress_at: datetime | None = Field(default=None, sa_column=_ts())
    stuck_after_seconds: float | None = Field(default=None, sa_column=sa.Column(sa.Float))
    stuck_action: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    # Send windows (docs/flow-control.md): the debounce key of a folded send, and an
    # idempotency key that expires (``unique_until``) or holds while active (until NULL).
    debounce_key: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    # The latest a debounce window may hold the task (``debounce_max_seconds`` after the
    # send that opened it): folds never push its start past this.
    debounce_deadline: datetime | None = Field(default=None, sa_column=_ts())
    unique_key: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    unique_until: datetime | None = Field(default=None, sa_column=_ts())


class TaskUniqueKey(SQLModel, table=True):
    """An expiring idempotency key (``unique_for``): the task that holds it until
    ``expires_at``. A send after that takes the row over (one row lock decides races)."""

    __tablename__ = "task_unique_keys"

    name: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    key: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    task_id: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    expires_at: datetime = Field(sa_column=_ts(nullable=False))


class TaskEvent(SQLModel, table=True):
    """The history: every attempt and state change (who, when, outcome, error)."""

    __tablename__ = "task_events"
    __table_args__ = (sa.Index("task_events_task_idx", "task_id", "id"),)

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True))
    task_id: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    attempt: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    event: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    status: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    worker_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    error: Any = Field(default=None, sa_column=_json())
    at: datetime | None = Field(default=None, sa_column=_ts(nullable=False, default_now=True))


class TaskLog(SQLModel, table=True):
    """Output captured by the worker for one attempt (print, logging), bounded in size."""

    __tablename__ = "task_logs"

    task_id: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True))
    attempt: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True))
    output: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    at: datetime | None = Field(default=None, sa_column=_ts(nullable=False, default_now=True))


# --- Durable tasks (docs/durable.md): steps, waits, events ----------------------------------


class TaskStep(SQLModel, table=True):
    """A finished step of a durable task (a ``ctx.step`` result, a sleep, a resolved wait):
    written once per task under a valid lease, returned as is when the task runs again."""

    __tablename__ = "task_steps"

    task_id: int = Field(sa_column=sa.Column(
        sa.BigInteger, sa.ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True))
    name: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    kind: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    fn: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    position: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    result: Any = Field(default=None, sa_column=_json())
    attempt: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    started_at: datetime | None = Field(default=None, sa_column=_ts())
    finished_at: datetime | None = Field(default=None, sa_column=_ts(nullable=False, default_now=True))


class TaskWait(SQLModel, table=True):
    """What a ``waiting`` task waits for (an event key, a signal name, an approval…): one row
    per waiting task, deleted when the wait resolves (its result becomes the step ``step``)."""

    __tablename__ = "task_waits"
    __table_args__ = (
        sa.Index("task_waits_key_idx", "kind", "key"),
        sa.Index("task_waits_deadline_idx", "deadline",
                 postgresql_where=sa.text("deadline IS NOT NULL")),
    )

    task_id: int = Field(sa_column=sa.Column(
        sa.BigInteger, sa.ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True))
    step: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    kind: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    key: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    detail: Any = Field(default=None, sa_column=_json())
    deadline: datetime | None = Field(default=None, sa_column=_ts())
    since: datetime | None = Field(default=None, sa_column=_ts())
    created_at: datetime | None = Field(default=None, sa_column=_ts(nullable=False, default_now=True))


class Event(SQLModel, table=True):
    """A posted event (``POST /v1/events``): kept so that a task starting to wait shortly after
    it (its look-back) still gets it; the id an event is posted with makes a repeat a no-op."""

    __tablename__ = "events"
    __table_args__ = (
        sa.Index("events_key_idx", "key", "id"),
        sa.Index("events_idempotency_idx", "idempotency_key", unique=True,
                 postgresql_where=sa.text("idempotency_key IS NOT NULL")),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True))
    key: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    payload: Any = Field(default=None, sa_column=_json())
    idempotency_key: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    created_at: datetime | None = Field(default=None, sa_column=_ts(nullable=False, default_now=True))


class QueueRow(SQLModel, table=True):
    """A queue's settings; rows appear when a queue is first used or configured."""

    __tablename__ = "queues"

    name: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    concurrency_limit: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    paused: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false()))
    created_at: datetime | None = Field(default=None, sa_column=_ts(nullable=False, default_now=True))
    # Stuck settings of the queue's tasks that set none themselves (None: the server's).
    stuck_after_seconds: float | None = Field(default=None, sa_column=sa.Column(sa.Float))
    stuck_action: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    # Retention of the queue's finished tasks by status (docs/operations.md, "Retention"):
    # None: the server's default; 0: kept forever.
    retention_succeeded_seconds: float | None = Field(default=None, sa_column=sa.Column(sa.Float))
    retention_failed_seconds: float | None = Field(default=None, sa_column=sa.Column(sa.Float))
    retention_cancelled_seconds: float | None = Field(default=None, sa_column=sa.Column(sa.Float))
    # Flow control: a named rate limit every task of the queue consumes one unit of, the
    # fair clock (the highest fair_tag claimed), and whether flow-controlled tasks were ever
    # sent here (sticky; the claim takes such queues through the flow path).
    rate_limit: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    fair_clock: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False,
                                                           server_default="0"))
    flow: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False,
                                                          server_default=sa.false()))
    # ...and whether any had a key with a running limit (its claims then lock the queue row).
    keyed: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False,
                                                           server_default=sa.false()))


# The flow claim's order within a queue: fair tag first (round robin across keys).
sa.Index(
    "tasks_flow_claim_idx",
    Task.__table__.c.queue,  # type: ignore[attr-defined]
    Task.__table__.c.fair_tag,  # type: ignore[attr-defined]
    Task.__table__.c.id,  # type: ignore[attr-defined]
    postgresql_where=sa.text("status = 'queued' AND fair_tag IS NOT NULL"),
)
# Running and queued tasks per concurrency key (the key limit, cancel strategies, "why").
sa.Index(
    "tasks_concurrency_key_idx",
    Task.__table__.c.queue,  # type: ignore[attr-defined]
    Task.__table__.c.concurrency_key,  # type: ignore[attr-defined]
    Task.__table__.c.status,  # type: ignore[attr-defined]
    postgresql_where=sa.text(
        "concurrency_key IS NOT NULL AND status IN ('queued', 'running')"),
)


class RateLimit(SQLModel, table=True):
    """A named rate limit: ``units`` per ``period_seconds`` spaced evenly, with ``burst``
    more allowed at once (docs/flow-control.md states the exact guarantee)."""

    __tablename__ = "rate_limits"
    __table_args__ = (
        sa.CheckConstraint("units > 0 AND period_seconds > 0 AND burst >= 0",
                           name="rate_limits_positive_check"),
    )

    name: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    units: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    period_seconds: float = Field(sa_column=sa.Column(sa.Float, nullable=False))
    burst: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False,
                                                      server_default="0"))
    created_at: datetime | None = Field(default=None, sa_column=_ts(nullable=False, default_now=True))
    updated_at: datetime | None = Field(default=None, sa_column=_ts(nullable=False, default_now=True))


class RateLimitBucket(SQLModel, table=True):
    """One limit's state for one key ('' when unkeyed): the GCRA theoretical arrival time,
    moved forward by each grant in the claim transaction that holds the row lock."""

    __tablename__ = "rate_limit_buckets"

    limit_name: str = Field(sa_column=sa.Column(
        sa.Text, sa.ForeignKey("rate_limits.name", ondelete="CASCADE"), primary_key=True))
    key: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    tat: datetime = Field(sa_column=_ts(nullable=False))


class ConcurrencyKey(SQLModel, table=True):
    """A concurrency key of a queue and the fair tag of its latest task: the next one gets
    ``max(last_tag, queue clock) + 1``, so keys take turns whatever their backlog."""

    __tablename__ = "concurrency_keys"

    queue: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    key: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    last_tag: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))


class WorkerRow(SQLModel, table=True):
    """A worker process as last seen through claims and heartbeats."""

    __tablename__ = "workers"

    id: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    queues: Any = Field(default=None, sa_column=_json())
    task_names: Any = Field(default=None, sa_column=_json())
    info: Any = Field(default=None, sa_column=_json())
    started_at: datetime | None = Field(default=None, sa_column=_ts(nullable=False, default_now=True))
    last_seen_at: datetime | None = Field(default=None, sa_column=_ts(nullable=False, default_now=True))
    stopped_at: datetime | None = Field(default=None, sa_column=_ts())


class TaskDefinition(SQLModel, table=True):
    """A task as registered by a worker: name, queue, defaults and argument schema."""

    __tablename__ = "task_definitions"

    name: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    queue: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    defaults: Any = Field(default=None, sa_column=_json())
    args_schema: Any = Field(default=None, sa_column=_json())
    updated_at: datetime | None = Field(default=None, sa_column=_ts(nullable=False, default_now=True))


class KVEntry(SQLModel, table=True):
    """The key-value store: string values, size bounded by the payload limit."""

    __tablename__ = "kv"
    # The retention service's work list: entries with a TTL, by expiry.
    __table_args__ = (
        sa.Index("kv_expires_idx", "expires_at", postgresql_where=sa.text("expires_at IS NOT NULL")),
    )

    key: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    value: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    updated_at: datetime | None = Field(default=None, sa_column=_ts(nullable=False, default_now=True))
    # Set by a write with a TTL; an expired entry reads as absent and is pruned (None: kept).
    expires_at: datetime | None = Field(default=None, sa_column=_ts())


# Retention's work list (docs/operations.md, "Retention"): finished tasks by queue, status
# and age, so each prune batch reads only rows past their queue's retention.
sa.Index(
    "tasks_finished_idx",
    Task.__table__.c.queue,  # type: ignore[attr-defined]
    Task.__table__.c.status,  # type: ignore[attr-defined]
    Task.__table__.c.finished_at,  # type: ignore[attr-defined]
    postgresql_where=sa.text("status IN ('succeeded', 'failed', 'cancelled')"),
)


# --- Workflows, cron schedules and leader election ----------------------------------------

# Tasks of a workflow run, found by run id without touching the rest of the task table.
sa.Index(
    "tasks_workflow_run_idx",
    Task.__table__.c.workflow_run_id,  # type: ignore[attr-defined]
    Task.__table__.c.id,  # type: ignore[attr-defined]
    postgresql_where=sa.text("workflow_run_id IS NOT NULL"),
)


class WorkflowDefinition(SQLModel, table=True):
    """A declared DAG as data (nodes, edges, node config), registered by a worker or the API."""

    __tablename__ = "workflows"

    name: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    queue: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    definition: Any = Field(sa_column=sa.Column(JSONB, nullable=False))
    args_schema: Any = Field(default=None, sa_column=_json())
    timeout_seconds: float | None = Field(default=None, sa_column=sa.Column(sa.Float))
    priority: int = Field(sa_column=sa.Column(sa.SmallInteger, nullable=False, server_default="5"))
    updated_at: datetime | None = Field(default=None, sa_column=_ts(nullable=False, default_now=True))


class WorkflowRun(SQLModel, table=True):
    """One run of a workflow; the definition is copied in so a re-registration cannot change it."""

    __tablename__ = "workflow_runs"
    __table_args__ = (
        sa.CheckConstraint(
            "status IN ('running','succeeded','failed','cancelled')",
            name="workflow_runs_status_check",
        ),
        sa.Index(
            "workflow_runs_idempotency_idx",
            "workflow_name",
            "idempotency_key",
            unique=True,
            postgresql_where=sa.text("idempotency_key IS NOT NULL"),
        ),
        sa.Index(
            "workflow_runs_deadline_idx",
            "deadline_at",
            postgresql_where=sa.text("status = 'running' AND deadline_at IS NOT NULL"),
        ),
        sa.Index("workflow_runs_name_idx", "workflow_name", "id"),
        sa.Index("workflow_runs_status_idx", "status", "id"),
        # Retention's work list: finished runs by age.
        sa.Index("workflow_runs_finished_idx", "finished_at",
                 postgresql_where=sa.text("status <> 'running'")),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True))
    workflow_name: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    status: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    args: Any = Field(default=None, sa_column=_json())
    definition: Any = Field(sa_column=sa.Column(JSONB, nullable=False))
    queue: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    priority: int = Field(sa_column=sa.Column(sa.SmallInteger, nullable=False))
    timeout_seconds: float | None = Field(default=None, sa_column=sa.Column(sa.Float))
    deadline_at: datetime | None = Field(default=None, sa_column=_ts())
    idempotency_key: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    reason: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    error: Any = Field(default=None, sa_column=_json())
    created_at: datetime | None = Field(default=None, sa_column=_ts(nullable=False, default_now=True))
    finished_at: datetime | None = Field(default=None, sa_column=_ts())


class WorkflowNode(SQLModel, table=True):
    """The state of one node in one run; advancing a run reads only its run's rows."""

    __tablename__ = "workflow_nodes"
    __table_args__ = (
        sa.CheckConstraint(
            "status IN ('pending','queued','succeeded','failed','skipped','cancelled')",
            name="workflow_nodes_status_check",
        ),
        sa.Index("workflow_nodes_task_idx", "task_id", unique=True),
        # The reconciler's work list: nodes whose task may have finished outside the report path.
        sa.Index("workflow_nodes_queued_idx", "run_id", postgresql_where=sa.text("status = 'queued'")),
    )

    run_id: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True))
    node: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    status: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    task: Any = Field(sa_column=sa.Column(JSONB, nullable=False))
    upstream: list[str] = Field(
        sa_column=sa.Column(sa.ARRAY(sa.Text), nullable=False, server_default="{}"))
    dynamic: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false()))
    max_cycles: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    runs: int = Field(sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    task_id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    directive: Any = Field(default=None, sa_column=_json())
    directive_task_id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    directive_attempt: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    updated_at: datetime | None = Field(default=None, sa_column=_ts(nullable=False, default_now=True))


class WorkflowChannelEntry(SQLModel, table=True):
    """Key-value state scoped to one run (the run's channel)."""

    __tablename__ = "workflow_channel"

    run_id: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True))
    key: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    value: Any = Field(default=None, sa_column=_json())
    updated_at: datetime | None = Field(default=None, sa_column=_ts(nullable=False, default_now=True))


class WorkflowHandler(SQLModel, table=True):
    """The ``on_failure`` / ``on_success`` task queued for a finished run (issue 15,
    docs/workflows.md, "Handlers"): the primary key is the run, so a run's handler is queued
    at most once, whichever replica or service finished the run. Deleted with its run."""

    __tablename__ = "workflow_handlers"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('on_failure','on_success')",
                           name="workflow_handlers_kind_check"),
    )

    run_id: int = Field(sa_column=sa.Column(
        sa.BigInteger, sa.ForeignKey("workflow_runs.id", ondelete="CASCADE"), primary_key=True))
    kind: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    task_id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    created_at: datetime | None = Field(default=None, sa_column=_ts(nullable=False, default_now=True))


class TaskStream(SQLModel, table=True):
    """A task's live progress and the tally of its streamed chunks (docs/streaming.md).
    Deleted with its task (the foreign key cascades), as its chunks are."""

    __tablename__ = "task_streams"
    # The studio's change marker (max(updated_at)) reads this index's last entry.
    __table_args__ = (sa.Index("task_streams_updated_idx", "updated_at"),)

    task_id: int = Field(sa_column=sa.Column(
        sa.BigInteger, sa.ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True))
    progress: float | None = Field(default=None, sa_column=sa.Column(sa.Float))
    message: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    chunks: int = Field(sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    bytes: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    updated_at: datetime | None = Field(default=None, sa_column=_ts(nullable=False, default_now=True))


class TaskStreamChunk(SQLModel, table=True):
    """One streamed chunk; ``seq`` counts from 1 per task, in the order the worker sent."""

    __tablename__ = "task_stream_chunks"

    task_id: int = Field(sa_column=sa.Column(
        sa.BigInteger, sa.ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True))
    seq: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True))
    attempt: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    data: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    at: datetime | None = Field(default=None, sa_column=_ts(nullable=False, default_now=True))


class Schedule(SQLModel, table=True):
    """A cron schedule that sends a task or starts a workflow run at each fire time."""

    __tablename__ = "schedules"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('task','workflow')", name="schedules_kind_check"),
        sa.CheckConstraint("misfire IN ('skip','catch_up')", name="schedules_misfire_check"),
        sa.Index("schedules_due_idx", "next_fire_at", postgresql_where=sa.text("NOT paused")),
    )

    name: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    kind: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    target: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    cron: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    timezone: str = Field(sa_column=sa.Column(sa.Text, nullable=False, server_default="UTC"))
    args: Any = Field(default=None, sa_column=_json())
    options: Any = Field(default=None, sa_column=_json())
    misfire: str = Field(sa_column=sa.Column(sa.Text, nullable=False, server_default="skip"))
    grace_seconds: float = Field(sa_column=sa.Column(sa.Float, nullable=False, server_default="60"))
    paused: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false()))
    source: str = Field(sa_column=sa.Column(sa.Text, nullable=False, server_default="api"))
    next_fire_at: datetime = Field(sa_column=_ts(nullable=False))
    last_fire_at: datetime | None = Field(default=None, sa_column=_ts())
    last_sent_id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    created_at: datetime | None = Field(default=None, sa_column=_ts(nullable=False, default_now=True))
    updated_at: datetime | None = Field(default=None, sa_column=_ts(nullable=False, default_now=True))


class LeaderLease(SQLModel, table=True):
    """Leader election: one row per role; the holder renews before ``expires_at``."""

    __tablename__ = "leader_leases"

    name: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    holder: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    expires_at: datetime = Field(sa_column=_ts(nullable=False))
    acquired_at: datetime | None = Field(default=None, sa_column=_ts(nullable=False, default_now=True))
    renewed_at: datetime | None = Field(default=None, sa_column=_ts(nullable=False, default_now=True))


class ApiToken(SQLModel, table=True):
    """An access token with a role and scopes (docs/operations.md, "Tokens"). Only the SHA-256
    of the secret is kept; the secret is shown once, at creation."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        sa.CheckConstraint("role IN ('admin','worker','sender','viewer')",
                           name="api_tokens_role_check"),
        # A name names one live token; a revoked one keeps its row (and its name) for the record.
        sa.Index("api_tokens_live_name_idx", "name", unique=True,
                 postgresql_where=sa.text("revoked_at IS NULL")),
    )

    id: int | None = Field(
        default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True))
    name: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    role: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    queues: list[str] = Field(default_factory=list, sa_column=sa.Column(
        sa.ARRAY(sa.Text), nullable=False, server_default="{}"))
    names: list[str] = Field(default_factory=list, sa_column=sa.Column(
        sa.ARRAY(sa.Text), nullable=False, server_default="{}"))
    secret_sha256: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    created_at: datetime | None = Field(default=None, sa_column=_ts(nullable=False, default_now=True))
    last_used_at: datetime | None = Field(default=None, sa_column=_ts())
    revoked_at: datetime | None = Field(default=None, sa_column=_ts())


class EventTrigger(SQLModel, table=True):
    """An event key that starts a task or a workflow run (issue 11, docs/durable.md,
    "Event triggers"): written with the target's definition, read by ``POST /v1/events``."""

    __tablename__ = "event_triggers"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('task','workflow')", name="event_triggers_kind_check"),
        # A target's registration replaces its keys: found by target, not by key.
        sa.Index("event_triggers_target_idx", "kind", "target"),
    )

    event_key: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    kind: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    target: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    created_at: datetime | None = Field(default=None, sa_column=_ts(nullable=False, default_now=True))

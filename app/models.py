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
            "status IN ('queued','running','succeeded','failed','cancelled')",
            name="tasks_status_check",
        ),
        sa.CheckConstraint("priority BETWEEN 1 AND 10", name="tasks_priority_check"),
        # The claim index: only queued rows, in claim order within a queue.
        sa.Index(
            "tasks_claim_idx",
            "queue",
            sa.text("priority DESC"),
            "run_at",
            "id",
            postgresql_where=sa.text("status = 'queued'"),
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
        sa.Index("tasks_root_idx", "root_id", "id"),
        sa.Index("tasks_parent_idx", "parent_id", "id"),
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

    key: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    value: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    updated_at: datetime | None = Field(default=None, sa_column=_ts(nullable=False, default_now=True))


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

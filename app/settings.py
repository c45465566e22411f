"""Server settings, read once from the environment (prefix ``BRANCHWORK_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob the server has; the README lists them with their defaults."""

    model_config = SettingsConfigDict(env_prefix="BRANCHWORK_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL. Unset: start an embedded PostgreSQL in data_dir.",
    )
    data_dir: Path = Field(
        default=Path.home() / ".branchwork" / "pgdata",
        description="Where the embedded PostgreSQL keeps its data (survives restarts).",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    api_token: str | None = Field(default=None, description="Bearer token required when set.")
    token_cache_seconds: float = Field(
        default=10.0, gt=0, description="How long a replica answers from its cached access "
        "tokens before reading them again (creates and revokes reach every replica at once "
        "by NOTIFY; this bounds a lost one)."
    )
    lease_seconds: float = Field(default=30.0, gt=0, description="Lease length of a claim.")
    sweep_interval_seconds: float = Field(
        default=1.0, gt=0, description="How often expired leases and timeouts are swept."
    )
    max_wait_seconds: float = Field(
        default=30.0, ge=0, description="Upper bound on a claim's long-poll wait."
    )
    poll_interval_seconds: float = Field(
        default=2.0, gt=0, description="Fallback re-check of a waiting claim when no NOTIFY came."
    )
    max_payload_bytes: int = Field(
        default=1_048_576, gt=0, description="Largest args, result or KV value, as JSON bytes."
    )
    max_log_bytes: int = Field(
        default=65_536, gt=0, description="Captured output kept per attempt (the tail is kept)."
    )
    max_request_bytes: int = Field(
        default=64 * 1_048_576, gt=0, description="Largest HTTP request body."
    )
    max_batch: int = Field(default=5000, gt=0, description="Most tasks in one send or report.")
    pool_min_size: int = Field(default=2, ge=1)
    pool_max_size: int = Field(default=10, ge=1)
    worker_offline_seconds: float = Field(
        default=60.0, gt=0, description="A worker silent this long is shown offline."
    )
    run_migrations: bool = Field(default=True, description="Apply migrations at start-up.")
    leader_lease_seconds: float = Field(
        default=15.0, gt=0, description="Scheduler leader lease; a dead leader is replaced "
        "within this time."
    )
    scheduler_interval_seconds: float = Field(
        default=1.0, gt=0, description="How often the leader looks for due cron schedules."
    )
    workflow_interval_seconds: float = Field(
        default=1.0, gt=0, description="How often workflow timeouts and swept node tasks are "
        "applied."
    )
    wait_interval_seconds: float = Field(
        default=1.0, gt=0, description="How often durable waits past their timeout are "
        "resumed (docs/durable.md)."
    )
    event_retention_seconds: float = Field(
        default=7 * 86400.0, ge=86400.0, description="How long posted events are kept: for "
        "the look-back of waits (at most a day) and to recognise a repeated event id."
    )
    stuck_after_seconds: float | None = Field(
        default=None, gt=0, description="A running attempt that shows no progress (no context "
        "call, no send, no KV) this long is shown stuck; tasks and queues may set their own. "
        "Unset: off."
    )
    stuck_action: Literal["mark", "fail"] = Field(
        default="mark", description="What the server does with a stuck attempt when its task "
        "and queue say nothing: mark (show it) or fail (fail it as Stuck; retried per policy)."
    )
    health_transaction_age_seconds: float = Field(
        default=300.0, gt=0, description="Queue health: an open transaction older than this "
        "(anywhere in the database) is reported."
    )
    health_dead_tuples: int = Field(
        default=100_000, gt=0, description="Queue health: more dead tuples than this in tasks "
        "or task_events is reported."
    )
    retention_succeeded_seconds: float = Field(
        default=7 * 86400.0, ge=0, le=100 * 365 * 86400, description="Retention: succeeded "
        "tasks (with their history and logs) and workflow runs are deleted this long after "
        "they finished; queues may set their own. 0: kept forever."
    )
    retention_failed_seconds: float = Field(
        default=30 * 86400.0, ge=0, le=100 * 365 * 86400, description="Retention of failed "
        "tasks and runs (kept longer: someone may still look into them). 0: kept forever."
    )
    retention_cancelled_seconds: float = Field(
        default=7 * 86400.0, ge=0, le=100 * 365 * 86400, description="Retention of cancelled "
        "tasks and runs (cancelled on purpose: kept as long as succeeded ones). 0: kept forever."
    )
    retention_interval_seconds: float = Field(
        default=60.0, gt=0, description="How often the retention service looks for finished "
        "tasks, runs and expired KV entries past their retention (it deletes in batches of "
        "1,000 and goes on at once while batches are full)."
    )
    run_services: bool = Field(
        default=True, description="Run background services (lease rescuer, scheduler)."
    )

    def database_session(self) -> dict[str, str]:
        """Settings the SQL itself reads (``current_setting('branchwork.…')``): the server
        defaults of the stuck rule, set on every pooled connection."""
        after = self.stuck_after_seconds
        return {"branchwork.stuck_after_seconds": "" if after is None else repr(float(after)),
                "branchwork.stuck_action": self.stuck_action}


@lru_cache
def get_settings() -> Settings:
    return Settings()

"""Server settings, read once from the environment (prefix ``BRANCHWORK_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

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
    run_services: bool = Field(
        default=True, description="Run background services (lease rescuer, scheduler)."
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()

"""Migrations agree with the SQLModel classes, and replicas can apply them at the same time."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import branchwork.app.models  # noqa: F401  (registers the tables)
import pg
from branchwork.app import migrate
from branchwork.app.database import sqlalchemy_url
from servers import free_port, server_env, wait_healthy


@pytest.fixture
def empty_db(pg_server: str) -> Iterator[str]:
    name = f"bw_empty_{uuid.uuid4().hex[:10]}"
    with pg.admin(pg_server) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg.with_database(pg_server, name)
    pg.drop(pg_server, name)


def head_revision(url: str) -> str:
    return ScriptDirectory.from_config(migrate.alembic_config(url)).get_current_head()


def schema_diff(url: str) -> list:
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(ctx, SQLModel.metadata)
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return row[0] if row else None


def test_models_and_migrations_agree(empty_db: str) -> None:
    migrate.upgrade(empty_db)
    assert current_revision(empty_db) == head_revision(empty_db)
    diff = schema_diff(empty_db)
    assert diff == [], f"SQLModel metadata and migrations disagree: {diff}"


def test_upgrade_is_idempotent(empty_db: str) -> None:
    migrate.upgrade(empty_db)
    migrate.upgrade(empty_db)
    assert current_revision(empty_db) == head_revision(empty_db)


def test_concurrent_db_upgrade_commands(empty_db: str) -> None:
    env = server_env(empty_db, 0)
    procs = [subprocess.Popen([sys.executable, "-m", "branchwork.cli", "db", "upgrade"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(4)]
    outs = [p.communicate(timeout=90) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [o[1][-2000:] for o in outs]
    assert current_revision(empty_db) == head_revision(empty_db)
    assert schema_diff(empty_db) == []


def test_replicas_starting_at_once_migrate_safely(empty_db: str) -> None:
    """Three servers start together on an empty database; all come up on the same schema."""
    ports = [free_port() for _ in range(3)]
    procs = [subprocess.Popen(
        [sys.executable, "-m", "branchwork.cli", "server", "--log-level", "warning"],
        env=server_env(empty_db, port)) for port in ports]
    try:
        for port, proc in zip(ports, procs, strict=True):
            wait_healthy(f"http://127.0.0.1:{port}", timeout=60, proc=proc)
        assert current_revision(empty_db) == head_revision(empty_db)
        import httpx

        ids = [httpx.post(f"http://127.0.0.1:{port}/v1/tasks", json={"name": "t"}).json()["id"]
               for port in ports]
        assert len(set(ids)) == 3
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_tasks_table_has_aggressive_autovacuum(db_url: str) -> None:
    """Claimed rows leave dead index entries at the head of the claim index; without frequent
    vacuuming claim speed decays within a minute (see docs/operations.md)."""
    with psycopg.connect(db_url) as conn:
        options = conn.execute(
            "SELECT reloptions FROM pg_class WHERE relname = 'tasks'").fetchone()[0]
    assert {"fillfactor=70", "autovacuum_vacuum_scale_factor=0.01",
            "autovacuum_vacuum_threshold=1000", "autovacuum_vacuum_cost_delay=0"} <= set(options)


def test_claim_uses_the_claim_index(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("INSERT INTO tasks (name, queue, status, priority, root_id) "
                     "SELECT 't', 'q' || (i % 20), CASE WHEN i % 3 = 0 THEN 'queued' "
                     "ELSE 'succeeded' END, 5, i FROM generate_series(1, 20000) i")
        conn.execute("ANALYZE tasks")
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT id FROM tasks WHERE status = 'queued' AND queue = 'q1' "
            "AND fair_tag IS NULL "
            "AND run_at <= now() ORDER BY priority DESC, run_at, id LIMIT 10 "
            "FOR UPDATE SKIP LOCKED").fetchall())
    assert "tasks_claim_idx" in plan, plan

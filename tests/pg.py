"""Test databases: a PostgreSQL server, a migrated template, and a fresh clone per test.

``BRANCHWORK_TEST_DATABASE_URL`` names a server to use (any database on it; the tests create
their own). Without it an embedded PostgreSQL is started in a temporary directory.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from branchwork.app import migrate
from branchwork.app.database import libpq_url, start_embedded


def server_url() -> str:
    configured = os.environ.get("BRANCHWORK_TEST_DATABASE_URL")
    if configured:
        return libpq_url(configured)
    data_dir = Path(tempfile.mkdtemp(prefix="branchwork-test-pg-")) / "pgdata"
    return start_embedded(data_dir)


def with_database(url: str, name: str) -> str:
    """The same server URL pointed at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def admin(url: str) -> psycopg.Connection:
    return psycopg.connect(with_database(url, "postgres"), autocommit=True)


def create_template(url: str) -> str:
    name = f"bw_template_{uuid.uuid4().hex[:10]}"
    with admin(url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    migrate.upgrade(with_database(url, name))
    return name


def clone(url: str, template: str) -> str:
    name = f"bw_test_{uuid.uuid4().hex[:12]}"
    with admin(url) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return name


def drop(url: str, name: str) -> None:
    with admin(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fingerprint(db_url: str, tables: tuple[str, ...]) -> dict[str, str]:
    """Row count and a hash of every row, per table: equal before and after a request that
    was refused means it changed nothing."""
    out = {}
    with psycopg.connect(db_url) as conn:
        for table in tables:
            row = conn.execute(
                f"SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {table} t"
            ).fetchone()
            assert row is not None
            out[table] = f"{row[0]}:{row[1]}"
    return out

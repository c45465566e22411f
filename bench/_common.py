"""What the benchmarks share: a fresh database per run and a ``branchwork server`` subprocess.

Imported as ``_common`` (the scripts run as ``python bench/<name>.py``, so this folder is on
``sys.path``); it is not part of the installed package.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg

from branchwork.app.database import libpq_url, start_embedded, stop_embedded

# The ``branchwork`` command line as the benchmarks start it (``server``, ``run-worker``): the
# one place that names its module.
CLI = (sys.executable, "-m", "branchwork.cli")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


class FreshDatabase:
    """A new, empty database for one run, on the first PostgreSQL named by ``env_vars``
    (else an embedded one in a temporary folder); :meth:`drop` removes all of it."""

    def __init__(self, env_vars: Sequence[str] = ("BRANCHWORK_BENCH_DATABASE_URL",)) -> None:
        server = next((os.environ[v] for v in env_vars if os.environ.get(v)), None)
        self.tmp: str | None = None
        if server is None:
            self.tmp = tempfile.mkdtemp(prefix="bw-bench-")
            server = start_embedded(Path(self.tmp) / "pgdata")
        self.server = libpq_url(server)
        self.name = f"bw_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(with_database(self.server, "postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        self.url = with_database(self.server, self.name)

    def drop(self) -> None:
        with psycopg.connect(with_database(self.server, "postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        if self.tmp:
            stop_embedded()
            shutil.rmtree(self.tmp, ignore_errors=True)


def start_server(db_url: str, settings: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """A ``branchwork server`` on a free port with ``settings`` (``BRANCHWORK_*`` variables),
    returned once it answers ``/health``."""
    port = free_port()
    env = dict(os.environ, BRANCHWORK_DATABASE_URL=db_url, BRANCHWORK_PORT=str(port), **settings)
    proc = subprocess.Popen(
        [*CLI, "server", "--log-level", "warning"],
        env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not become healthy")


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

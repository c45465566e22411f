"""The embedded PostgreSQL: a server with no database URL starts one, keeps its data across
restarts and stops it on exit. (A PostgreSQL crash under a running server: test_failures.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil

from servers import free_port, wait_healthy


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
        [sys.executable, "-m", "branchwork.cli", "server", "--log-level", "warning"],
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

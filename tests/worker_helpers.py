"""Helpers for tests that run real worker processes against a real server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

TESTS_DIR = Path(__file__).resolve().parent
ROOT = TESTS_DIR.parent
TERMINAL = {"succeeded", "failed", "cancelled"}


def wait_for(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05,
             what: str = "condition") -> Any:
    """Polls ``check`` until it returns something truthy; fails the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def task(api: httpx.Client, task_id: int) -> dict[str, Any]:
    response = api.get(f"/v1/tasks/{task_id}")
    assert response.status_code == 200, response.text
    return response.json()


def wait_status(api: httpx.Client, task_id: int, statuses: set[str] | str = TERMINAL,
                timeout: float = 30.0) -> dict[str, Any]:
    wanted = {statuses} if isinstance(statuses, str) else statuses
    return wait_for(lambda: (t := task(api, task_id))["status"] in wanted and t,
                    timeout, what=f"task {task_id} to reach {sorted(wanted)}")


def send(api: httpx.Client, name: str, args: Any = None, **options: Any) -> int:
    response = api.post("/v1/tasks", json={"name": name, "args": args, **options})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def events(task_row: dict[str, Any]) -> list[str]:
    return [e["event"] for e in task_row["history"]]


def worker_env(url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["BRANCHWORK_URL"] = url
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@contextmanager
def running(cmd: Sequence[str], env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """A worker subprocess that is always reaped, whatever the test did to it."""
    proc = subprocess.Popen(list(cmd), env=env, cwd=ROOT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with _suppress():
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        else:
            with _suppress():
                os.killpg(proc.pid, signal.SIGKILL)  # children left behind, if any


def child_processes(pid: int) -> list[tuple[int, str]]:
    """The processes whose parent is ``pid``, with their command lines (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append((int(entry.name), cmdline))
    return out


def python_worker(url: str, spec: str = "workers_app:reg", *args: str,
                  **env: str) -> Any:
    cmd = [sys.executable, "-m", "branchwork.cli", "run-worker", spec, *args]
    return running(cmd, worker_env(url, **env))


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], ProcessLookupError | PermissionError)

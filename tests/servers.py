"""Real servers for tests: uvicorn in a thread of the test process, or a ``branchwork server``
subprocess for tests that kill or restart it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from branchwork.app.main import create_app
from branchwork.app.settings import Settings

FAST_SETTINGS: dict[str, Any] = {
    "lease_seconds": 3.0,
    "sweep_interval_seconds": 0.2,
    "poll_interval_seconds": 1.0,
    "max_wait_seconds": 10.0,
    "pool_min_size": 1,
    "pool_max_size": 8,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base_url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{base_url} did not become healthy")


class ThreadServer:
    """A real uvicorn server on loopback, run in a thread with its own event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = free_port()
        self.app = create_app(settings)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server failed to start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextmanager
def thread_server(database_url: str, **overrides: Any) -> Iterator[ThreadServer]:
    settings = Settings(database_url=database_url, run_migrations=False,
                        **{**FAST_SETTINGS, **overrides})
    server = ThreadServer(settings).start()
    try:
        yield server
    finally:
        server.stop()


def server_env(database_url: str, port: int, **overrides: Any) -> dict[str, str]:
    env = dict(os.environ)
    env["BRANCHWORK_DATABASE_URL"] = database_url
    env["BRANCHWORK_PORT"] = str(port)
    for key, value in {**FAST_SETTINGS, **overrides}.items():
        env[f"BRANCHWORK_{key.upper()}"] = str(value)
    return env


@contextmanager
def process_server(database_url: str, port: int | None = None,
                   **overrides: Any) -> Iterator[tuple[subprocess.Popen, str]]:
    """``branchwork server`` as a subprocess, for tests that kill or restart it."""
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "branchwork.cli", "server", "--log-level", "warning"],
        env=server_env(database_url, port, **overrides),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc=proc)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

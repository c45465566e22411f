"""Shared bits of the flow-control tests: workers on this test's servers, reading tasks."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import datetime
from typing import Any

import httpx

from worker_helpers import python_worker


def workers(stack: ExitStack, urls: list[str], count: int, *queues: str,
            concurrency: int = 4) -> None:
    """``count`` worker processes, spread over the servers ``urls``, thread isolation (the
    machine is small); they are stopped with ``stack``."""
    args = [a for q in queues for a in ("-q", q)]
    for i in range(count):
        stack.enter_context(python_worker(urls[i % len(urls)], "flow_app:reg", *args,
                                          "--isolation", "thread", "-c", str(concurrency),
                                          "--wait-seconds", "5"))


def tasks_of(api: httpx.Client, queue: str, status: str | None = None) -> list[dict[str, Any]]:
    """Every task of ``queue`` (paged), oldest first."""
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"queue": queue, "limit": 1000}
        if status is not None:
            params["status"] = status
        if cursor is not None:
            params["cursor"] = cursor
        page = api.get("/v1/tasks", params=params).json()
        out.extend(page["tasks"])
        cursor = page["next_cursor"]
        if cursor is None:
            return sorted(out, key=lambda t: t["id"])


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def claim(api: httpx.Client, queue: str, limit: int, wait: float = 0.0,
          worker: str = "probe") -> list[dict[str, Any]]:
    r = api.post("/v1/claim", json={"worker_id": worker, "queues": [queue], "limit": limit,
                                    "wait_seconds": wait}, timeout=wait + 30)
    assert r.status_code == 200, r.text
    return r.json()["tasks"]

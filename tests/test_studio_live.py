"""Live updates: the SSE signal stream, and one database load however many pages are open."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx


def read_events(lines: Iterator[str], want: int, deadline: float) -> list[tuple[str, dict]]:
    """Parse SSE frames from a stream's lines until ``want`` events or the deadline."""
    events: list[tuple[str, dict]] = []
    name, data = "message", ""
    for line in lines:
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif line == "" and data:
            events.append((name, json.loads(data)))
            name, data = "message", ""
            if len(events) >= want:
                break
        if time.monotonic() > deadline:
            break
    return events


def test_events_stream_signals_what_changed(server, api: httpx.Client) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client, \
            client.stream("GET", "/studio/events") as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = resp.iter_lines()
        assert next(lines) == "retry: 2000"
        got: list[tuple[str, dict]] = []
        result: dict[str, int] = {}

        def send_later() -> None:
            time.sleep(0.8)
            result["id"] = api.post("/v1/tasks", json={"name": "ping"}).json()["id"]

        sender = threading.Thread(target=send_later)
        sender.start()
        got = read_events(lines, 2, time.monotonic() + 8)
        sender.join()
    assert got[0][0] == "ready"
    name, data = got[1]
    assert name == "change"
    tid = result["id"]
    assert {"tasks", f"task:{tid}", f"root:{tid}"} <= set(data["topics"])


def test_a_new_task_definition_is_signalled(server, api: httpx.Client) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client, \
            client.stream("GET", "/studio/events") as resp:
        lines = resp.iter_lines()
        assert next(lines) == "retry: 2000"

        def register_later() -> None:
            time.sleep(0.8)
            api.post("/v1/workers/register", json={"worker_id": "w-def", "queues": ["q"],
                                                   "tasks": [{"name": "fresh", "queue": "q"}]})

        registrar = threading.Thread(target=register_later)
        registrar.start()
        deadline = time.monotonic() + 8
        topics: set[str] = set()
        while "definitions" not in topics and time.monotonic() < deadline:
            for name, data in read_events(lines, 1, deadline):
                if name == "change":
                    topics |= set(data["topics"])
        registrar.join()
    assert "definitions" in topics  # the definitions page listens to this topic


def test_many_open_pages_do_not_multiply_database_load(make_server) -> None:
    """30 pages open on the stream and refetching the same partial share one query."""
    # Without the background services (rescuer, retention, wait timers...): their rounds
    # use the same pool, and this test counts the studio's queries.
    server = make_server(run_services=False)
    pool = server.app.state.server.pool
    httpx.post(f"{server.url}/v1/tasks", json={"name": "warm"}, timeout=30)
    clients = [httpx.Client(base_url=server.url, timeout=10) for _ in range(30)]
    streams = [c.stream("GET", "/studio/events") for c in clients]
    try:
        responses = [s.__enter__() for s in streams]
        lines = [r.iter_lines() for r in responses]
        for it in lines:
            assert next(it) == "retry: 2000"
            assert next(it) == ""
            assert next(it) == "event: ready"  # subscribed
        time.sleep(1.2)  # let the observer see the warm-up send
        before = pool.get_stats()["requests_num"]
        started = time.monotonic()
        with ThreadPoolExecutor(30) as ex:
            pages = list(ex.map(lambda c: c.get("/studio/partials/overview"), clients))
        assert all(p.status_code == 200 for p in pages)
        elapsed = time.monotonic() - started
        used = pool.get_stats()["requests_num"] - before
        # One overview query, plus the observer's own polls (2 a second) while we waited.
        assert used <= 3 + 2 * (elapsed + 1), (used, elapsed)
        assert server.app.state.server.studio.observer.subscribers == 30
    finally:
        for s in streams:
            s.__exit__(None, None, None)
        for c in clients:
            c.close()

"""The worker's hot path (issue 14): what was made cheaper must still do the same.

- the line per finished attempt: an async task's line was swallowed into the task's own
  capture (so it never reached the worker's log); it must be printed like a sync task's and
  stay out of the task's logs;
- the worker's HTTP/1.1 transport (``worker/transport.py``): the same answers and errors as
  httpx's own transport, connections reused only when whole, never after a cancellation;
- ``CancelFlag``, the per-attempt ``cancel_requested`` made without a lock until used.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from branchwork import AsyncClient, NotFound, TransportError
from branchwork._context import CancelFlag, TaskContext
from branchwork.worker import transport
from branchwork.worker.runtime import parallel_claims
from branchwork.worker.transport import Http1Transport
from cli_helpers import background, user_env
from worker_helpers import events, python_worker, send, wait_status
from workers_app import lines

ASYNC_TASKS = '''
from branchwork import Registry

registry = Registry()


@registry.task
async def hello(name: str) -> str:
    print(f"hello {name}")
    return name


@registry.task
async def broken() -> None:
    raise KeyError("missing")
'''

LINE = re.compile(r"^\S+ \S+ branchwork\.worker (INFO|WARNING) (task .*)$", re.M)


def test_async_task_lines_reach_the_worker_log_not_the_task_logs(
        server, api: httpx.Client, tmp_path: Path) -> None:
    (tmp_path / "async_tasks.py").write_text(ASYNC_TASKS)
    env = user_env(server.url)
    with background(["branchwork", "run-worker", "async_tasks:registry"], env, tmp_path,
                    tmp_path / "w.log") as worker:
        worker.wait_for(" ready")
        ok = send(api, "hello", {"name": "ada"})
        bad = send(api, "broken")
        row = wait_status(api, ok)
        wait_status(api, bad)
        text = worker.wait_for(lambda t: len(LINE.findall(t)) >= 2)
    lines = {line.split()[1]: (level, line) for level, line in LINE.findall(text)}
    assert lines[str(ok)][0] == "INFO"
    assert re.fullmatch(rf"task {ok} hello succeeded in \d+ ms \(attempt 1 of 1\)",
                        lines[str(ok)][1])
    assert lines[str(bad)][0] == "WARNING"
    assert lines[str(bad)][1].endswith("(attempt 1 of 1): KeyError: 'missing'")
    assert row["result"] == "ada"
    assert [log["output"] for log in row["logs"]] == ["hello ada\n"]


# -- the transport against the real server ------------------------------------------------


async def test_transport_answers_like_httpx(server, api) -> None:
    send(api, "t", {"x": 1}, queue="q")
    send(api, "t", {"x": 1}, queue="q")
    async with AsyncClient(url=server.url, transport=Http1Transport()) as lean, \
            AsyncClient(url=server.url) as usual:
        for client in (lean, usual):
            with pytest.raises(NotFound):
                await client.get_task(999_999)
        [mine] = await lean.claim("w-lean", queues=["q"], limit=1, wait_seconds=0)
        [theirs] = await usual.claim("w-usual", queues=["q"], limit=1, wait_seconds=0)
    assert mine.keys() == theirs.keys() and mine["args"] == theirs["args"] == {"x": 1}
    assert mine["id"] != theirs["id"]


async def test_transport_reuses_one_connection_and_claims_and_reports(server, api) -> None:
    lean = Http1Transport()
    ids = [send(api, "t", queue="q") for _ in range(3)]
    async with AsyncClient(url=server.url, transport=lean) as client:
        tasks = await client.claim("w1", queues=["q"], limit=3, wait_seconds=0)
        assert sorted(t["id"] for t in tasks) == sorted(ids)
        verdicts = await client.report("w1", [
            {"id": t["id"], "lease_token": t["lease_token"], "outcome": "succeeded",
             "result": {"n": t["id"]}} for t in tasks])
        assert [v["id"] for v in verdicts] == [t["id"] for t in tasks]
        assert sum(len(idle) for idle in lean._idle.values()) == 1
    assert all(wait_status(api, i)["result"] == {"n": i} for i in ids)


async def test_connection_refused_is_never_sent() -> None:
    async with AsyncClient(url="http://127.0.0.1:9", transport=Http1Transport(),
                           retries=0) as client:
        with pytest.raises(TransportError) as caught:
            await client.get_task(1)
    assert caught.value.maybe_applied is False
    assert "ConnectError" in str(caught.value)


# -- the transport against a scripted server ----------------------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def scripted(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A raw HTTP server; yields its URL and a list with one entry per connection made."""
    connections: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", connections
    finally:
        srv.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length: (\d+)", head)
    body = await reader.readexactly(int(length.group(1))) if length else b""
    return head + body


async def test_chunked_answer_and_a_connection_the_server_closes() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        assert request.startswith(b"GET /v1/tasks/7 HTTP/1.1\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                     b"transfer-encoding: chunked\r\n\r\n"
                     b"5\r\n{\"id\"\r\n4\r\n: 7}\r\n0\r\n\r\n")
        await writer.drain()
        # then the server closes the kept-alive connection (its keep-alive timeout)

    async with scripted(handler) as (url, connections), \
            AsyncClient(url=url, transport=Http1Transport(), retries=0) as client:
        assert (await client.get_task(7))["id"] == 7
        await asyncio.sleep(0.1)  # the server's close arrives
        assert (await client.get_task(7))["id"] == 7  # on a new connection, not a dead one
    assert len(connections) == 2


async def test_a_cancelled_request_closes_its_connection() -> None:
    answered = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        if b"/v1/tasks/1 " in request:
            await asyncio.sleep(30)  # a long-poll that never ends in time
        writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n"
                     b"content-length: 59\r\n\r\n"
                     b'{"error": {"code": "not_found", "message": "no such task"}}')
        await writer.drain()
        answered.set()
        await reader.read()

    lean = Http1Transport()
    async with scripted(handler) as (url, connections), \
            AsyncClient(url=url, transport=lean, retries=0) as client:
        waiting = asyncio.create_task(client.get_task(1))
        await asyncio.sleep(0.2)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert not any(lean._idle.values())  # half a request: never reused
        with pytest.raises(NotFound):
            await client.get_task(2)
    assert len(connections) == 2 and answered.is_set()


async def test_a_slow_answer_times_out_as_a_read_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async with scripted(handler) as (url, _), \
            AsyncClient(url=url, transport=Http1Transport(), retries=0, timeout=0.3) as client:
        with pytest.raises(TransportError) as caught:
            await client.get_task(1)
    assert "ReadTimeout" in str(caught.value) and caught.value.maybe_applied


def test_used_only_for_plain_http_without_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in transport.PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert isinstance(transport.make("http://127.0.0.1:8000"), Http1Transport)
    assert transport.make("https://bw.example.com") is None
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:3128")
    assert transport.make("http://127.0.0.1:8000") is None


# -- the cancel flag ----------------------------------------------------------------------


def test_cancel_flag_wakes_a_waiting_thread() -> None:
    ctx = TaskContext(task_id=1, task_name="t")
    flag = ctx.cancel_requested
    assert isinstance(flag, CancelFlag) and isinstance(flag, threading.Event)
    assert not flag.is_set() and not flag.wait(0.01)
    woke: list[float] = []

    def waiter() -> None:
        if flag.wait(10):
            woke.append(time.monotonic())

    threads = [threading.Thread(target=waiter) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    flag.set()
    for t in threads:
        t.join(5)
    assert len(woke) == 4 and flag.is_set()
    flag.clear()
    assert not flag.is_set()


def test_a_backlog_is_claimed_by_as_many_claims_as_the_slots_hold_batches() -> None:
    assert parallel_claims(1, 50) == 1  # one slot: one claim, strictly in order
    assert parallel_claims(10, 50) == 1
    assert parallel_claims(200, 50) == 4
    assert parallel_claims(150, 50) == 3
    assert parallel_claims(800, 50) == 4  # at most four


def test_workers_claiming_in_parallel_on_two_replicas_run_each_task_once_within_their_slots(
        make_server: Callable[..., Any], tmp_path: Path) -> None:
    """Four workers, two on each of two servers, each with 4 claims in flight on the backlog
    (-c 8 -b 2): every task runs once, and no worker runs more than its 8 at a time."""
    servers = [make_server(), make_server()]
    with httpx.Client(base_url=servers[0].url, timeout=30) as api:
        body = {"tasks": [{"name": "traced_by_worker", "queue": "race", "args": {"i": i}}
                          for i in range(400)]}
        resp = api.post("/v1/tasks/batch", json=body)
        assert resp.status_code == 201, resp.text
        ids = [t["id"] for t in resp.json()["tasks"]]
        with contextlib.ExitStack() as stack:
            for server in (*servers, *servers):
                stack.enter_context(python_worker(server.url, "workers_app:reg", "-q", "race",
                                                  "-c", "8", "-b", "2",
                                                  BW_TEST_DIR=str(tmp_path)))
            rows = [wait_status(api, i, timeout=90) for i in ids]
    assert all(r["status"] == "succeeded" and r["attempts"] == 1 for r in rows)
    assert all(events(r).count("claimed") == 1 for r in rows)
    trace = [line.split() for line in lines(tmp_path, "race")]
    starts = sorted(int(i) for sign, _, i in trace if sign == "+")
    assert starts == list(range(400))  # each ran once
    running: dict[str, int] = {}
    peaks: dict[str, int] = {}
    for sign, pid, _ in trace:
        running[pid] = running.get(pid, 0) + (1 if sign == "+" else -1)
        peaks[pid] = max(peaks.get(pid, 0), running[pid])
    assert len(peaks) == 4 and max(peaks.values()) <= 8, peaks

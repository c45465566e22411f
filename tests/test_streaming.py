"""Progress and streams (issue 15): a task streams with ``ctx.stream`` / ``ctx.progress`` in a
real worker process; readers follow ``GET /v1/tasks/{id}/stream`` through ``run.stream()``
(sync) and ``run.astream()`` (async). Every chunk arrives once, in order, to a reader that
was there from the start and to one that joins late, across a server restart; bad input is
refused and changes nothing."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import psycopg
import pytest

import branchwork
from branchwork import protocol
from orchestration_helpers import claim_one, complete
from outcomes_app import atokens, bad_progress, tokens, too_big_chunk
from servers import free_port, process_server
from worker_helpers import python_worker, wait_for

WORKER = ("outcomes_app:reg", "--concurrency", "4")


@pytest.fixture
def client(server) -> Iterator[None]:  # type: ignore[no-untyped-def]
    branchwork.configure(url=server.url)
    yield
    branchwork.configure()


class Reader(threading.Thread):
    """``run.stream_events()`` in a thread: what a web app's request handler would do."""

    def __init__(self, run: branchwork.TaskRun) -> None:
        super().__init__(daemon=True)
        self.run_handle = run
        self.chunks: list[str] = []
        self.progress: list[float | None] = []
        self.end: Any = None
        self.error: BaseException | None = None
        self.first_at: float | None = None  # wall clock of the first chunk's arrival

    def run(self) -> None:
        try:
            for event in self.run_handle.stream_events():
                if event.kind == "chunk":
                    self.first_at = self.first_at or time.time()
                    self.chunks.append(event.data or "")
                elif event.kind == "progress":
                    self.progress.append(event.progress)
                else:
                    self.end = event
        except BaseException as exc:  # noqa: BLE001 — the test reports it
            self.error = exc


def _expected(n: int, prefix: str = "tok") -> list[str]:
    return [f"{prefix}{i} " for i in range(n)]


def test_every_chunk_in_order_to_two_readers_one_late(server, client, make_server) -> None:  # type: ignore[no-untyped-def]
    """The late reader follows through another replica than the one the worker writes to."""
    other = make_server()
    n = 60
    with python_worker(server.url, *WORKER):
        run = tokens.send(n, pause=0.1)
        early = Reader(run)
        early.start()
        wait_for(lambda: len(early.chunks) >= n // 3, 60, what="the first third streamed")

        late: list[str] = []

        async def follow_late() -> None:
            async with branchwork.AsyncClient(other.url) as replica:
                handle = branchwork.TaskRun(run.id, async_client=replica)
                async for chunk in handle.astream():
                    late.append(chunk)

        late_thread = threading.Thread(target=lambda: asyncio.run(follow_late()))
        late_thread.start()
        early.join(60)
        late_thread.join(60)
    assert early.error is None, early.error
    assert early.chunks == _expected(n)
    assert late == _expected(n)  # what was streamed before it joined, then the rest
    assert early.end is not None and early.end.status == "succeeded" and early.end.seq == n
    assert early.progress and early.progress[-1] == 1.0
    assert early.progress == sorted(early.progress)  # progress moves one way
    assert run.result(timeout=10) == n
    # Live: the first chunk arrived seconds before the task (6 s of streaming) finished.
    finished = datetime.fromisoformat(run.refresh().task["finished_at"]).timestamp()
    assert early.first_at is not None and early.first_at < finished - 2
    # After the end the stream replays in full, from any seq.
    assert list(run.stream()) == _expected(n)
    assert list(run.stream(after=n - 2)) == _expected(n)[-2:]


def test_an_async_task_streams(server, client) -> None:  # type: ignore[no-untyped-def]
    with python_worker(server.url, *WORKER):
        run = atokens.send(30, pause=0.01)
        chunks = list(run.stream())
    assert chunks == _expected(30, "a")


def test_batches_not_a_round_trip_per_chunk(server, client, db_url: str) -> None:  # type: ignore[no-untyped-def]
    """200 chunks streamed in a tight loop are stored in order, and arrive in far fewer
    batches than chunks (the worker buffers ~50 ms)."""
    with python_worker(server.url, *WORKER):
        run = tokens.send(200)
        assert run.result(timeout=60) == 200
    with psycopg.connect(db_url) as conn:
        seqs = [r[0] for r in conn.execute(
            "SELECT seq FROM task_stream_chunks WHERE task_id = %s ORDER BY seq", (run.id,))]
        batches = conn.execute(
            "SELECT count(DISTINCT at) FROM task_stream_chunks WHERE task_id = %s",
            (run.id,)).fetchone()[0]
    assert seqs == list(range(1, 201))
    assert batches < 50, batches


def test_the_stream_survives_a_server_restart(db_url: str) -> None:
    """The server is killed and started again (same port) while the task streams: the
    worker keeps its unsent chunks and sends them again, the reader reconnects with
    Last-Event-ID; the reader gets every chunk exactly once, in order."""
    port = free_port()
    n = 40
    settings = {"lease_seconds": 30.0}
    with process_server(db_url, port, **settings) as (proc, url):
        branchwork.configure(url=url)
        try:
            with python_worker(url, *WORKER):
                run = tokens.send(n, pause=0.1)
                reader = Reader(run)
                reader.start()
                wait_for(lambda: len(reader.chunks) >= 8, 60, what="some chunks streamed")
                proc.kill()
                proc.wait()
                before = len(reader.chunks)
                time.sleep(1.0)  # the task goes on streaming while no server is there
                with process_server(db_url, port, **settings):
                    reader.join(90)
                    assert reader.error is None, reader.error
                    assert run.result(timeout=30) == n
        finally:
            branchwork.configure()
    assert before < n
    assert reader.chunks == _expected(n)
    assert reader.end is not None and reader.end.status == "succeeded"


def test_bad_input_is_refused_and_changes_nothing(api: httpx.Client) -> None:
    api.post("/v1/tasks", json={"name": "hand.stream", "queue": "hand"})
    task = claim_one(api, "hand")
    path = f"/v1/tasks/{task['id']}/stream"
    token = task["lease_token"]

    big = "x" * (protocol.MAX_STREAM_CHUNK_BYTES + 1)
    r = api.post(path, json={"lease_token": token, "chunks": ["ok", big]})
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large", r.text
    assert "over the limit" in r.json()["message"]
    for bad in (1.5, -0.1, "0.5", True):
        r = api.post(path, json={"lease_token": token, "progress": bad})
        assert r.status_code == 422, (bad, r.text)
    r = api.post(path, json={"lease_token": str(uuid.uuid4()), "chunks": ["stale"]})
    assert r.status_code == 409 and r.json()["code"] == "stale_lease"
    r = api.post(path, json={"lease_token": token, "chunks": ["x"] * (protocol.MAX_STREAM_BATCH + 1)})
    assert r.status_code == 422

    # Nothing of the above was stored: the first good batch gets seq 1.
    r = api.post(path, json={"lease_token": token, "chunks": ["a", "b"], "progress": 0.5,
                             "message": "half"})
    assert r.status_code == 200 and r.json() == {"task_id": task["id"], "chunks": 2}
    # A repeated batch (named by its first seq) is recognised; a gap is refused.
    again = {"lease_token": token, "chunks": ["c"], "first_seq": 3}
    assert api.post(path, json=again).json()["chunks"] == 3
    assert api.post(path, json=again).json()["chunks"] == 3
    r = api.post(path, json={"lease_token": token, "chunks": ["z"], "first_seq": 9})
    assert r.status_code == 409 and r.json()["code"] == "stream_gap"

    complete(api, task, "done")
    r = api.post(path, json={"lease_token": token, "chunks": ["late"]})
    assert r.status_code == 409 and r.json()["code"] == "stale_lease"
    assert api.get("/v1/tasks/999999999/stream").status_code == 404

    with api.stream("GET", path) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        body = response.read().decode()
    assert "event: progress" in body and '"message":"half"' in body
    assert [line for line in body.splitlines() if line.startswith("id: ")] == \
        ["id: 1", "id: 2", "id: 3"]
    assert body.rstrip().splitlines()[-2:] == [
        "event: end", 'data: {"status":"succeeded","chunks":3}']
    # Last-Event-ID resumes after that chunk.
    with api.stream("GET", path, headers={"last-event-id": "2"}) as response:
        body = response.read().decode()
    assert [line for line in body.splitlines() if line.startswith("id: ")] == ["id: 3"]


def test_bad_progress_and_chunks_inside_a_task_fail_it_clearly(server, client) -> None:  # type: ignore[no-untyped-def]
    with python_worker(server.url, *WORKER):
        bad = bad_progress.send(1.5)
        big = too_big_chunk.send(protocol.MAX_STREAM_CHUNK_BYTES + 10)
        with pytest.raises(branchwork.TaskFailed) as failed:
            bad.result(timeout=60)
        assert failed.value.error_type == "InvalidValue"
        assert "between 0 and 1" in failed.value.error_message
        with pytest.raises(branchwork.TaskFailed) as failed:
            big.result(timeout=60)
        assert "over the limit" in failed.value.error_message
    assert list(bad.stream()) == [] and list(big.stream()) == []
    with pytest.raises(branchwork.InvalidValue):
        branchwork.TaskContext(task_id=1, task_name="x").progress(-1)

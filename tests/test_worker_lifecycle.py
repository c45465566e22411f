"""The worker under stress: timeouts, kill -9, SIGTERM, cancellation, a task holding the GIL.
Real server with a short lease, real worker processes."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from servers import free_port, process_server
from worker_helpers import (
    child_processes,
    events,
    python_worker,
    send,
    task,
    wait_for,
    wait_status,
)
from workers_app import lines

LEASE = 2.0


@pytest.fixture
def short(make_server) -> Iterator[tuple[str, httpx.Client]]:
    server = make_server(lease_seconds=LEASE, sweep_interval_seconds=0.2)
    with httpx.Client(base_url=server.url, timeout=30) as api:
        yield server.url, api


def test_sync_task_past_its_timeout_is_killed_and_retried(short, tmp_path):
    url, api = short
    task_id = send(api, "stuck", {"seconds": 60}, max_retries=1, timeout_seconds=1.5)
    started = time.monotonic()
    with python_worker(url, BW_TEST_DIR=str(tmp_path)):
        row = wait_status(api, task_id, timeout=30)
    assert time.monotonic() - started < 20  # not the 60 s the task wanted
    assert row["status"] == "failed" and row["attempts"] == 2
    assert row["error"]["type"] == "TimeoutError"
    # The worker kills the attempt at its timeout and reports it (retry_scheduled/failed); the
    # server's own sweep would record timed_out. Either way: two claims, two failures.
    assert events(row).count("claimed") == 2
    assert events(row)[-1] in ("failed", "timed_out")
    assert lines(tmp_path, "stuck") == ["started", "started"]
    # Output streamed from the killed process before it was killed is kept.
    assert any("going to sleep" in log["output"] and "killed" in log["output"]
               for log in row["logs"]), row["logs"]
    assert lines(tmp_path, f"errors-{task_id}") == ["1 TimeoutError", "2 TimeoutError"]


def test_async_task_past_its_timeout_is_cancelled(short, tmp_path):
    url, api = short
    task_id = send(api, "async_stuck", {"seconds": 60}, timeout_seconds=1.0)
    with python_worker(url, BW_TEST_DIR=str(tmp_path)):
        row = wait_status(api, task_id, timeout=20)
        # The coroutine itself was cancelled (not left running while the server failed it).
        wait_for(lambda: lines(tmp_path, "async_stuck") == ["started", "cancelled"],
                 timeout=10, what="the coroutine to be cancelled")
    assert row["status"] == "failed" and row["attempts"] == 1
    assert row["error"]["type"] == "TimeoutError"


def test_kill_9_loses_nothing_and_records_once(short, tmp_path):
    url, api = short
    # A lost lease counts as an attempt (server rule), so the task needs a retry to spare.
    task_id = send(api, "slow", {"seconds": 3, "marker": "slow"}, max_retries=1)
    with python_worker(url, BW_TEST_DIR=str(tmp_path)) as first:
        wait_for(lambda: lines(tmp_path, "slow") == ["start 1"], what="first attempt to start")
        os.kill(first.pid, signal.SIGKILL)  # the worker process only: its children must follow
        first.wait(10)
        killed_at = time.monotonic()
    with python_worker(url, BW_TEST_DIR=str(tmp_path)):
        row = wait_status(api, task_id, timeout=30)
    assert row["status"] == "succeeded" and row["attempts"] == 2
    assert events(row) == ["claimed", "lost", "claimed", "succeeded"]
    # The first attempt's process died with its worker: it never reached its end.
    assert lines(tmp_path, "slow") == ["start 1", "start 2", "end 2"]
    assert time.monotonic() - killed_at < 20


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_releases_unfinished_tasks_without_using_a_retry(short, tmp_path, sig):
    url, api = short
    long_id = send(api, "wait_for_file", {"name": "go"})
    quick_id = send(api, "slow", {"seconds": 0.5, "marker": "quick"})
    with python_worker(url, "workers_app:reg", "--grace-period", "2",
                       BW_TEST_DIR=str(tmp_path)) as first:
        wait_for(lambda: lines(tmp_path, "go.started"), what="the long task to start")
        wait_for(lambda: lines(tmp_path, "quick") == ["start 1"], what="the quick one")
        first.send_signal(sig)
        assert first.wait(20) == 0
    # The quick task finished within the grace period; the long one went back to the queue.
    assert task(api, quick_id)["status"] == "succeeded"
    released = task(api, long_id)
    assert released["status"] == "queued" and released["attempts"] == 0
    assert events(released) == ["claimed", "released"]
    (tmp_path / "go").touch()
    with python_worker(url, BW_TEST_DIR=str(tmp_path)):
        row = wait_status(api, long_id, timeout=30)
    assert row["status"] == "succeeded" and row["attempts"] == 1
    assert events(row) == ["claimed", "released", "claimed", "succeeded"]
    assert len(lines(tmp_path, "go.started")) == 2
    workers = api.get("/v1/workers").json()["workers"]
    assert any(w["stopped_at"] is not None for w in workers)


def test_second_signal_exits_at_once(short, tmp_path):
    url, api = short
    send(api, "wait_for_file", {"name": "never"})
    with python_worker(url, "workers_app:reg", "--grace-period", "60",
                       BW_TEST_DIR=str(tmp_path)) as proc:
        wait_for(lambda: lines(tmp_path, "never.started"), what="the task to start")
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert proc.poll() is None  # waiting for the task, within its grace period
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        assert proc.wait(10) != 0
        assert time.monotonic() - started < 5


def test_cancel_reaches_running_async_and_sync_tasks(short, tmp_path):
    url, api = short
    async_id = send(api, "async_forever", None)
    coop_id = send(api, "cooperative", {"limit": 60})
    stubborn_id = send(api, "stubborn", None)
    with python_worker(url, "workers_app:reg", "--cancel-grace", "1",
                       BW_TEST_DIR=str(tmp_path)) as proc:
        for name in ("async_forever", "cooperative", "stubborn"):
            wait_for(lambda n=name: lines(tmp_path, n), what=f"{name} to start")
        requested = time.monotonic()
        for task_id in (async_id, coop_id, stubborn_id):
            assert api.post(f"/v1/tasks/{task_id}/cancel").status_code == 200
        rows = {i: wait_status(api, i, timeout=20) for i in (async_id, coop_id, stubborn_id)}
        assert time.monotonic() - requested < 15
        assert proc.poll() is None
    for row in rows.values():
        assert row["status"] == "cancelled", row
        assert row["attempts"] == 1
    assert lines(tmp_path, "async_forever") == ["started", "cancelled"]
    assert lines(tmp_path, "cooperative") == ["started", "saw cancel"]
    assert lines(tmp_path, "stubborn") == ["started"]
    stubborn_log = rows[stubborn_id]["logs"][0]["output"]
    assert "stubborn: not stopping" in stubborn_log and "killed" in stubborn_log


@pytest.mark.parametrize("name, isolation", [("async_gil_hog", "process"),
                                             ("gil_hog", "thread")])
def test_task_holding_the_gil_longer_than_the_lease_keeps_it(short, tmp_path, name, isolation):
    url, api = short
    task_id = send(api, name, {"seconds": LEASE * 2.5})
    with python_worker(url, "workers_app:reg", "--isolation", isolation,
                       BW_TEST_DIR=str(tmp_path)):
        row = wait_status(api, task_id, timeout=60)
    assert row["status"] == "succeeded", row
    assert row["result"] == "survived"
    assert row["attempts"] == 1
    assert events(row) == ["claimed", "succeeded"]  # never "lost"


def test_thread_isolation_timeout_abandons_the_task_and_still_exits(short, tmp_path):
    url, api = short
    task_id = send(api, "stuck", {"seconds": 60}, timeout_seconds=1.0)
    with python_worker(url, "workers_app:reg", "--isolation", "thread", "--grace-period", "1",
                       BW_TEST_DIR=str(tmp_path)) as proc:
        row = wait_status(api, task_id, timeout=20)
        assert row["status"] == "failed" and row["error"]["type"] == "TimeoutError"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0  # the abandoned thread does not hold the exit


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_heartbeat_process_killed_is_restarted_and_keeps_the_lease(short, tmp_path):
    url, api = short
    task_id = send(api, "slow", {"seconds": LEASE * 3, "marker": "hb"})
    with python_worker(url, BW_TEST_DIR=str(tmp_path)) as proc:
        wait_for(lambda: lines(tmp_path, "hb") == ["start 1"], what="the task to start")
        [(hb_pid, _)] = [c for c in child_processes(proc.pid) if "branchwork.worker.heartbeat" in c[1]]
        os.kill(hb_pid, signal.SIGKILL)
        wait_for(lambda: [c for c in child_processes(proc.pid)
                          if "branchwork.worker.heartbeat" in c[1] and c[0] != hb_pid],
                 what="a new heartbeat process")
        row = wait_status(api, task_id, timeout=30)
    assert row["status"] == "succeeded" and row["attempts"] == 1
    assert events(row) == ["claimed", "succeeded"]


def test_result_refused_by_the_server_fails_that_task_only(make_server, tmp_path):
    server = make_server(max_payload_bytes=2000)
    with httpx.Client(base_url=server.url, timeout=30) as api:
        small = [send(api, "big_result", {"n": 10}, queue="math") for _ in range(3)]
        big = send(api, "big_result", {"n": 50_000}, queue="math")
        with python_worker(server.url, "workers_app:reg", "-q", "math",
                           BW_TEST_DIR=str(tmp_path)):
            rows = [wait_status(api, i) for i in [*small, big]]
    assert [r["status"] for r in rows] == ["succeeded"] * 3 + ["failed"]
    assert rows[0]["result"] == "x" * 10
    assert rows[3]["error"]["type"] == "ResultRefused"
    assert "413" in rows[3]["error"]["message"]



def test_worker_rides_out_a_server_restart(db_url, tmp_path):
    """Started before the server, the worker keeps trying; after a restart it carries on."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with python_worker(url, "workers_app:reg", "-q", "math", BW_TEST_DIR=str(tmp_path)) as w:
        with process_server(db_url, port=port, lease_seconds=LEASE), \
                httpx.Client(base_url=url, timeout=30) as api:
            before = send(api, "add", {"a": 1, "b": 1}, queue="math")
            assert wait_status(api, before)["status"] == "succeeded"
        time.sleep(1.0)  # server gone: the worker's claims and heartbeats fail meanwhile
        with process_server(db_url, port=port, lease_seconds=LEASE), \
                httpx.Client(base_url=url, timeout=30) as api:
            after = send(api, "add", {"a": 2, "b": 2}, queue="math")
            row = wait_status(api, after, timeout=30)
            assert row["status"] == "succeeded" and row["result"] == 4
            assert w.poll() is None

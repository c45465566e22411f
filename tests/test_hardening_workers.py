"""Issue 9, items 6 and 8, with real ``branchwork run-worker`` processes.

6. A worker killed with ``kill -9`` has its task run again within the lease time (plus one
   sweep), as the README promises, even with a backlog sent after it: the rescued task keeps
   its place in line instead of queueing behind everything sent since.
8. A second Ctrl-C releases the tasks the worker holds, so a ``max_retries=0`` task runs again
   at once on another worker and succeeds, instead of ending ``failed`` / ``LeaseExpired``.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime
from pathlib import Path

import httpx

from worker_helpers import python_worker, task, wait_for, wait_status

LEASE = 3.0
SWEEP = 0.2
BACKLOG = 200  # 0.05 s each at concurrency 1: about 10 s of work behind the victim


def _at(row: dict, event: str, attempt: int) -> float:
    [e] = [e for e in row["history"] if e["event"] == event and e["attempt"] == attempt]
    return datetime.fromisoformat(e["at"]).timestamp()


def test_killed_worker_task_runs_again_within_the_lease_despite_a_backlog(
        make_server, tmp_path: Path) -> None:
    server = make_server(lease_seconds=LEASE, sweep_interval_seconds=SWEEP)
    env = {"BW_TEST_DIR": str(tmp_path)}
    one = ("hardening_app:reg", "-q", "rescue", "-c", "1", "-b", "1")
    with httpx.Client(base_url=server.url, timeout=30) as api:
        victim = api.post("/v1/tasks", json={"name": "hang_once", "queue": "rescue",
                                             "max_retries": 1,
                                             "args": {"name": "victim"}}).json()["id"]
        with python_worker(server.url, *one, **env) as doomed:
            wait_for(lambda: (tmp_path / "victim.started").exists(), 30, what="victim running")
            with python_worker(server.url, *one, **env):
                ticks = [api.post("/v1/tasks", json={"name": "tick", "queue": "rescue",
                                                     "args": {"i": i}}).json()["id"]
                         for i in range(BACKLOG)]
                wait_status(api, ticks[0], "succeeded")  # the other worker is draining them
                os.killpg(doomed.pid, signal.SIGKILL)
                killed = time.time()
                row = wait_status(api, victim, "succeeded", timeout=LEASE + 20)
                again = _at(row, "claimed", 2) - killed
                assert again <= LEASE + SWEEP + 1.0, (
                    f"killed-to-running-again {again:.1f} s with a {LEASE} s lease")
                # the backlog was still there: it did not simply run out first
                assert task(api, ticks[-1])["status"] in {"queued", "running"}
        assert row["result"] == "ran again" and row["attempts"] == 2
        assert [e["event"] for e in row["history"]][:2] == ["claimed", "lost"]


def test_second_ctrl_c_releases_held_tasks(make_server, tmp_path: Path) -> None:
    server = make_server()  # the default 30 s lease: releasing is what makes it quick
    env = {"BW_TEST_DIR": str(tmp_path)}
    with httpx.Client(base_url=server.url, timeout=30) as api:
        tid = api.post("/v1/tasks", json={"name": "hang_once_no_retries", "queue": "rescue",
                                          "args": {"name": "held"}}).json()["id"]
        with python_worker(server.url, "hardening_app:reg", "-q", "rescue", **env) as first:
            wait_for(lambda: (tmp_path / "held.started").exists(), 30, what="task running")
            os.kill(first.pid, signal.SIGINT)
            time.sleep(0.5)
            os.kill(first.pid, signal.SIGINT)
            first.wait(15)
            assert first.returncode == 1
        assert task(api, tid)["status"] == "queued"  # handed back, not left to its lease
        with python_worker(server.url, "hardening_app:reg", "-q", "rescue", **env):
            row = wait_status(api, tid, timeout=20)
        assert row["status"] == "succeeded", row
        assert row["result"] == "ran again" and row["attempts"] == 1
        assert "lost" not in [e["event"] for e in row["history"]]
        assert "released" in [e["event"] for e in row["history"]]

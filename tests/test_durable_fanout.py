"""Parents that wait without holding a process (issue 11, item 6): in a ``durable=True`` task,
waiting on children suspends the parent, which resumes with their results once they have all
finished. Real server, real worker processes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from worker_helpers import child_processes, events, python_worker, send, wait_status

N = 1000


def _task_processes(pid: int) -> int:
    """The worker's processes that run tasks (its process pool's children): every child of
    the worker process except its heartbeat process."""
    return sum("heartbeat" not in cmdline for _, cmdline in child_processes(pid))


class ProcessSampler(threading.Thread):
    """Counts the worker's task processes every few milliseconds; ``most`` is the peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.most = 0
        self.samples = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.most = max(self.most, _task_processes(self.pid))
            self.samples += 1
            time.sleep(0.01)


@contextmanager
def sampling(pid: int) -> Iterator[ProcessSampler]:
    sampler = ProcessSampler(pid)
    sampler.start()
    try:
        yield sampler
    finally:
        sampler.done.set()
        sampler.join(5)


def _tree(api: httpx.Client, task_id: int) -> dict[str, Any]:
    return api.get(f"/v1/trees/{task_id}").json()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_thousand_children_under_a_concurrency_one_worker_use_one_process(
        api: httpx.Client, server: Any) -> None:
    parent = send(api, "fan_out", {"n": N})
    started = time.monotonic()
    with python_worker(server.url, "people_app:reg", "--concurrency", "1") as proc, \
            sampling(proc.pid) as sampler:
        done = wait_status(api, parent, timeout=120)
    elapsed = time.monotonic() - started
    assert done["status"] == "succeeded", done.get("error")
    assert done["result"] == sum(i * i for i in range(N))
    tree = _tree(api, parent)
    assert tree["total"] == N + 1 and tree["rollup"]["succeeded"] == N + 1  # sent once each
    # The parent waited suspended (no process), and ran again once the children were done.
    history = events(done)
    assert "suspended" in history and "resumed" in history
    # The report of the last child resumed it, in its own transaction: well before the
    # sweeper's next pass (5 s) could have.
    resumed = max(e["at"] for e in done["history"] if e["event"] == "resumed")
    last_child = max(c["finished_at"] for c in tree["tree"]["children"])
    gap = (datetime.fromisoformat(resumed) - datetime.fromisoformat(last_child)).total_seconds()
    assert 0 <= gap < 1.0, gap
    # One process ran all 1,001 tasks (a parent holding its process would have needed two).
    assert sampler.samples > 10 and sampler.most == 1, (sampler.most, sampler.samples)
    assert elapsed < 90, elapsed


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_without_durable_the_waiting_parent_keeps_its_process(api: httpx.Client,
                                                              server: Any) -> None:
    """What the sampler above would see without ``durable=True``: a second process."""
    parent = send(api, "fan_out_in_place", {"n": 20})
    with python_worker(server.url, "people_app:reg", "--concurrency", "1") as proc, \
            sampling(proc.pid) as sampler:
        done = wait_status(api, parent, timeout=60)
    assert done["result"] == sum(i * i for i in range(20))
    assert "suspended" not in events(done)
    assert sampler.most == 2, sampler.most


def test_child_run_in_a_loop_sends_each_child_once(api: httpx.Client, server: Any) -> None:
    loop = send(api, "one_by_one", {"n": 5})
    caught = send(api, "catches_failed_child")
    gathered = send(api, "afan_out", {"n": 20})
    with python_worker(server.url, "people_app:reg", "--concurrency", "1"):
        assert wait_status(api, loop, timeout=60)["result"] == [0, 1, 4, 9, 16]
        failed = wait_status(api, caught, timeout=60)
        assert wait_status(api, gathered, timeout=60)["result"] == sum(i * i for i in range(20))
    # Five waits, five resumes, and still five children: the replays found them by spawn key.
    tree = _tree(api, loop)
    assert tree["total"] == 6
    assert sorted(int(c["spawn_key"]) for c in tree["tree"]["children"]) == list(range(5))
    assert events(wait_status(api, loop)).count("resumed") == 5
    [child] = _tree(api, caught)["tree"]["children"]
    assert failed["result"] == {"failed_child": child["id"], "error": "child 7 refuses"}
    assert _tree(api, gathered)["total"] == 21


def test_a_parent_resumes_when_its_children_are_cancelled_outside_any_report(
        api: httpx.Client, server: Any) -> None:
    """No report finishes a cancelled queued child: the sweeper resumes the parent, whose
    wait raises the first child's TaskCancelled."""
    parent = send(api, "waits_on_parked")
    with python_worker(server.url, "people_app:reg", "--concurrency", "1", "-q", "default"):
        wait_status(api, parent, "waiting", timeout=60)
        first, second = (c["id"] for c in _tree(api, parent)["tree"]["children"])
        assert api.post(f"/v1/tasks/{first}/cancel").status_code == 200
        time.sleep(6)  # over a pass of the sweeper: one child is still queued
        assert api.get(f"/v1/tasks/{parent}").json()["status"] == "waiting"
        assert api.post(f"/v1/tasks/{second}/cancel").status_code == 200
        done = wait_status(api, parent, timeout=30)
    assert done["status"] == "succeeded" and done["result"] == {"cancelled": first}

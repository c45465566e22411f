"""Durable sleep (docs/durable.md): sleeping tasks hold no worker process and no lease, and
wake on time. Real server, one real worker process with a small pool of task processes."""

from __future__ import annotations

import time
from datetime import datetime

import httpx

from worker_helpers import child_processes, python_worker, wait_for

N = 1000
SLEEP = 2.0
PROCESSES = 4


def _counts(api: httpx.Client) -> dict[str, int]:
    [queue] = [q for q in api.get("/v1/queues").json()["queues"] if q["name"] == "sleepy"]
    return queue


def _asleep(api: httpx.Client) -> list[dict]:
    """Tasks queued again for later than they were sent: they reached their sleep."""
    rows = api.get("/v1/tasks", params={"queue": "sleepy", "status": "queued",
                                        "limit": N}).json()["tasks"]
    return [r for r in rows if _at(r["run_at"]) > _at(r["created_at"]) + SLEEP / 2]


def _at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_a_thousand_sleeping_tasks_hold_no_worker_and_wake_on_time(make_server, tmp_path):
    server = make_server()
    api = httpx.Client(base_url=server.url, timeout=60)
    sent = api.post("/v1/tasks/batch", json={"tasks": [
        {"name": "sleeper", "queue": "sleepy", "args": {"n": i, "seconds": SLEEP}}
        for i in range(N)]})
    assert sent.status_code == 201, sent.text
    ids = [t["id"] for t in sent.json()["tasks"]]
    with python_worker(server.url, "durable_app:reg", "--queue", "sleepy", "--concurrency",
                       str(N), "--processes", str(PROCESSES), "--log-level", "warning",
                       BW_TEST_DIR=str(tmp_path)) as proc:
        # Every task reaches its sleep and ends its attempt: all are queued again, due later,
        # none is running or done.
        wait_for(lambda: len(_asleep(api)) == N, timeout=SLEEP * 0.9 + 30, interval=0.02,
                 what="all tasks asleep at once")
        sleeping = _counts(api)
        # While they sleep: the worker has no more processes than its small pool (no
        # process per sleeping task) and the server holds no lease for it.
        task_processes = [c for _, c in child_processes(proc.pid)
                          if "branchwork.worker.child" in c]
        assert len(task_processes) <= PROCESSES, task_processes
        assert sleeping["running"] == 0 and sleeping["waiting"] == 0
        assert sleeping["queued"] == N and sleeping["succeeded"] == 0
        wait_for(lambda: _counts(api)["succeeded"] == N, timeout=60, interval=0.2,
                 what="all tasks to wake and finish")
    # Each woke within a second of its due time: its second claim (``started_at``) came less
    # than 1 s after the sleep's due time (its ``run_at``; a claim leaves run_at as it is).
    rows = api.get("/v1/tasks", params={"queue": "sleepy", "limit": N}).json()["tasks"]
    assert len(rows) == N and all(r["status"] == "succeeded" for r in rows)
    assert all(r["result"] == r["args"]["n"] and r["attempts"] == 1 for r in rows)
    lateness = [_at(r["started_at"]) - _at(r["run_at"]) for r in rows]
    # The due time is the one the sleep stored, and there were two claims (a sample).
    for task_id in ids[:: N // 20]:
        row = api.get(f"/v1/tasks/{task_id}").json()
        [step] = row["steps"]
        assert step["kind"] == "sleep" and _at(step["result"]["until"]) == _at(row["run_at"])
        assert [e["event"] for e in row["history"]].count("claimed") == 2
    lateness.sort()
    assert lateness[0] >= -0.01, lateness[:5]  # never early
    assert lateness[-1] < 1.0, (lateness[len(lateness) // 2], lateness[-10:])
    api.close()
    print(f"\nwake-up lateness: median {lateness[N // 2] * 1000:.0f} ms, "
          f"max {lateness[-1] * 1000:.0f} ms ({time.strftime('%H:%M:%S')})")

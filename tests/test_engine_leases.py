"""Leases and timeouts enforced by the server: dead workers lose their tasks, slow attempts
are failed, heartbeats keep a lease alive."""

from __future__ import annotations

import time

import httpx
import psycopg

from servers import ThreadServer

LEASE = 1.0
SWEEP = 0.2


def wait_for(predicate, timeout: float, step: float = 0.05) -> float:
    """Seconds until ``predicate()`` held; fails after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, "condition not reached in time"
        time.sleep(step)
    return time.monotonic() - start


def status(c: httpx.Client, tid: int) -> str:
    return c.get(f"/v1/tasks/{tid}").json()["status"]


def test_expired_lease_requeues_then_fails_as_lost(make_server) -> None:
    server: ThreadServer = make_server(lease_seconds=LEASE, sweep_interval_seconds=SWEEP)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        tid = c.post("/v1/tasks", json={"name": "fragile", "max_retries": 1}).json()["id"]
        [t] = c.post("/v1/claim", json={"worker_id": "dies"}).json()["tasks"]
        assert t["attempts"] == 1
        # the worker dies: no heartbeat. Back in the queue within lease + sweep (+ slack).
        took = wait_for(lambda: status(c, tid) == "queued", LEASE + SWEEP + 2.0)
        assert took >= LEASE - 0.1
        row = c.get(f"/v1/tasks/{tid}").json()
        assert row["attempts"] == 1 and row["error"]["type"] == "LeaseExpired"
        [t2] = c.post("/v1/claim", json={"worker_id": "dies-too"}).json()["tasks"]
        assert t2["attempts"] == 2 and t2["lease_token"] != t["lease_token"]
        # no retries left: failed as lost
        wait_for(lambda: status(c, tid) == "failed", LEASE + SWEEP + 2.0)
        row = c.get(f"/v1/tasks/{tid}").json()
        assert row["error"]["type"] == "LeaseExpired" and row["finished_at"]
        events = [(e["event"], e["attempt"], e["worker_id"]) for e in row["history"]]
        assert events == [("claimed", 1, "dies"), ("lost", 1, "dies"),
                          ("claimed", 2, "dies-too"), ("lost", 2, "dies-too")]
        # the dead worker's late report changes nothing
        late = c.post(f"/v1/tasks/{tid}/complete", json={"lease_token": t2["lease_token"]})
        assert late.status_code == 409
        assert status(c, tid) == "failed"


def test_heartbeats_keep_the_lease(make_server) -> None:
    server: ThreadServer = make_server(lease_seconds=LEASE, sweep_interval_seconds=SWEEP)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        tid = c.post("/v1/tasks", json={"name": "slow"}).json()["id"]
        [t] = c.post("/v1/claim", json={"worker_id": "alive"}).json()["tasks"]
        lease = [{"id": tid, "lease_token": t["lease_token"]}]
        end = time.monotonic() + 3 * LEASE
        while time.monotonic() < end:
            hb = c.post("/v1/heartbeat", json={"worker_id": "alive", "tasks": lease}).json()
            assert hb["lost"] == []
            time.sleep(LEASE / 4)
        assert status(c, tid) == "running"
        done = c.post(f"/v1/tasks/{tid}/complete", json={"lease_token": t["lease_token"]})
        assert done.status_code == 200 and status(c, tid) == "succeeded"


def test_timeout_is_enforced_by_the_server(make_server) -> None:
    # A long lease, and a worker that heartbeats faithfully: only the timeout can end it.
    server: ThreadServer = make_server(lease_seconds=30, sweep_interval_seconds=SWEEP)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        tid = c.post("/v1/tasks", json={"name": "hangs", "timeout_seconds": 1.0,
                                        "max_retries": 1, "retry_delay_seconds": 0}).json()["id"]
        [t] = c.post("/v1/claim", json={"worker_id": "w"}).json()["tasks"]
        lease = [{"id": tid, "lease_token": t["lease_token"]}]
        start = time.monotonic()
        while status(c, tid) == "running":
            assert time.monotonic() - start < 1.0 + SWEEP + 2.0
            c.post("/v1/heartbeat", json={"worker_id": "w", "tasks": lease})
            time.sleep(0.1)
        assert time.monotonic() - start >= 0.9
        row = c.get(f"/v1/tasks/{tid}").json()
        assert row["status"] == "queued" and row["error"]["type"] == "TimeoutError"
        hb = c.post("/v1/heartbeat", json={"worker_id": "w", "tasks": lease}).json()
        assert hb["lost"] == [tid]  # the worker learns its attempt is over
        # second attempt also hangs: out of retries, failed as timed out
        [t] = c.post("/v1/claim", json={"worker_id": "w", "wait_seconds": 3}).json()["tasks"]
        wait_for(lambda: status(c, tid) == "failed", 1.0 + SWEEP + 2.0)
        row = c.get(f"/v1/tasks/{tid}").json()
        assert row["error"]["type"] == "TimeoutError" and row["attempts"] == 2
        assert [e["event"] for e in row["history"]] == [
            "claimed", "timed_out", "claimed", "timed_out"]
        assert row["history"][-1]["status"] == "failed"


def test_sweeps_by_two_replicas_rescue_each_task_once(make_server, db_url: str) -> None:
    a: ThreadServer = make_server(lease_seconds=LEASE, sweep_interval_seconds=0.05)
    b: ThreadServer = make_server(lease_seconds=LEASE, sweep_interval_seconds=0.05)
    with httpx.Client(base_url=a.url, timeout=30) as c:
        c.post("/v1/tasks/batch", json={"tasks": [{"name": "t", "max_retries": 3}] * 200})
        got = c.post("/v1/claim", json={"worker_id": "dies", "limit": 200}).json()["tasks"]
        assert len(got) == 200
        wait_for(lambda: len(c.get("/v1/tasks", params={"status": "queued", "limit": 1000})
                             .json()["tasks"]) == 200, LEASE + 3)
    with psycopg.connect(db_url) as conn:
        per_task = conn.execute(
            "SELECT count(*) FILTER (WHERE event = 'lost') FROM task_events GROUP BY task_id"
        ).fetchall()
    assert [n for (n,) in per_task] == [1] * 200
    with httpx.Client(base_url=b.url, timeout=30) as c:
        events = [e["event"] for e in c.get(f"/v1/tasks/{got[0]['id']}").json()["history"]]
        assert events == ["claimed", "lost"]

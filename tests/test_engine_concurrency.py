"""Concurrent claimers, queue concurrency limits and the NOTIFY-driven long-poll."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg

from servers import ThreadServer
from worker_helpers import wait_for


def send_batch(c: httpx.Client, tasks: list[dict]) -> list[int]:
    resp = c.post("/v1/tasks/batch", json={"tasks": tasks})
    assert resp.status_code == 201, resp.text
    return [t["id"] for t in resp.json()["tasks"]]


def test_concurrent_claimers_never_share_a_task(make_server, db_url: str) -> None:
    server: ThreadServer = make_server(lease_seconds=120, pool_max_size=10)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        ids = send_batch(c, [{"name": "t", "args": i} for i in range(2000)])
    claimed: list[int] = []
    lock = threading.Lock()

    def claimer(n: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            while True:
                got = c.post("/v1/claim", json={"worker_id": f"w{n}", "limit": 7}).json()["tasks"]
                if not got:
                    return
                with lock:
                    claimed.extend(t["id"] for t in got)
                c.post("/v1/tasks/report", json={"worker_id": f"w{n}", "results": [
                    {"id": t["id"], "lease_token": t["lease_token"], "outcome": "succeeded"}
                    for t in got]})

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(claimer, range(16)))
    counts = Counter(claimed)
    assert [i for i, n in counts.items() if n > 1] == []
    assert sorted(claimed) == sorted(ids)
    with psycopg.connect(db_url) as conn:
        claims = conn.execute(
            "SELECT task_id, count(*) FROM task_events WHERE event = 'claimed' "
            "GROUP BY task_id HAVING count(*) <> 1").fetchall()
        assert claims == []
        assert conn.execute("SELECT count(*) FROM tasks WHERE status = 'succeeded'"
                            ).fetchone()[0] == 2000


def test_concurrency_limit_holds_under_concurrent_claims(make_server, db_url: str) -> None:
    limit = 3
    server: ThreadServer = make_server(lease_seconds=120, pool_max_size=10)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.put("/v1/queues/limited", json={"concurrency_limit": limit}).status_code == 200
        send_batch(c, [{"name": "t", "queue": "limited"} for _ in range(240)])
    held = 0
    max_held = 0
    lock = threading.Lock()
    stop = threading.Event()
    samples: list[int] = []

    def sampler() -> None:
        with psycopg.connect(db_url, autocommit=True) as conn:
            while not stop.is_set():
                samples.append(conn.execute(
                    "SELECT count(*) FROM tasks WHERE queue = 'limited' AND status = 'running'"
                ).fetchone()[0])

    def claimer(n: int) -> int:
        nonlocal held, max_held
        done = 0
        with httpx.Client(base_url=server.url, timeout=30) as c:
            while True:
                got = c.post("/v1/claim", json={"worker_id": f"w{n}", "queues": ["limited"],
                                                "limit": 5, "wait_seconds": 0.5}).json()["tasks"]
                if not got:
                    if c.get("/v1/tasks", params={"queue": "limited", "status": "queued",
                                                  "limit": 1}).json()["tasks"] == []:
                        return done
                    continue
                with lock:
                    held += len(got)
                    max_held = max(max_held, held)
                time.sleep(0.005)
                with lock:
                    held -= len(got)
                c.post("/v1/tasks/report", json={"worker_id": f"w{n}", "results": [
                    {"id": t["id"], "lease_token": t["lease_token"], "outcome": "succeeded"}
                    for t in got]})
                done += len(got)

    watcher = threading.Thread(target=sampler)
    watcher.start()
    try:
        with ThreadPoolExecutor(12) as pool:
            done = sum(pool.map(claimer, range(12)))
    finally:
        stop.set()
        watcher.join()
    assert done == 240
    assert max_held <= limit, max_held
    assert max(samples) <= limit, max(samples)
    assert max_held == limit  # the limit was reached, so the check above meant something
    # a limit of 0 stops the queue; raising it lets claims through again
    with httpx.Client(base_url=server.url, timeout=30) as c:
        c.put("/v1/queues/limited", json={"concurrency_limit": 0})
        send_batch(c, [{"name": "t", "queue": "limited"}])
        assert c.post("/v1/claim", json={"worker_id": "x", "queues": ["limited"]}
                      ).json()["tasks"] == []
        c.put("/v1/queues/limited", json={"concurrency_limit": None})
        assert len(c.post("/v1/claim", json={"worker_id": "x", "queues": ["limited"]}
                          ).json()["tasks"]) == 1


def test_concurrency_limit_through_glob_and_batch_claims(make_server) -> None:
    server: ThreadServer = make_server(lease_seconds=120)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        c.put("/v1/queues/gpu.a", json={"concurrency_limit": 2})
        send_batch(c, [{"name": "t", "queue": "gpu.a"} for _ in range(10)]
                   + [{"name": "t", "queue": "gpu.b"} for _ in range(10)])
        got = c.post("/v1/claim", json={"worker_id": "w", "queues": ["gpu.*"], "limit": 8}
                     ).json()["tasks"]
        assert Counter(t["queue"] for t in got) == {"gpu.a": 2, "gpu.b": 6}
        more = c.post("/v1/claim", json={"worker_id": "w", "queues": ["gpu.a"], "limit": 8}
                      ).json()["tasks"]
        assert more == []


def test_long_poll_is_woken_by_notify(make_server) -> None:
    # The fallback poll is 30 s, so only NOTIFY can wake the claim within a second.
    server: ThreadServer = make_server(poll_interval_seconds=30, max_wait_seconds=30)
    result: dict = {}

    def waiter() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            start = time.monotonic()
            resp = c.post("/v1/claim", json={"worker_id": "w", "wait_seconds": 10})
            result["tasks"] = resp.json()["tasks"]
            result["returned"] = time.monotonic()
            result["waited"] = time.monotonic() - start

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(1.0)  # the claim is waiting by now
    with httpx.Client(base_url=server.url, timeout=30) as c:
        sent_at = time.monotonic()
        tid = c.post("/v1/tasks", json={"name": "wake"}).json()["id"]
    thread.join(15)
    assert [t["id"] for t in result["tasks"]] == [tid]
    latency = result["returned"] - sent_at
    print(f"send-to-claim latency of a waiting claim: {latency * 1000:.1f} ms")
    assert latency < 1.0
    assert result["waited"] >= 0.9


def test_waiting_claims_hold_no_connection(make_server) -> None:
    """20 claims wait on a pool of 2 connections; the server keeps answering meanwhile."""
    server: ThreadServer = make_server(pool_min_size=1, pool_max_size=2,
                                       poll_interval_seconds=30)
    results: list[list[dict]] = []
    lock = threading.Lock()

    def waiter(n: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            got = c.post("/v1/claim", json={"worker_id": f"w{n}", "queues": ["idle"],
                                            "wait_seconds": 8}).json()["tasks"]
            with lock:
                results.append(got)

    threads = [threading.Thread(target=waiter, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        start = time.monotonic()
        for _ in range(5):
            assert c.get("/v1/queues").status_code == 200
        assert time.monotonic() - start < 2.0
        assert len(server.app.state.server.notifier._subs) == 20
        send_batch(c, [{"name": "t", "queue": "idle"} for _ in range(20)])
    for t in threads:
        t.join(15)
    assert sorted(len(r) for r in results) == [1] * 20


def test_delayed_task_wakes_a_waiting_claim_on_time(make_server) -> None:
    server: ThreadServer = make_server(poll_interval_seconds=30, max_wait_seconds=30)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        c.post("/v1/tasks", json={"name": "soon", "delay_seconds": 1.0})
        start = time.monotonic()
        got = c.post("/v1/claim", json={"worker_id": "w", "wait_seconds": 10}).json()["tasks"]
        waited = time.monotonic() - start
    assert len(got) == 1
    assert 0.8 < waited < 2.5


def test_claim_ends_when_client_goes_away(make_server) -> None:
    server: ThreadServer = make_server(poll_interval_seconds=30, max_wait_seconds=30)
    notifier = server.app.state.server.notifier
    with httpx.Client(base_url=server.url, timeout=0.5) as c, \
            contextlib.suppress(httpx.ReadTimeout):
        c.post("/v1/claim", json={"worker_id": "gone", "wait_seconds": 20})
    deadline = time.monotonic() + 3
    while notifier._subs and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not notifier._subs  # the server stopped waiting for the departed client
    with httpx.Client(base_url=server.url, timeout=30) as c:
        tid = c.post("/v1/tasks", json={"name": "t"}).json()["id"]
        got = c.post("/v1/claim", json={"worker_id": "here"}).json()["tasks"]
        assert [t["id"] for t in got] == [tid]
        events = c.get(f"/v1/tasks/{tid}").json()["history"]
        assert [(e["event"], e["worker_id"]) for e in events] == [("claimed", "here")]


def test_queue_settings_reach_other_replicas(make_server) -> None:
    """Each replica caches queue settings; a change on one reaches the others via NOTIFY."""
    a: ThreadServer = make_server(lease_seconds=120)
    b: ThreadServer = make_server(lease_seconds=120)
    with httpx.Client(base_url=a.url, timeout=30) as ca, \
            httpx.Client(base_url=b.url, timeout=30) as cb:
        send_batch(ca, [{"name": "t", "queue": "shared"} for _ in range(10)])
        assert len(cb.post("/v1/claim", json={"worker_id": "w", "queues": ["shared"]}
                           ).json()["tasks"]) == 1  # b has read (and cached) the settings
        ca.put("/v1/queues/shared", json={"paused": True})
        time.sleep(0.3)
        assert cb.post("/v1/claim", json={"worker_id": "w", "queues": ["sh*"], "limit": 5}
                       ).json()["tasks"] == []
        ca.put("/v1/queues/shared", json={"paused": False, "concurrency_limit": 3})
        time.sleep(0.3)
        got = cb.post("/v1/claim", json={"worker_id": "w", "queues": ["shared"], "limit": 5}
                      ).json()["tasks"]
        assert len(got) == 2  # 1 already running + 2 = the limit of 3


def test_completion_frees_a_slot_for_a_waiting_claim(make_server) -> None:
    """In a queue at its limit, a finished task wakes a waiting claim (not the 30 s poll)."""
    server: ThreadServer = make_server(poll_interval_seconds=30, max_wait_seconds=30,
                                       lease_seconds=120)
    notifier = server.app.state.server.notifier
    with httpx.Client(base_url=server.url, timeout=30) as c:
        c.put("/v1/queues/one", json={"concurrency_limit": 1})
        send_batch(c, [{"name": "t", "queue": "one"} for _ in range(2)])
        [first] = c.post("/v1/claim", json={"worker_id": "w1", "queues": ["one"]}
                         ).json()["tasks"]
        result: dict = {}

        def waiter() -> None:
            with httpx.Client(base_url=server.url, timeout=60) as w:
                result["tasks"] = w.post("/v1/claim", json={
                    "worker_id": "w2", "queues": ["one"], "wait_seconds": 30}).json()["tasks"]

        thread = threading.Thread(target=waiter)
        thread.start()
        # The claim found the queue at its limit and waits for a wake-up.
        wait_for(lambda: notifier.waiting == 1, what="the second claim waiting")
        assert "tasks" not in result  # held back by the limit
        done = c.post(f"/v1/tasks/{first['id']}/complete",
                      json={"lease_token": first["lease_token"]})
        assert done.status_code == 200, done.text
        # Its fallback poll and its deadline are both 30 s away: a claim that ends before
        # then was woken by the completion.
        thread.join(20)
        assert not thread.is_alive(), "the completion did not wake the waiting claim"
        assert len(result["tasks"]) == 1


def test_wait_is_capped_by_the_server(make_server) -> None:
    server: ThreadServer = make_server(max_wait_seconds=1.0, poll_interval_seconds=0.3)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        start = time.monotonic()
        got = c.post("/v1/claim", json={"worker_id": "w", "wait_seconds": 3600}).json()
        waited = time.monotonic() - start
    assert got == {"tasks": []}
    assert 0.9 < waited < 3.0


def test_concurrent_sends_with_one_idempotency_key(make_server, db_url: str) -> None:
    server: ThreadServer = make_server()

    def sender(n: int) -> list[dict]:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            return [c.post("/v1/tasks", json={"name": "once", "idempotency_key": f"k{i}"}).json()
                    for i in range(20)]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(sender, range(8)))
    for i in range(20):
        per_key = [a[i] for a in answers]
        assert len({a["id"] for a in per_key}) == 1
        assert sorted(a["duplicate"] for a in per_key) == [False] + [True] * 7
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM tasks WHERE name = 'once'").fetchone()[0] == 20

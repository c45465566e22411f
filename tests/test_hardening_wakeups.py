"""Issue 9, item 4: a send wakes as many waiting claims as it made tasks ready, not every one.

Counted the way an operator would see it: ``branchwork_claim_queries_total`` on ``/metrics``
(every claim statement the server runs). With 200 claims waiting on one queue, a send of one
task must cost a handful of claim queries, not 200; the fallback poll is set far away so that
only wake-ups can cause queries.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time

import httpx

WAITERS = 200


def claim_queries(api: httpx.Client) -> int:
    text = api.get("/metrics").text
    return int(re.search(r"^branchwork_claim_queries_total (\d+)$", text, re.M).group(1))


def settle(api: httpx.Client, seconds: float = 1.0) -> int:
    """The counter once it has stopped moving for a moment."""
    last = claim_queries(api)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        time.sleep(seconds)
        now = claim_queries(api)
        if now == last:
            return now
        last = now
    return last


async def _waiters(url: str, n: int, claimed: list[int], ready: asyncio.Event,
                   stop: asyncio.Event) -> None:
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def one(i: int) -> None:
            while not stop.is_set():
                r = await client.post("/v1/claim", json={
                    "worker_id": f"w{i}", "queues": ["hot"], "wait_seconds": 20})
                claimed.extend(t["id"] for t in r.json()["tasks"])
                if r.json()["tasks"]:
                    return  # this worker is now busy with its task

        tasks = [asyncio.create_task(one(i)) for i in range(n)]
        ready.set()
        await stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def test_one_send_costs_o1_claim_queries_with_many_waiters(make_server) -> None:
    server = make_server(poll_interval_seconds=60, max_wait_seconds=30)
    claimed: list[int] = []
    loop = asyncio.new_event_loop()
    ready, stop = asyncio.Event(), asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(
        _waiters(server.url, WAITERS, claimed, ready, stop),), daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as api:
            # every waiter has made its two first tries (before and after subscribing)
            deadline = time.monotonic() + 60
            while claim_queries(api) < 2 * WAITERS and time.monotonic() < deadline:
                time.sleep(0.1)
            base = settle(api)
            assert base >= 2 * WAITERS, base
            one = api.post("/v1/tasks", json={"name": "t", "queue": "hot"}).json()["id"]
            deadline = time.monotonic() + 10
            while one not in claimed and time.monotonic() < deadline:
                time.sleep(0.01)
            assert claimed == [one]
            cost = settle(api) - base
            assert cost <= 5, f"one send caused {cost} claim queries with {WAITERS} waiting"

            five = [api.post("/v1/tasks", json={"name": "t", "queue": "hot"}).json()["id"]
                    for _ in range(5)]
            deadline = time.monotonic() + 10
            while len(claimed) < 6 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert sorted(claimed[1:]) == sorted(five)
            cost = settle(api) - base - cost
            assert cost <= 5 * 5, f"five sends caused {cost} claim queries"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)


def test_two_replicas_a_batch_wakes_enough_waiters_on_each(make_server) -> None:
    """A batch sent through one replica is claimed at once by waiters on both (each replica
    wakes as many of its own waiters as there are tasks), every task exactly once."""
    servers = [make_server(poll_interval_seconds=60, max_wait_seconds=30) for _ in range(2)]
    claimed: list[int] = []
    stops = [asyncio.Event() for _ in servers]  # one per event loop
    loops, threads = [], []
    for s, stop in zip(servers, stops, strict=True):
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_until_complete, args=(
            _waiters(s.url, 50, claimed, asyncio.Event(), stop),), daemon=True)
        thread.start()
        loops.append(loop)
        threads.append(thread)
    try:
        apis = [httpx.Client(base_url=s.url, timeout=30) for s in servers]
        for api in apis:
            deadline = time.monotonic() + 60
            while claim_queries(api) < 100 and time.monotonic() < deadline:
                time.sleep(0.1)
            settle(api, 0.5)
        sent = apis[0].post("/v1/tasks/batch", json={"tasks": [
            {"name": "t", "queue": "hot"} for _ in range(20)]}).json()["tasks"]
        ids = sorted(t["id"] for t in sent)
        deadline = time.monotonic() + 5  # far less than the 60 s fallback poll
        while len(claimed) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sorted(claimed) == ids  # each once, none left behind
        for api in apis:
            api.close()
    finally:
        for loop, stop in zip(loops, stops, strict=True):
            loop.call_soon_threadsafe(stop.set)
        for thread in threads:
            thread.join(30)

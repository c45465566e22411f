"""Rate limits (docs/flow-control.md): enforced in the claim, across server replicas and
worker processes, per key, and a claim whose only work is rate-limited waits for the next
free unit rather than polling."""

from __future__ import annotations

import asyncio
import bisect
import time
from contextlib import ExitStack
from datetime import timedelta

import httpx
import psycopg
from psycopg.rows import dict_row

import branchwork
from branchwork import ConcurrencyKey, Queue, RateLimit, Registry
from branchwork.app.store import limits as store
from flow_helpers import claim, tasks_of, ts, workers
from worker_helpers import wait_for


def _max_in_window(starts: list, period: timedelta) -> int:
    """The most starts in any half-open window [t, t + period) (it suffices to try the
    windows opening at a start)."""
    starts = sorted(starts)
    return max(bisect.bisect_left(starts, t + period) - i for i, t in enumerate(starts))


def test_ten_per_second_holds_in_every_window_across_replicas_and_workers(make_server) -> None:
    one, two = make_server(), make_server()
    n, burst = 215, 2
    with httpx.Client(base_url=one.url, timeout=30) as api, ExitStack() as stack:
        assert api.put("/v1/rate-limits/ten", json={"units": 10, "period_seconds": 1,
                                                    "burst": burst}).status_code == 200
        body = [{"name": "tick", "queue": "rated", "args": {"i": i},
                 "rate_limits": [{"limit": "ten"}]} for i in range(n)]
        assert api.post("/v1/tasks/batch", json={"tasks": body}).status_code == 201
        workers(stack, [one.url, two.url], 3, "rated")
        wait_for(lambda: len(tasks_of(api, "rated", "succeeded")) == n, timeout=60,
                 interval=1.0)
        starts = [ts(t["started_at"]) for t in tasks_of(api, "rated")]
    span = (max(starts) - min(starts)).total_seconds()
    assert span >= 20  # sampled over at least 20 s
    assert _max_in_window(starts, timedelta(seconds=1)) <= 10 + burst
    # ...and the limit is a rate, not a stall: the drain keeps close to 10/s.
    assert span < (n - burst) / 10 + 8


def test_keyed_limit_holds_per_key_not_across_keys(make_server) -> None:
    one, two = make_server(), make_server()
    with httpx.Client(base_url=one.url, timeout=30) as a, \
            httpx.Client(base_url=two.url, timeout=30) as b:
        # 1 unit a minute, 3 at once: a key gets 3 now, then nothing for 20 s.
        a.put("/v1/rate-limits/per-customer", json={"units": 1, "period_seconds": 60,
                                                    "burst": 2}).raise_for_status()
        body = [{"name": "tick", "queue": "rated", "args": {"i": i, "customer": c},
                 "rate_limits": [{"limit": "per-customer", "key_path": "customer"}]}
                for i in range(5) for c in ("acme", "globex")]
        a.post("/v1/tasks/batch", json={"tasks": body}).raise_for_status()
        got = claim(a, "rated", 2) + claim(b, "rated", 100) + claim(a, "rated", 100)
        per_key = {c: sum(t["args"]["customer"] == c for t in got) for c in ("acme", "globex")}
        assert per_key == {"acme": 3, "globex": 3}
        assert claim(b, "rated", 100) == []
        # The limit's state shows both keys' buckets.
        buckets = {x["key"] for x in a.get("/v1/rate-limits/per-customer").json()["buckets"]}
        assert buckets == {"acme", "globex"}


def test_waiting_claim_wakes_when_the_next_unit_frees(make_server) -> None:
    # The fallback poll is 30 s: only the server's own timer can wake the claim in time.
    server = make_server(poll_interval_seconds=30.0, max_wait_seconds=30.0)
    with httpx.Client(base_url=server.url, timeout=60) as api:
        api.put("/v1/rate-limits/slow", json={"units": 1, "period_seconds": 3}).raise_for_status()
        body = [{"name": "tick", "queue": "rated", "args": {"i": i},
                 "rate_limits": [{"limit": "slow"}]} for i in range(2)]
        api.post("/v1/tasks/batch", json={"tasks": body}).raise_for_status()
        [first] = claim(api, "rated", 10)
        granted = ts(api.get(f"/v1/tasks/{first['id']}").json()["started_at"])
        # Only rate-limited work left: a short long-poll returns empty, on time.
        t0 = time.monotonic()
        assert claim(api, "rated", 10, wait=0.5) == []
        assert time.monotonic() - t0 < 5
        # A long one wakes when the next unit frees, 3 s after the first grant.
        got = claim(api, "rated", 10, wait=25)
        assert len(got) == 1
        started = ts(api.get(f"/v1/tasks/{got[0]['id']}").json()["started_at"])
        waited = (started - granted).total_seconds()
        assert 3.0 <= waited < 8.0  # on the unit's time, well before the 30 s poll


def test_queue_rate_limit_applies_to_every_task_of_the_queue(api: httpx.Client) -> None:
    api.put("/v1/rate-limits/q-limit", json={"units": 1, "period_seconds": 60,
                                             "burst": 1}).raise_for_status()
    r = api.put("/v1/queues/plain/rate-limit", json={"limit": "q-limit"})
    assert r.status_code == 200 and r.json() == {"queue": "plain", "rate_limit": "q-limit"}
    body = [{"name": "tick", "queue": "plain", "args": {"i": i}} for i in range(5)]
    api.post("/v1/tasks/batch", json={"tasks": body}).raise_for_status()
    assert len(claim(api, "plain", 10)) == 2  # burst 1: two at once, then one a minute
    assert claim(api, "plain", 10) == []
    # Lifting it lets the rest through.
    api.put("/v1/queues/plain/rate-limit", json={"limit": None}).raise_for_status()
    assert len(claim(api, "plain", 10)) == 3


def test_limits_are_listed_changed_and_deleted(api: httpx.Client) -> None:
    r = api.put("/v1/rate-limits/openai", json={"units": 60, "period_seconds": 60})
    assert r.status_code == 200
    assert (r.json()["units"], r.json()["period_seconds"], r.json()["burst"]) == (60, 60.0, 0)
    api.put("/v1/rate-limits/openai", json={"units": 30, "period_seconds": 60, "burst": 5})
    [row] = api.get("/v1/rate-limits").json()["rate_limits"]
    assert (row["name"], row["units"], row["burst"]) == ("openai", 30, 5)
    api.post("/v1/tasks", json={"name": "tick", "queue": "rated", "args": {"i": 1},
                                "rate_limits": [{"limit": "openai"}]}).raise_for_status()
    assert api.delete("/v1/rate-limits/openai").json() == {"name": "openai", "deleted": True}
    assert api.get("/v1/rate-limits/openai").status_code == 404
    assert api.delete("/v1/rate-limits/openai").status_code == 404
    # A task that named a deleted limit is no longer held by it.
    assert len(claim(api, "rated", 10)) == 1


def test_python_api_writes_limits_and_sends_with_them(server, api: httpx.Client) -> None:
    reg = Registry()
    openai = RateLimit("openai", units=60, period_seconds=60, burst=9)
    per_customer = RateLimit("per-customer", units=10, period_seconds=1)

    @reg.task(queue=Queue("llm", rate_limit=openai))
    def summarize(doc_id: int) -> str:
        return str(doc_id)

    @reg.task(queue="accounts", rate_limits=[per_customer.use(key_path="customer_id")],
              concurrency=ConcurrencyKey(key_path="customer_id", limit=2))
    def sync_account(customer_id: str) -> None:
        return None

    branchwork.configure(url=server.url)
    try:
        first = summarize.send(42)
        sync_account.send("c-17")
        sync_account.with_config(rate_limits=[openai.use(units=2)],
                                 concurrency=ConcurrencyKey(key="bulk",
                                                            strategy="cancel_newest")).send("c-1")
        folded = sync_account.with_config(
            concurrency=ConcurrencyKey(key="bulk", strategy="cancel_newest")).send("c-2")
    finally:
        branchwork.configure()
    limits = {r["name"]: (r["units"], r["period_seconds"], r["burst"])
              for r in api.get("/v1/rate-limits").json()["rate_limits"]}
    assert limits == {"openai": (60, 60.0, 9), "per-customer": (10, 1.0, 0)}
    queues = {q["name"] for q in api.get("/v1/queues").json()["queues"]}
    assert {"llm", "accounts"} <= queues
    rows = {t["args"].get("customer_id", t["args"].get("doc_id")): t
            for t in api.get("/v1/tasks").json()["tasks"]}
    assert set(rows) == {42, "c-17", "c-1"}  # the folded send created no task
    assert folded.id == rows["c-1"]["id"]
    # Each starts: the limits have units free (burst 9, 10/s per customer).
    assert [t["id"] for t in claim(api, "llm", 10)] == [first.id]
    assert len(claim(api, "accounts", 10)) == 2


def test_the_rate_and_key_holds_say_when_and_who(api: httpx.Client, db_url: str) -> None:
    """What "why isn't it running?" reads (store/limits.py): the next unit's time by the
    claim's own rule, and the tasks holding a full key."""
    api.put("/v1/rate-limits/slow", json={"units": 1, "period_seconds": 60}).raise_for_status()
    body = [{"name": "tick", "queue": "rated", "args": {"i": i, "customer": "acme"},
             "rate_limits": [{"limit": "slow", "key_path": "customer"}],
             "concurrency_key": "acme", "concurrency_limit": 1} for i in range(2)]
    ids = [t["id"] for t in api.post("/v1/tasks/batch", json={"tasks": body}).json()["tasks"]]
    [first] = claim(api, "rated", 10)
    started = ts(api.get(f"/v1/tasks/{first['id']}").json()["started_at"])
    waiting = [i for i in ids if i != first["id"]][0]

    async def holds() -> tuple[list, dict | None]:
        conn = await psycopg.AsyncConnection.connect(db_url, row_factory=dict_row)
        async with conn, conn.cursor() as cur:
            return await store.rate_holds(cur, waiting), await store.key_holders(cur, waiting)

    rate, key = asyncio.run(holds())
    assert [(h["limit"], h["key"], h["units"]) for h in rate] == [("slow", "acme", 1)]
    assert rate[0]["next_unit_at"] == started + timedelta(seconds=60)
    assert key == {"queue": "rated", "key": "acme", "limit": 1, "running_ids": [first["id"]]}

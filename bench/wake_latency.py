"""Wake-up benchmark: send-to-start latency with 1, 100 and 1,000 claims waiting on one queue.

    python bench/wake_latency.py [--waiters 1,100,1000] [--sends 50]

Starts ``branchwork server`` on a fresh database (its own database on the PostgreSQL named by
BRANCHWORK_BENCH_DATABASE_URL or BRANCHWORK_TEST_DATABASE_URL, else an embedded one). For each
waiter count W, W long-poll claims wait on queue ``hot`` (each one a worker that claims again
as soon as it got its task, so W stay waiting); then single tasks are sent one at a time, and
each is timed from the start of its send request to the moment its claim answer arrives
(``send_to_start``), and on the server from ``created_at`` to ``started_at``. Also prints the
claim statements the server ran per send (``branchwork_claim_queries_total``), which is what
a send costs when many workers wait. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import time
from typing import Any

import httpx
import psycopg
from _common import FreshDatabase, start_server, stop


def _quantiles(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return {"p50_ms": round(statistics.median(values) * 1000, 2),
            "p95_ms": round(pick(0.95) * 1000, 2), "max_ms": round(values[-1] * 1000, 2)}


async def _claim_queries(client: httpx.AsyncClient) -> int:
    text = (await client.get("/metrics")).text
    match = re.search(r"^branchwork_claim_queries_total (\d+)$", text, re.M)
    return int(match.group(1)) if match else 0


async def run(url: str, db_url: str, waiters: int, sends: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=waiters + 20, max_keepalive_connections=waiters + 20)
    arrived: dict[int, float] = {}
    got = asyncio.Condition()
    stop_event = asyncio.Event()
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def worker(i: int) -> None:
            while not stop_event.is_set():
                r = await client.post("/v1/claim", json={
                    "worker_id": f"w{i}", "queues": ["hot"], "wait_seconds": 30})
                now = time.perf_counter()
                for t in r.json().get("tasks", []):
                    async with got:
                        arrived[t["id"]] = now
                        got.notify_all()

        workers = [asyncio.create_task(worker(i)) for i in range(waiters)]
        before = await _claim_queries(client)
        for _ in range(1200):  # every waiter has made its two first tries (up to 2 min)
            if await _claim_queries(client) >= before + 2 * waiters:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        latencies: list[float] = []
        ids: list[int] = []
        q0 = await _claim_queries(client)
        for _ in range(sends):
            started = time.perf_counter()
            r = await client.post("/v1/tasks", json={"name": "bench", "queue": "hot"})
            tid = r.json()["id"]
            async with got:
                await asyncio.wait_for(got.wait_for(lambda: tid in arrived), 60)  # noqa: B023
            latencies.append(arrived[tid] - started)
            ids.append(tid)
            await asyncio.sleep(0.05)  # the claimer goes back to waiting
        queries = await _claim_queries(client) - q0
        stop_event.set()
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    with psycopg.connect(db_url) as conn:
        server_side = [r[0] for r in conn.execute(
            "SELECT EXTRACT(EPOCH FROM started_at - created_at)::float8 FROM tasks "
            "WHERE id = ANY(%s)", (ids,))]
    return {"waiters": waiters, "sends": sends, "send_to_start": _quantiles(latencies),
            "created_to_started": _quantiles(server_side),
            "claim_queries_per_send": round(queries / sends, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--waiters", default="1,100,1000")
    parser.add_argument("--sends", type=int, default=50)
    args = parser.parse_args()
    db = FreshDatabase(("BRANCHWORK_BENCH_DATABASE_URL", "BRANCHWORK_TEST_DATABASE_URL"))
    results = []
    try:
        # The fallback poll far away: every start below is a NOTIFY wake-up.
        proc, url = start_server(db.url, {"BRANCHWORK_POLL_INTERVAL_SECONDS": "60",
                                          "BRANCHWORK_MAX_WAIT_SECONDS": "60"})
        try:
            for n in (int(x) for x in args.waiters.split(",")):
                results.append(asyncio.run(run(url, db.url, n, args.sends)))
        finally:
            stop(proc)
    finally:
        db.drop()
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                      "results": results}, indent=2))


if __name__ == "__main__":
    main()

"""What authentication costs per request: an open server, the admin token, a stored worker
token (scoped, resolved from the per-process cache) and a wrong token.

    python bench/tokens_auth.py [--requests 2000] [--concurrency 8]

Starts ``branchwork server`` on a fresh database (BRANCHWORK_BENCH_DATABASE_URL or
BRANCHWORK_TEST_DATABASE_URL, else an embedded PostgreSQL), twice: open, then with
``BRANCHWORK_API_TOKEN``. Each case sends ``--requests`` empty heartbeats (``POST
/v1/heartbeat`` with no leases: no database work beyond the worker sighting) from
``--concurrency`` connections and prints JSON: requests per second and latency quantiles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
from typing import Any

import httpx
from _common import FreshDatabase, start_server, stop

ADMIN = "bench-admin-token"
BODY = {"worker_id": "bench", "tasks": []}


async def _run(url: str, token: str | None, requests: int, concurrency: int,
               expect: int) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    latencies: list[float] = []
    left = requests

    async def one(client: httpx.AsyncClient) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            started = time.perf_counter()
            r = await client.post("/v1/heartbeat", json=BODY, headers=headers)
            latencies.append(time.perf_counter() - started)
            assert r.status_code == expect, r.text

    clients = [httpx.AsyncClient(base_url=url, timeout=30) for _ in range(concurrency)]
    for c in clients:  # warm: connections open, the token cache loaded
        await c.post("/v1/heartbeat", json=BODY, headers=headers)
    started = time.perf_counter()
    await asyncio.gather(*(one(c) for c in clients))
    elapsed = time.perf_counter() - started
    for c in clients:
        await c.aclose()
    latencies.sort()
    return {"requests_per_s": round(requests / elapsed),
            "p50_ms": round(statistics.median(latencies) * 1000, 2),
            "p95_ms": round(latencies[int(0.95 * len(latencies))] * 1000, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    db = FreshDatabase(("BRANCHWORK_BENCH_DATABASE_URL", "BRANCHWORK_TEST_DATABASE_URL"))
    out: dict[str, Any] = {"machine": platform.machine(), "requests": args.requests,
                           "concurrency": args.concurrency}
    try:
        proc, url = start_server(db.url, {})
        try:
            out["open"] = asyncio.run(_run(url, None, args.requests, args.concurrency, 200))
        finally:
            stop(proc)
        proc, url = start_server(db.url, {"BRANCHWORK_API_TOKEN": ADMIN})
        try:
            made = httpx.post(f"{url}/v1/tokens", headers={"authorization": f"Bearer {ADMIN}"},
                              json={"name": "bench", "role": "worker", "queues": ["*"]})
            worker = made.json()["token"]
            for case, token, expect in (("admin_token", ADMIN, 200),
                                        ("worker_token", worker, 200),
                                        ("wrong_token", worker[:-2] + "xx", 401)):
                out[case] = asyncio.run(_run(url, token, args.requests, args.concurrency,
                                             expect))
        finally:
            stop(proc)
    finally:
        db.drop()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

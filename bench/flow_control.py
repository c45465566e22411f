"""Flow-control benchmark: one worker draining a queue with 1,000 concurrency keys (limit 5
each), with a rate limit set above the drain rate, and with no limits, side by side.

    python bench/flow_control.py [N] [--concurrency 100] [--batch 100] [--cases none,keys,rate]

Starts ``branchwork server`` on a fresh database (as ``worker_drain.py`` does), then for each
case sends N no-op tasks and runs one ``run-worker`` process until the queue is empty. Prints
JSON: tasks/s from the first claim to the last completion (the tasks' own timestamps), CPU
seconds per 10,000 tasks of the worker, the server and PostgreSQL over that window (sampled
with psutil, ``_measure.py``), and each case's rate as a fraction of the unlimited drain
(docs/performance.md, "Flow control"; the target is >= 0.8).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any

import httpx
import psycopg
from _common import FreshDatabase, start_server, stop
from _measure import CpuSampler, per_10k, wait_for
from worker_drain import start_worker

KEYS = 1000
KEY_LIMIT = 5
# Far above what one worker drains: the limit is in play on every claim, never the brake.
RATE = {"units": 1_000_000, "period_seconds": 1.0, "burst": 10_000}


def bodies(case: str, n: int) -> list[dict[str, Any]]:
    base = {"name": "noop", "queue": f"flow_{case}"}
    if case == "keys":
        return [{**base, "concurrency_key": f"k{i % KEYS}", "concurrency_limit": KEY_LIMIT}
                for i in range(n)]
    if case == "rate":
        return [{**base, "rate_limits": [{"limit": "bench"}]} for _ in range(n)]
    return [base] * n


def send(url: str, items: list[dict[str, Any]], batch: int = 2000) -> None:
    with httpx.Client(base_url=url, timeout=300) as http:
        for offset in range(0, len(items), batch):
            http.post("/v1/tasks/batch",
                      json={"tasks": items[offset:offset + batch]}).raise_for_status()


def window(conn: psycopg.Connection, queue: str) -> tuple[int, int, float, float]:
    row = conn.execute(
        """SELECT count(*) FILTER (WHERE status = 'succeeded'),
                  count(*) FILTER (WHERE status NOT IN ('succeeded', 'failed', 'cancelled')),
                  extract(epoch FROM min(started_at)), extract(epoch FROM max(finished_at))
           FROM tasks WHERE queue = %s""", (queue,)).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), float(row[2] or 0), float(row[3] or 0)


def run_case(case: str, url: str, db: FreshDatabase, server_pid: int, n: int,
             concurrency: int, batch: int, limit: float) -> dict[str, Any]:
    queue = f"flow_{case}"
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("DELETE FROM task_events; DELETE FROM task_logs; DELETE FROM tasks")
        conn.execute("VACUUM ANALYZE tasks")
        send(url, bodies(case, n))
        cpu = CpuSampler(db.server, [db.name])
        cpu.add("server", server_pid)
        worker = start_worker(url, queue, concurrency, batch, [])
        cpu.add("worker", worker.pid)
        try:
            wait_for(lambda: window(conn, queue)[1] == 0, limit, f"drain {case}")
            done, _, first, last = window(conn, queue)
            used = cpu.between(first, last, ["worker", "server", "postgres"])
        finally:
            stop(worker)
            cpu.close()
    seconds = last - first
    return {"case": case, "tasks": done, "seconds": round(seconds, 3),
            "tasks_per_s": round(done / seconds) if seconds else None,
            "cpu_s_per_10k": per_10k(used, done)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=30_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--limit", type=float, default=600.0, help="seconds per drain at most")
    parser.add_argument("--cases", default="none,keys,rate",
                        help="which drains, in order (the first is the baseline of vs_none)")
    args = parser.parse_args()
    db = FreshDatabase(("BRANCHWORK_BENCH_DATABASE_URL", "BRANCHWORK_TEST_DATABASE_URL"))
    server, url = start_server(db.url, {"BRANCHWORK_MAX_WAIT_SECONDS": "5",
                                        "BRANCHWORK_POOL_MAX_SIZE": "10"})
    results = []
    try:
        httpx.put(f"{url}/v1/rate-limits/bench", json=RATE, timeout=30).raise_for_status()
        for case in args.cases.split(","):
            results.append(run_case(case, url, db, server.pid, args.n, args.concurrency,
                                    args.batch, args.limit))
            time.sleep(1)
    finally:
        stop(server)
        db.drop()
    base = results[0]["tasks_per_s"] or 0
    for r in results:
        r["vs_none"] = round(r["tasks_per_s"] / base, 3) if base and r["tasks_per_s"] else None
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                  "python": platform.python_version()},
                      "n": args.n, "concurrency": args.concurrency, "batch": args.batch,
                      "keys": KEYS, "key_limit": KEY_LIMIT, "rate_limit": RATE,
                      "results": results}, indent=2))


if __name__ == "__main__":
    main()

"""Engine benchmark over HTTP on loopback: batch send rate, full life-cycle throughput and
send-to-claim latency of an idle waiting worker. Prints one JSON document.

    python bench/engine.py                    # short run (well under 30 s)
    python bench/engine.py --tasks 100000     # longer

The server is a ``branchwork server`` subprocess (uvicorn picks uvloop and httptools when
installed) on a fresh database; clients are separate processes, so client CPU is not
server CPU. Database: ``BRANCHWORK_BENCH_DATABASE_URL`` names a PostgreSQL server on which a
new database is created and dropped afterwards; without it an embedded PostgreSQL is
started in a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import signal
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
from _common import FreshDatabase, start_server, stop

# ----- client processes -------------------------------------------------------------------

def producer(url: str, queue: str, count: int, batch: int, go: Any, out: mp.Queue) -> None:
    sent = 0
    with httpx.Client(base_url=url, timeout=60) as c:
        c.get("/health")
        out.put(("ready", 0, 0.0))
        go.wait()
        start = time.perf_counter()
        while sent < count:
            n = min(batch, count - sent)
            tasks = [{"name": "bench", "queue": queue, "args": {"i": sent + i}}
                     for i in range(n)]
            resp = c.post("/v1/tasks/batch", json={"tasks": tasks})
            resp.raise_for_status()
            sent += n
        out.put(("sent", sent, time.perf_counter() - start))


def consumer(url: str, queue: str, batch: int, stop_after: int, shared: Any, go: Any,
             out: mp.Queue) -> None:
    """Claims and completes in batches until ``stop_after`` tasks are done by all consumers."""
    done = 0
    with httpx.Client(base_url=url, timeout=60) as c:
        c.get("/health")
        out.put(("ready", 0, 0.0))
        go.wait()
        while shared.value < stop_after:
            got = c.post("/v1/claim", json={"worker_id": f"bench-{os.getpid()}",
                                            "queues": [queue], "limit": batch,
                                            "wait_seconds": 0.5}).json()["tasks"]
            if not got:
                continue
            resp = c.post("/v1/tasks/report", json={"results": [
                {"id": t["id"], "lease_token": t["lease_token"], "outcome": "succeeded",
                 "result": t["args"]} for t in got]})
            resp.raise_for_status()
            done += len(got)
            with shared.get_lock():
                shared.value += len(got)
    out.put(("done", done, 0.0))


def run_processes(ctx: Any, targets: list[tuple[Any, tuple]]) -> tuple[list[tuple], float]:
    """Start client processes, wait until all are connected, then time them from one signal."""
    out = ctx.Queue()
    go = ctx.Event()
    procs = [ctx.Process(target=fn, args=(*args, go, out)) for fn, args in targets]
    for p in procs:
        p.start()
    for _ in procs:
        assert out.get(timeout=60)[0] == "ready"
    start = time.perf_counter()
    go.set()
    results = [out.get(timeout=600) for _ in procs]
    elapsed = time.perf_counter() - start
    for p in procs:
        p.join()
    return results, elapsed


# ----- phases -----------------------------------------------------------------------------

def bench_send(url: str, tasks: int, batch: int, senders: int) -> dict[str, Any]:
    per = tasks // senders
    ctx = mp.get_context("spawn")
    _, elapsed = run_processes(ctx, [(producer, (url, "send-bench", per, batch))
                                     for _ in range(senders)])
    return {"tasks": per * senders, "batch": batch, "senders": senders,
            "seconds": round(elapsed, 3), "tasks_per_second": round(per * senders / elapsed)}


def bench_lifecycle(url: str, tasks: int, send_batch: int, claim_batch: int,
                    claimers: int, profile: tuple[int, str] | None = None) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    shared = ctx.Value("q", 0)
    targets: list[tuple[Any, tuple]] = [
        (consumer, (url, "life", claim_batch, tasks, shared)) for _ in range(claimers)]
    targets.append((producer, (url, "life", tasks, send_batch)))
    spy = None
    if profile is not None:  # py-spy on the server for this phase (a developer's tool)
        spy = subprocess.Popen(["py-spy", "record", "-p", str(profile[0]), "-r", "200",
                                "--format", "raw", "-o", profile[1]],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    results, elapsed = run_processes(ctx, targets)
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(30)
    done = sum(n for kind, n, _ in results if kind == "done")
    return {"tasks": done, "send_batch": send_batch, "claim_batch": claim_batch,
            "claimers": claimers, "seconds": round(elapsed, 3),
            "tasks_per_second": round(done / elapsed)}


def bench_latency(url: str, samples: int) -> dict[str, Any]:
    """One idle worker waits in a long-poll; a sender sends one task at a time."""
    received: dict[int, float] = {}
    arrived = threading.Condition()
    stop = threading.Event()

    def waiter() -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            while not stop.is_set():
                got = c.post("/v1/claim", json={"worker_id": "latency", "queues": ["lat"],
                                                "wait_seconds": 5}).json()["tasks"]
                now = time.perf_counter()
                for t in got:
                    c.post(f"/v1/tasks/{t['id']}/complete",
                           json={"lease_token": t["lease_token"]})
                with arrived:
                    for t in got:
                        received[t["id"]] = now
                    arrived.notify_all()

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    latencies = []
    with httpx.Client(base_url=url, timeout=60) as c:
        time.sleep(0.3)
        for i in range(samples + 5):
            time.sleep(0.02)  # let the waiter get back into its long-poll
            sent = time.perf_counter()
            tid = c.post("/v1/tasks", json={"name": "lat", "queue": "lat"}).json()["id"]
            with arrived:
                arrived.wait_for(lambda tid=tid: tid in received, timeout=10)
            if i >= 5:  # warm-up
                latencies.append((received[tid] - sent) * 1000)
    stop.set()
    with httpx.Client(base_url=url, timeout=60) as c:
        c.post("/v1/tasks", json={"name": "lat", "queue": "lat"})  # release the waiter
    thread.join(10)
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2)

    return {"samples": len(latencies), "p50_ms": pct(0.50), "p95_ms": pct(0.95),
            "p99_ms": pct(0.99), "mean_ms": round(statistics.fmean(latencies), 2)}


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000, help="tasks per throughput phase")
    parser.add_argument("--send-batch", type=int, default=1000)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--claim-batch", type=int, default=200)
    parser.add_argument("--claimers", type=int, default=3)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--pool-max", type=int, default=10)
    parser.add_argument("--profile", metavar="FILE",
                        help="record the server with py-spy (raw format) during the life cycle")
    args = parser.parse_args()

    db = FreshDatabase()
    proc = None
    try:
        from branchwork.app import migrate

        migrate.upgrade(db.url)
        with psycopg.connect(db.url) as conn:
            pg_version = conn.execute("SHOW server_version").fetchone()[0]
        proc, url = start_server(db.url, {
            "BRANCHWORK_POOL_MIN_SIZE": str(min(4, args.pool_max)),
            "BRANCHWORK_POOL_MAX_SIZE": str(args.pool_max), "BRANCHWORK_MAX_BATCH": "5000"})
        report = {
            "machine": {**machine(), "postgresql": pg_version},
            "batch_send": bench_send(url, args.tasks, args.send_batch, args.senders),
            "life_cycle": bench_lifecycle(
                url, args.tasks, args.send_batch, args.claim_batch, args.claimers,
                (proc.pid, args.profile) if args.profile else None),
            "send_to_claim_latency": bench_latency(url, args.latency_samples),
        }
        print(json.dumps(report, indent=2))
    finally:
        if proc is not None:
            stop(proc, timeout=10)
        db.drop()

if __name__ == "__main__":
    main()

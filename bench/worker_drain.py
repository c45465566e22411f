"""Worker drain benchmark: how fast one ``branchwork run-worker`` process empties a queue.

    python bench/worker_drain.py [N] [--configs 100x100,500x500] [--sync]

Starts ``branchwork server`` on a fresh database (its own database on the PostgreSQL named by
BRANCHWORK_BENCH_DATABASE_URL or BRANCHWORK_TEST_DATABASE_URL, else an embedded one), sends N
no-op tasks in batches, then for each concurrency x batch-size setting runs one worker process
until the queue is empty. Prints JSON: tasks/s from the first claim to the last completion (read
from the tasks' own timestamps), and the send-to-start latency (created_at → started_at) of
single tasks sent one by one to an idle worker, p50/p95/p99.

This file is also the worker's registry (``worker_drain:reg``): one async and one sync no-op.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
from _common import CLI, FreshDatabase, start_server, stop

from branchwork import Registry

reg = Registry()


@reg.task(queue="bench")
async def noop() -> None:
    return None


@reg.task(queue="bench_sync")
def noop_sync() -> None:
    return None


HERE = Path(__file__).resolve().parent


def send_noops(url: str, n: int, name: str, queue: str, batch: int = 2000) -> float:
    started = time.perf_counter()
    with httpx.Client(base_url=url, timeout=120) as http:
        for offset in range(0, n, batch):
            size = min(batch, n - offset)
            body = {"tasks": [{"name": name, "queue": queue}] * size}
            answer = http.post("/v1/tasks/batch", json=body)
            answer.raise_for_status()
    return n / (time.perf_counter() - started)


def start_worker(url: str, queue: str, concurrency: int, batch: int,
                 extra: list[str], stderr: Any = subprocess.DEVNULL) -> subprocess.Popen:
    env = dict(os.environ, BRANCHWORK_URL=url,
               PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
    return subprocess.Popen(
        [*CLI, "run-worker", "worker_drain:reg",
         "-q", queue, "-c", str(concurrency), "-b", str(batch), "--wait-seconds", "5", *extra],
        env=env, stderr=stderr)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process and its waited-for children, from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(x) for x in fields[11:15]) / ticks


def postgres_cpu_seconds() -> float | None:
    """CPU of every local process named postgres (backends, walwriter...), plus what the
    postmaster reaped from exited backends: a rough share of the database in a run."""
    total, found = 0.0, False
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1: raw.rindex(")")]
        if name in ("postgres", "postmaster"):
            fields = raw.rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15]) / ticks
            found = True
    return total if found else None


def drain_stats(conn: psycopg.Connection, queue: str) -> dict[str, Any]:
    row = conn.execute(
        """SELECT count(*) FILTER (WHERE status = 'succeeded'),
                  count(*) FILTER (WHERE status NOT IN ('succeeded', 'failed', 'cancelled')),
                  extract(epoch FROM max(finished_at) - min(started_at)),
                  count(*) FILTER (WHERE attempts > 1)
           FROM tasks WHERE queue = %s""", (queue,)).fetchone()
    assert row is not None
    return {"succeeded": row[0], "unfinished": row[1], "seconds": float(row[2] or 0),
            "retried": row[3]}


def drain(url: str, server_pid: int, db_url: str, n: int, queue: str, name: str,
          concurrency: int, batch: int, extra: list[str],
          limit_seconds: float) -> dict[str, Any]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM task_events; DELETE FROM task_logs; DELETE FROM tasks")
        conn.execute("VACUUM ANALYZE tasks")
        send_rate = send_noops(url, n, name, queue)
        server_cpu = cpu_seconds(server_pid) or 0.0
        pg_cpu = postgres_cpu_seconds()
        worker = start_worker(url, queue, concurrency, batch, extra)
        deadline = time.monotonic() + limit_seconds
        try:
            while time.monotonic() < deadline:
                stats = drain_stats(conn, queue)
                if stats["unfinished"] == 0:
                    break
                time.sleep(0.2)
            stats = drain_stats(conn, queue)
            # CPU spent during the drain (the worker's includes its start-up and imports).
            stats["worker_cpu_s"] = cpu_seconds(worker.pid)
            stats["server_cpu_s"] = round((cpu_seconds(server_pid) or 0.0) - server_cpu, 2)
            pg_after = postgres_cpu_seconds()
            stats["postgres_cpu_s"] = (round(pg_after - pg_cpu, 2)
                                       if pg_cpu is not None and pg_after is not None else None)
            latency = idle_latency(url, conn, name, queue) if stats["unfinished"] == 0 else None
        finally:
            stop(worker)
    rate = stats["succeeded"] / stats["seconds"] if stats["seconds"] else None
    return {"task": name, "concurrency": concurrency, "batch_size": batch, "extra": extra,
            "tasks": n, "send_tasks_per_s": round(send_rate), **stats,
            "tasks_per_s": round(rate) if rate else None, "idle_latency_ms": latency}


def idle_latency(url: str, conn: psycopg.Connection, name: str, queue: str,
                 samples: int = 100) -> dict[str, float]:
    """Single sends to a worker that sits in its long-poll: created_at → started_at."""
    ids = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for _ in range(samples):
            ids.append(http.post("/v1/tasks", json={"name": name, "queue": queue}).json()["id"])
            time.sleep(0.02)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rows = conn.execute(
            "SELECT extract(epoch FROM started_at - created_at) * 1000 FROM tasks "
            "WHERE id = ANY(%s) AND started_at IS NOT NULL", (ids,)).fetchall()
        if len(rows) == len(ids):
            break
        time.sleep(0.1)
    values = sorted(float(r[0]) for r in rows)
    q = statistics.quantiles(values, n=100)
    return {"p50": round(q[49], 2), "p95": round(q[94], 2), "p99": round(q[98], 2),
            "samples": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=30_000)
    parser.add_argument("--configs", default="100x100,500x500,2000x1000",
                        help="concurrency x batch size settings to try (async no-op)")
    parser.add_argument("--sync", default="200x200x2",
                        help="concurrency x batch x processes for the sync no-op (process "
                             "isolation); '' to skip")
    parser.add_argument("--limit", type=float, default=300.0, help="seconds per drain at most")
    args = parser.parse_args()
    db = FreshDatabase(("BRANCHWORK_BENCH_DATABASE_URL", "BRANCHWORK_TEST_DATABASE_URL"))
    server, url = start_server(db.url, {"BRANCHWORK_MAX_WAIT_SECONDS": "5",
                                        "BRANCHWORK_POOL_MAX_SIZE": "10"})
    results = []
    try:
        for spec in filter(None, args.configs.split(",")):
            c, b = (int(x) for x in spec.split("x"))
            results.append(drain(url, server.pid, db.url, args.n, "bench", "noop", c, b, [], args.limit))
        for spec in filter(None, args.sync.split(",")):
            c, b, p = (int(x) for x in spec.split("x"))
            results.append(drain(url, server.pid, db.url, args.n, "bench_sync", "noop_sync", c, b,
                                 ["--processes", str(p)], args.limit))
    finally:
        stop(server)
        db.drop()
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                  "python": platform.python_version()},
                      "results": results}, indent=2))


if __name__ == "__main__":
    main()

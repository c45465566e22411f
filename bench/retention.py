"""Retention benchmark: claim latency while workers drain, without and with the retention
service pruning N finished tasks in the background.

    python bench/retention.py [--finished 1000000] [--tasks 20000] [--workers 8]

On a fresh database (its own database on the PostgreSQL named by BRANCHWORK_BENCH_DATABASE_URL
or BRANCHWORK_TEST_DATABASE_URL, else an embedded one) it inserts ``--finished`` succeeded
tasks that finished eight days ago (past the default seven days of retention), each with two
history rows, and every tenth with a log. Then two phases, each on a ``branchwork server``
subprocess and a queue of ``--tasks`` new tasks drained by ``--workers`` claim loops (claim up
to 10, report them done, claim again):

- ``baseline``: retention off (every retention setting 0), nothing is pruned;
- ``pruning``: retention on with its defaults and a 0.5 s interval, so the service deletes the
  old tasks in batches of 1,000 while the workers drain.

Each claim request is timed (from the client: request to answer). The pruning phase counts
only the claims made while old tasks were still left, so the figure is the latency *while*
pruning runs. Prints JSON: p50/p99 per phase, their ratio, tasks pruned and how fast, and the
CPU seconds of the server and of PostgreSQL in each phase. The goal: p99 with pruning within
2x of the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import threading
import time
from typing import Any

import httpx
import psycopg
from _common import FreshDatabase, start_server, stop
from _measure import POSTGRES, CpuSampler

QUEUE = "drain"
OLD_QUEUE = "archive"
DAY = 86400


def fill_finished(db_url: str, n: int) -> None:
    """``n`` tasks that succeeded eight days ago, with their history and some logs."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO queues (name) VALUES (%s), (%s) ON CONFLICT DO NOTHING",
                     (OLD_QUEUE, QUEUE))
        step = 100_000
        for start in range(0, n, step):
            count = min(step, n - start)
            conn.execute(
                """WITH ids AS (
                       SELECT nextval('tasks_id_seq') AS id, g
                       FROM generate_series(1, %(count)s) g
                   ), ins AS (
                       INSERT INTO tasks (id, name, queue, status, args, priority, root_id,
                           attempts, result, created_at, started_at, finished_at)
                       SELECT id, 'old', %(queue)s, 'succeeded', '{"n": 1}', 5, id, 1, '1',
                           now() - interval '8 days', now() - interval '8 days',
                           now() - interval '8 days' + (g * interval '1 millisecond')
                       FROM ids
                       RETURNING id
                   ), ev AS (
                       INSERT INTO task_events (task_id, attempt, event, status, at)
                       SELECT id, 1, e, e, now() - interval '8 days' FROM ins,
                           unnest(ARRAY['claimed', 'succeeded']) e
                   )
                   INSERT INTO task_logs (task_id, attempt, output)
                   SELECT id, 1, 'some output of the task' FROM ins WHERE id %% 10 = 0""",
                {"queue": OLD_QUEUE, "count": count})
        conn.execute("VACUUM ANALYZE tasks")
        conn.execute("VACUUM ANALYZE task_events")


def remaining(db_url: str) -> int:
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM tasks WHERE queue = %s", (OLD_QUEUE,)).fetchone()
    return int(row[0]) if row else 0


async def drain(url: str, tasks: int, workers: int) -> list[tuple[float, float]]:
    """Send ``tasks`` and drain them with ``workers`` claim loops: (start, seconds) of every
    claim request."""
    timings: list[tuple[float, float]] = []
    limits = httpx.Limits(max_connections=workers + 4, max_keepalive_connections=workers + 4)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        for start in range(0, tasks, 1000):
            r = await client.post("/v1/tasks/batch", json={"tasks": [
                {"name": "noop", "queue": QUEUE} for _ in range(min(1000, tasks - start))]})
            r.raise_for_status()
        done = 0

        async def loop(i: int) -> None:
            nonlocal done
            while done < tasks:
                began = time.time()
                t0 = time.perf_counter()
                r = await client.post("/v1/claim", json={
                    "worker_id": f"bench-{i}", "queues": [QUEUE], "limit": 10})
                timings.append((began, time.perf_counter() - t0))
                claimed = r.json()["tasks"]
                if not claimed:
                    await asyncio.sleep(0.01)
                    continue
                r = await client.post("/v1/tasks/report", json={"worker_id": f"bench-{i}",
                    "results": [{"id": t["id"], "lease_token": t["lease_token"],
                                 "outcome": "succeeded"} for t in claimed]})
                r.raise_for_status()
                done += len(claimed)

        await asyncio.gather(*(loop(i) for i in range(workers)))
    return timings


def quantiles(seconds: list[float]) -> dict[str, float]:
    values = sorted(seconds)
    if not values:
        return {"claims": 0}
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return {"claims": len(values), "p50_ms": round(statistics.median(values) * 1000, 2),
            "p99_ms": round(pick(0.99) * 1000, 2), "max_ms": round(values[-1] * 1000, 2)}


def phase(db: FreshDatabase, settings: dict[str, str], tasks: int, workers: int,
          watch_prune: bool) -> dict[str, Any]:
    proc, url = start_server(db.url, settings)
    sampler = CpuSampler(db.server, [db.name])
    sampler.add("server", proc.pid)
    pruned_until: list[float] = []
    stop_watch = threading.Event()
    before = remaining(db.url)

    def watch() -> None:  # when the old tasks ran out
        while not stop_watch.wait(0.2):
            if remaining(db.url) == 0:
                pruned_until.append(time.time())
                return

    watcher = threading.Thread(target=watch, daemon=True)
    if watch_prune:
        watcher.start()
    try:
        started = time.time()
        timings = asyncio.run(drain(url, tasks, workers))
        ended = time.time()
    finally:
        stop_watch.set()
        stop(proc)
    after = remaining(db.url)
    window_end = min(pruned_until[0], ended) if pruned_until else ended
    counted = [s for began, s in timings if began <= window_end]
    cpu = sampler.between(started, ended, ["server", POSTGRES])
    sampler.close()
    return {**quantiles(counted), "drain_seconds": round(ended - started, 2),
            "measured_seconds": round(window_end - started, 2),
            "old_tasks_before": before, "old_tasks_after": after,
            "pruned": before - after,
            "prune_rate_per_s": round((before - after) / max(ended - started, 1e-9)),
            "cpu_seconds": {k: round(v, 2) for k, v in cpu.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--finished", type=int, default=1_000_000,
                        help="finished tasks to prune (default 1,000,000)")
    parser.add_argument("--tasks", type=int, default=20_000, help="tasks drained per phase")
    parser.add_argument("--workers", type=int, default=8, help="concurrent claim loops")
    args = parser.parse_args()
    db = FreshDatabase(("BRANCHWORK_BENCH_DATABASE_URL", "BRANCHWORK_TEST_DATABASE_URL"))
    try:
        # The schema first (a server run applies the migrations), then the old tasks.
        proc, _ = start_server(db.url, {"BRANCHWORK_RUN_SERVICES": "false"})
        stop(proc)
        filled = time.monotonic()
        fill_finished(db.url, args.finished)
        fill_seconds = time.monotonic() - filled
        off = {f"BRANCHWORK_RETENTION_{s}_SECONDS": "0"
               for s in ("SUCCEEDED", "FAILED", "CANCELLED")}
        baseline = phase(db, off, args.tasks, args.workers, watch_prune=False)
        pruning = phase(db, {"BRANCHWORK_RETENTION_INTERVAL_SECONDS": "0.5"}, args.tasks,
                        args.workers, watch_prune=True)
    finally:
        db.drop()
    ratio = (pruning.get("p99_ms", 0) / baseline["p99_ms"]) if baseline.get("p99_ms") else None
    print(json.dumps({
        "finished_tasks": args.finished, "drained_per_phase": args.tasks,
        "workers": args.workers, "fill_seconds": round(fill_seconds, 1),
        "baseline": baseline, "pruning": pruning,
        "p99_ratio": round(ratio, 2) if ratio else None, "goal": "p99_ratio <= 2",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }, indent=2))


if __name__ == "__main__":
    main()

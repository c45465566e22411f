"""Cost of advancing a workflow run, with a small and with a large task table.

Drives runs of a three-node chain through the engine directly (report = the worker's
``/v1/tasks/report`` path, which advances the run in the same transaction) and prints the
median time of one report that queues the next node, before and after filling the task
table with unrelated finished tasks. Prints one JSON document; asserts nothing.

    BRANCHWORK_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
        python bench/workflow_advance.py [--runs 200] [--filler 300000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid

import psycopg
from _common import with_database

from branchwork.app import migrate
from branchwork.app.engine import runs as run_engine
from branchwork.app.engine import workflows as wf_engine
from branchwork.app.engine.claim import ClaimRequest, claim_once
from branchwork.app.engine.report import Outcome, report
from branchwork.app.metrics import Metrics
from branchwork.app.notifier import Notifier
from branchwork.app.settings import Settings
from branchwork.app.state import ServerState
from branchwork.app.store.pool import open_pool

CLAIM = ClaimRequest(worker_id="bench", queues=("bench",), task_names=None, limit=50,
                     wait_seconds=0)


async def _advance_times(state: ServerState, runs: int) -> list[float]:
    for _ in range(runs):
        await run_engine.start_run(state, "chain", {"n": 1})
    times = []
    while True:
        claimed = await claim_once(state, CLAIM, CLAIM.selector)
        if not claimed:
            return times
        for task in claimed:
            outcome = Outcome(id=task["id"], lease_token=str(task["lease_token"]),
                              outcome="succeeded", result=1)
            started = time.perf_counter()
            await report(state, [outcome])
            times.append(time.perf_counter() - started)


async def main(url: str, runs: int, filler: int) -> dict:
    pool = await open_pool(url, 1, 2)
    # The notifier is never started: nothing here waits on it.
    state = ServerState(settings=Settings(database_url=url, lease_seconds=60),
                        database_url=url, pool=pool, notifier=Notifier(url), metrics=Metrics())
    try:
        await wf_engine.register(
            state, "chain", queue="bench", priority=5, timeout_seconds=None, args_schema=None,
            nodes={n: {"task": n, "max_cycles": 1} for n in ("a", "b", "c")},
            edges=[["a", "b"], ["b", "c"]])
        small = await _advance_times(state, runs)
        async with pool.connection() as conn:
            await conn.execute(
                "INSERT INTO tasks (name, queue, status, priority, root_id, finished_at) "
                "SELECT 'filler', 'other', 'succeeded', 5, g, now() "
                "FROM generate_series(1, %s) g", (filler,))
            await conn.execute("ANALYZE tasks")
        large = await _advance_times(state, runs)
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT count(*) AS n FROM tasks")
            total = (await cur.fetchone())["n"]
    finally:
        await pool.close()
    return {
        "runs": runs, "reports_per_phase": len(small),
        "median_report_ms_small_table": round(statistics.median(small) * 1000, 3),
        "median_report_ms_large_table": round(statistics.median(large) * 1000, 3),
        "task_rows_at_end": total,
    }


def run() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--filler", type=int, default=300_000)
    args = parser.parse_args()
    server = os.environ.get("BRANCHWORK_BENCH_DATABASE_URL",
                            "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"bw_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(with_database(server, "postgres"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = with_database(server, name)
        migrate.upgrade(url)
        print(json.dumps(asyncio.run(main(url, args.runs, args.filler)), indent=2))
    finally:
        with psycopg.connect(with_database(server, "postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    run()

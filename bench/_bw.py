"""The Branchwork side of ``bench/compare.py``: one drain round over HTTP, and the pre-fill of
the ``--flat`` check. Sends and workers are ``worker_drain``'s (``send_noops``, ``start_worker``,
its registry ``worker_drain:reg`` with the async no-op ``noop`` on queue ``bench``)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from typing import Any

import psycopg
from _common import stop
from _measure import POSTGRES, CpuSampler, per_10k, tail, wait_for, wal_position
from worker_drain import idle_latency, send_noops, start_worker

SYSTEM = "Branchwork"
QUEUE, TASK = "bench", "noop"


def reset(conn: psycopg.Connection) -> None:
    # CASCADE: the tables keyed by a task (steps, waits, streams) go with it.
    conn.execute("TRUNCATE tasks, task_events, task_logs CASCADE")
    for table in ("tasks", "task_events"):
        conn.execute(f"VACUUM ANALYZE {table}")


def stats_of(conn: psycopg.Connection, after_id: int) -> dict[str, Any]:
    row = conn.execute(
        """SELECT count(*) FILTER (WHERE status = 'succeeded'),
                  count(*) FILTER (WHERE status NOT IN ('succeeded', 'failed', 'cancelled')),
                  extract(epoch FROM min(started_at)), extract(epoch FROM max(finished_at)),
                  count(*) FILTER (WHERE attempts > 1)
           FROM tasks WHERE queue = %s AND id > %s""", (QUEUE, after_id)).fetchone()
    assert row is not None
    return {"succeeded": row[0], "unfinished": row[1], "first_start": float(row[2] or 0),
            "last_finish": float(row[3] or 0), "retried": row[4]}


def claimed_twice(conn: psycopg.Connection, after_id: int) -> int:
    """Tasks with more than one 'claimed' event: with no-ops that never fail or time out,
    each one is a double claim."""
    row = conn.execute(
        """SELECT count(*) FROM (SELECT task_id FROM task_events
               WHERE task_id > %s AND event = 'claimed' GROUP BY task_id HAVING count(*) > 1) x""",
        (after_id,)).fetchone()
    return int(row[0]) if row else 0


def drained(conn: psycopg.Connection, after_id: int, workers: list[Any]) -> bool:
    exited = [w.returncode for w in workers if w.poll() is not None]
    if exited:
        raise RuntimeError(f"Branchwork drain: a worker exited (code {exited[0]})")
    return stats_of(conn, after_id)["unfinished"] == 0


def drain_round(urls: list[str], conn: psycopg.Connection, cpu: CpuSampler, n: int,
                setting: tuple[str, int, int], limit: float, latency_samples: int,
                send_batch: int, fresh: bool = True) -> dict[str, Any]:
    """Send N to the first server, then drain with one worker per server URL."""
    label, batch, concurrency = setting
    if fresh:
        reset(conn)
    after_id = conn.execute("SELECT coalesce(max(id), 0) FROM tasks").fetchone()[0]
    wal = wal_position(conn)
    start, sender = time.time(), time.thread_time()
    send_noops(urls[0], n, TASK, QUEUE, send_batch)
    end, sender = time.time(), time.thread_time() - sender
    wal_sent = wal_position(conn)
    send_cpu = cpu.between(start, end, ["bw_server", POSTGRES])
    send_cpu["sender"] = round(sender, 3)
    with contextlib.ExitStack() as files:
        logs = [files.enter_context(tempfile.NamedTemporaryFile(
            prefix="bw-worker-", suffix=".log", delete=False)) for _ in urls]
        workers = [start_worker(url, QUEUE, concurrency, batch, [], log)
                   for url, log in zip(urls, logs, strict=True)]
        for w in workers:
            cpu.add("bw_worker", w.pid)
        latency = None
        try:
            try:
                wait_for(lambda: drained(conn, after_id, workers), limit, "Branchwork drain")
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}; {stats_of(conn, after_id)}; worker log "
                                   f"{logs[0].name}: {tail(logs[0].name)}") from None
            stats = stats_of(conn, after_id)
            wal_drained = wal_position(conn)
            if latency_samples:
                latency = idle_latency(urls[0], conn, TASK, QUEUE, latency_samples)
        finally:
            for w in workers:
                stop(w)
    for log in logs:
        os.unlink(log.name)
    seconds = stats["last_finish"] - stats["first_start"]
    drain_cpu = cpu.between(stats["first_start"], stats["last_finish"],
                            ["bw_server", "bw_worker", POSTGRES])
    return {"system": SYSTEM, "setting": label, "batch": batch, "concurrency": concurrency,
            "tasks": n, "servers": len(urls), "workers": len(workers),
            "send_per_s": round(n / (end - start)), "send_cpu_per_10k": per_10k(send_cpu, n),
            **stats, "seconds": round(seconds, 3),
            "per_s": round(stats["succeeded"] / seconds) if seconds > 0 else None,
            "cpu_per_10k": per_10k(drain_cpu, stats["succeeded"]),
            "send_wal_per_task": round((wal_sent - wal) / n),
            "wal_per_task": round((wal_drained - wal_sent) / max(1, stats["succeeded"])),
            "claimed_twice": claimed_twice(conn, after_id), "idle_latency_ms": latency}


PREFILL_SQL = ("""
INSERT INTO tasks (id, root_id, name, queue, status, priority, run_at, attempts, worker_id,
                   created_at, started_at, finished_at)
OVERRIDING SYSTEM VALUE
SELECT v, v, %(name)s, %(queue)s, 'succeeded', 5, t, 1, 'prefill', t, t + interval '1 ms',
       t + interval '2 ms'
FROM (SELECT nextval(pg_get_serial_sequence('tasks', 'id')) AS v,
             now() - interval '2 days' + g * interval '10 ms' AS t
      FROM generate_series(1, %(finished)s) g) s""", """
INSERT INTO task_events (task_id, attempt, event, status, worker_id, at)
SELECT t.id, 1, e.event, e.status, 'prefill', t.started_at
FROM tasks t, (VALUES ('claimed', 'running'), ('succeeded', 'succeeded')) e(event, status)
WHERE t.worker_id = 'prefill'""", """
INSERT INTO tasks (id, root_id, name, queue, status, priority, run_at)
OVERRIDING SYSTEM VALUE
SELECT v, v, %(name)s, 'backlog', 'queued', 5, now()
FROM (SELECT nextval(pg_get_serial_sequence('tasks', 'id')) AS v
      FROM generate_series(1, %(backlog)s) g) s""")


def prefill(conn: psycopg.Connection, finished: int, backlog: int) -> float:
    """Finished tasks (with a claimed and a succeeded event each) on the drained queue and a
    backlog of queued ones on another queue nobody claims; seconds it took."""
    started = time.perf_counter()
    reset(conn)
    params = {"name": TASK, "queue": QUEUE, "finished": finished, "backlog": backlog}
    with conn.transaction():
        for statement in PREFILL_SQL:
            conn.execute(statement, params)
    for table in ("tasks", "task_events"):
        conn.execute(f"VACUUM ANALYZE {table}")
    return time.perf_counter() - started

"""The PgQueuer side of ``bench/compare.py``: its schema, its enqueue, one drain round.

Written against PgQueuer's public API as its installed source defines it (``Queries``,
``AsyncpgDriver``; asyncpg, as its README's examples); the worker process is
``_pgq_worker.py``. A drain that does not end within ``limit`` is stopped and the round fails.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from _common import stop
from _measure import POSTGRES, CpuSampler, per_10k, wal_position
from _pgq_worker import ENTRYPOINT

SYSTEM = "PgQueuer"


def version() -> str:
    import pgqueuer

    return getattr(pgqueuer, "__version__", "?")


def _queries(conn: Any) -> Any:
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    return Queries(AsyncpgDriver(conn))


async def _install(dsn: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await _queries(conn).install()
    finally:
        await conn.close()


def install(dsn: str) -> None:
    asyncio.run(_install(dsn))


async def _enqueue(dsn: str, n: int, batch: int, on_connected: Any) -> dict[str, float]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    on_connected()
    try:
        queries = _queries(conn)
        start, cpu = time.time(), time.thread_time()
        for offset in range(0, n, batch):
            size = min(batch, n - offset)
            await queries.enqueue([ENTRYPOINT] * size, [None] * size, [0] * size)
        return {"start": start, "end": time.time(), "sender_cpu": time.thread_time() - cpu}
    finally:
        await asyncio.sleep(0.15)  # let a CPU sampler read the backend before it exits
        await conn.close()


def enqueue(dsn: str, n: int, batch: int = 1000,
            on_connected: Any = lambda: None) -> dict[str, float]:
    """Enqueue ``n`` no-op jobs in batches (one ``Queries.enqueue`` of lists each), the
    connection already open (``on_connected()`` is called then): when it started and ended
    (epoch seconds) and the CPU seconds of the sending thread."""
    return asyncio.run(_enqueue(dsn, n, batch, on_connected))


def reset(dsn: str) -> None:
    """An empty queue and log, vacuumed: each drain starts from the same state."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE pgqueuer, pgqueuer_log, pgqueuer_statistics")
        conn.execute("VACUUM ANALYZE pgqueuer")
        conn.execute("VACUUM ANALYZE pgqueuer_log")


def drain_stats(dsn: str) -> dict[str, Any]:
    """From PgQueuer's own log table: jobs done, and the first pick / last completion."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            """SELECT count(*) FILTER (WHERE status = 'successful'),
                      extract(epoch FROM min(created) FILTER (WHERE status = 'picked')),
                      extract(epoch FROM max(created) FILTER (WHERE status = 'successful')),
                      (SELECT count(*) FROM pgqueuer)
               FROM pgqueuer_log""").fetchone()
    assert row is not None
    done, first, last, left = row
    return {"succeeded": done, "unfinished": left, "first_start": float(first or 0),
            "last_finish": float(last or 0)}


def worker_command(dsn: str, batch: int, concurrency: int) -> list[str]:
    return [sys.executable, str(Path(__file__).with_name("_pgq_worker.py")), dsn, str(batch),
            str(concurrency)]


def drain_round(dsn: str, cpu: CpuSampler, n: int, setting: tuple[str, int, int],
                limit: float, send_batch: int) -> dict[str, Any]:
    label, batch, concurrency = setting
    reset(dsn)
    wal = wal_position(dsn)
    send = enqueue(dsn, n, send_batch, cpu.refresh)
    wal_sent = wal_position(dsn)
    send_cpu = cpu.between(send["start"], send["end"], [POSTGRES])
    send_cpu["sender"] = round(send["sender_cpu"], 3)
    worker = subprocess.Popen(worker_command(dsn, batch, concurrency))
    cpu.add("pgq_worker", worker.pid)
    try:
        worker.wait(limit)
    except subprocess.TimeoutExpired:
        stop(worker)
        raise RuntimeError(f"PgQueuer drain: not done within {limit:.0f} s; "
                           f"{drain_stats(dsn)}") from None
    stats = drain_stats(dsn)
    wal_drained = wal_position(dsn)
    seconds = stats["last_finish"] - stats["first_start"]
    drain_cpu = cpu.between(stats["first_start"], stats["last_finish"], ["pgq_worker", POSTGRES])
    return {"system": SYSTEM, "setting": label, "batch": batch, "concurrency": concurrency,
            "tasks": n, "send_per_s": round(n / (send["end"] - send["start"])),
            "send_cpu_per_10k": per_10k(send_cpu, n), **stats, "seconds": round(seconds, 3),
            "per_s": round(stats["succeeded"] / seconds) if seconds > 0 else None,
            "cpu_per_10k": per_10k(drain_cpu, stats["succeeded"]),
            "send_wal_per_task": round((wal_sent - wal) / n),
            "wal_per_task": round((wal_drained - wal_sent) / max(1, stats["succeeded"])),
            "exit_code": worker.returncode}

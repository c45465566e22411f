"""What the side-by-side benchmark measures besides rates: CPU seconds per process group over
a time window (sampled with psutil), WAL written, and waiting for a drain.

A background thread reads the cumulative CPU time (user + system) of every process in each
group every ``period`` seconds; :meth:`CpuSampler.between` interpolates the cumulative figure
at two wall-clock instants (``time.time()``, the same clock as PostgreSQL's ``now()`` on this
machine), so the CPU of a drain is counted from its first claim to its last completion, as
read from the database, without the process's start-up.

The ``postgres`` group follows PostgreSQL's own list of its processes (``pg_stat_activity``,
re-read every ``refresh`` seconds): the client backends connected to the benchmark's
databases plus every background process (WAL writer, checkpointer, autovacuum...), so that
other databases' clients on a shared server are not counted. A process that exits keeps the
CPU last read from it (at most one period of its last work is lost); one that starts counts
from its birth.
"""

from __future__ import annotations

import contextlib
import threading
import time
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

import psutil
import psycopg

POSTGRES = "postgres"


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


class CpuSampler:
    def __init__(self, server_url: str, databases: Iterable[str], period: float = 0.05,
                 refresh: float = 0.2) -> None:
        self.period, self.refresh_every = period, refresh
        self.databases = list(databases)
        self._conn = psycopg.connect(server_url, autocommit=True)
        self._own_backend = self._conn.info.backend_pid
        self._started = time.time()
        # group -> pid -> [process, base, last cumulative CPU]
        self._groups: dict[str, dict[int, list]] = {POSTGRES: {}}
        self._lock = threading.Lock()
        self._db_lock = threading.Lock()
        self._times: list[float] = []
        self._totals: list[dict[str, float]] = []
        self._stop = threading.Event()
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
        self._thread.start()

    # ----- what is watched ----------------------------------------------------------------

    def add(self, group: str, pid: int) -> None:
        """Count process ``pid`` (all of its CPU, start-up included) in ``group``."""
        with self._lock:
            self._groups.setdefault(group, {})[pid] = [psutil.Process(pid), 0.0, 0.0]

    def refresh(self) -> None:
        """Re-read PostgreSQL's processes now (call it after opening a connection whose
        backend should count from the start, e.g. before a short timed phase)."""
        with self._db_lock:
            rows = self._conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE pid <> %s AND "
                "(backend_type <> 'client backend' OR datname = ANY(%s))",
                (self._own_backend, self.databases)).fetchall()
        pids = {r[0] for r in rows}
        with contextlib.suppress(psutil.Error):  # the postmaster: the parent of any backend
            pids.add(psutil.Process(self._own_backend).ppid())
        with self._lock:
            known = self._groups[POSTGRES]
            for pid in pids - known.keys():
                try:
                    proc = psutil.Process(pid)
                    born_before = proc.create_time() < self._started
                    base = _cpu(proc) if born_before else 0.0
                except psutil.Error:
                    continue
                known[pid] = [proc, base, base]

    # ----- sampling -----------------------------------------------------------------------

    def _sample(self) -> None:
        now = time.time()
        totals: dict[str, float] = {}
        with self._lock:
            for group, procs in self._groups.items():
                total = 0.0
                for entry in procs.values():
                    with contextlib.suppress(psutil.Error):  # exited: keep its last reading
                        entry[2] = _cpu(entry[0])
                    total += entry[2] - entry[1]
                totals[group] = total
            self._times.append(now)
            self._totals.append(totals)

    def _run(self) -> None:
        next_refresh = time.monotonic() + self.refresh_every
        while not self._stop.wait(self.period):
            if time.monotonic() >= next_refresh:
                with contextlib.suppress(psycopg.Error):
                    self.refresh()
                next_refresh = time.monotonic() + self.refresh_every
            self._sample()

    def _at(self, group: str, t: float) -> float:
        times, totals = self._times, self._totals
        i = bisect_left(times, t)
        if i == 0:
            return totals[0].get(group, 0.0) if totals else 0.0
        if i >= len(times):
            return totals[-1].get(group, 0.0)
        t0, t1 = times[i - 1], times[i]
        v0, v1 = totals[i - 1].get(group, 0.0), totals[i].get(group, 0.0)
        return v0 + (v1 - v0) * (t - t0) / (t1 - t0)

    def between(self, start: float, end: float, groups: Iterable[str]) -> dict[str, float]:
        """CPU seconds each group used from ``start`` to ``end`` (epoch seconds); call it
        once ``end`` is at least one period in the past."""
        while self._times and self._times[-1] < end + self.period:
            time.sleep(self.period)
        with self._lock:
            return {g: round(self._at(g, end) - self._at(g, start), 3) for g in groups}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._conn.close()


def per_10k(cpu: dict[str, float], tasks: int) -> dict[str, float]:
    return {g: round(v * 10_000 / tasks, 3) for g, v in cpu.items()} if tasks else {}


def wal_position(dsn_or_conn: str | psycopg.Connection) -> int:
    """The server's WAL insert position in bytes: WAL written by everyone between two readings
    (on a quiet machine, by the system under test)."""
    sql = "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint"
    if isinstance(dsn_or_conn, str):
        with psycopg.connect(dsn_or_conn, autocommit=True) as conn:
            return int(conn.execute(sql).fetchone()[0])
    return int(dsn_or_conn.execute(sql).fetchone()[0])


def tail(path: str, lines: int = 8) -> str:
    with open(path, errors="replace") as f:
        return " | ".join(f.read().splitlines()[-lines:])


def wait_for(predicate: Any, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not done within {limit:.0f} s")
        time.sleep(0.1)

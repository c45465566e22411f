"""Prometheus metrics: per-process counters and histograms fed by the API routes, plus
gauges read from the database at scrape time (queue depth, workers online).

Counters are per server process, as Prometheus expects: with several replicas, ``sum`` over
instances. Label sets are capped (``MAX_SERIES``) so that a sender inventing task names
cannot grow the process without bound; the overflow is counted under ``queue="__other__",name="__other__"``.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

MAX_SERIES = 5000
OTHER = "__other__"
# Seconds: from a few milliseconds (hot claims) to an hour (long jobs, delayed work).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
           300.0, 900.0, 3600.0)

COUNTERS = {
    "sent": "Tasks accepted by a send or created for a workflow or cron fire (duplicates "
            "by idempotency key not counted).",
    "claimed": "Task attempts leased to a worker.",
    "completed": "Task attempts reported succeeded.",
    "failed": "Task attempts that failed, reported or ended by the server (lease ran out, "
              "timeout); retried or final.",
    "cancelled": "Task attempts that ended cancelled.",
}
HISTOGRAMS = {
    "claim_wait_seconds": "Time from when a task became ready (run_at) to its claim.",
    "run_seconds": "Time from claim (started_at) to the reported outcome.",
}


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Histogram:
    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, value)] += 1
        self.sum += value


class Metrics:
    """The process's counters; the ``sent``/``claimed``/``reported`` hooks are one-liners
    in the routes and never touch the database."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[str, dict[tuple[str, str], int]] = {k: {} for k in COUNTERS}
        self.histograms: dict[str, dict[tuple[str, str], Histogram]] = {
            k: {} for k in HISTOGRAMS}
        self._series: set[tuple[str, str]] = set()

    def _key(self, queue: str, name: str) -> tuple[str, str]:
        key = (queue, name)
        if key in self._series:
            return key
        if len(self._series) >= MAX_SERIES:
            return (OTHER, OTHER)
        self._series.add(key)
        return key

    def _count(self, counter: str, queue: str, name: str, n: int = 1) -> None:
        key = self._key(queue, name)
        table = self.counters[counter]
        table[key] = table.get(key, 0) + n

    def _observe(self, histogram: str, queue: str, name: str, value: float) -> None:
        key = self._key(queue, name)
        table = self.histograms[histogram]
        hist = table.get(key)
        if hist is None:
            hist = table[key] = Histogram()
        hist.observe(max(0.0, value))

    def sent(self, items: Sequence[Any], outcomes: Sequence[Any]) -> None:
        """After a send: ``items`` have ``.queue``/``.name``, outcomes ``.duplicate``."""
        with self._lock:
            for item, out in zip(items, outcomes, strict=False):
                if not out.duplicate:
                    self._count("sent", item.queue, item.name)

    def server_sent(self, items: Sequence[dict[str, Any]], outcomes: Sequence[Any]) -> None:
        """Tasks the server created itself (workflow nodes, cron fires): dict items."""
        with self._lock:
            for item, out in zip(items, outcomes, strict=False):
                if not out.duplicate:
                    self._count("sent", item["queue"], item["name"])

    def claimed(self, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """After a claim; returns ``tasks`` so the route can wrap its return value."""
        now = time.time()
        with self._lock:
            for t in tasks:
                self._count("claimed", t["queue"], t["name"])
                run_at = t.get("run_at")
                if isinstance(run_at, datetime):
                    self._observe("claim_wait_seconds", t["queue"], t["name"],
                                  now - run_at.timestamp())
        return tasks

    def reported(self, rows: Iterable[dict[str, Any]]) -> None:
        """After a batch report: rows of ``store.tasks.report`` (applied ones count)."""
        with self._lock:
            for r in rows:
                if not r.get("applied") or r.get("name") is None:
                    continue
                status = r["new_status"]
                counter = {"succeeded": "completed", "cancelled": "cancelled"}.get(
                    status, "failed")
                self._count(counter, r["queue"], r["name"])
                if r.get("run_seconds") is not None:
                    self._observe("run_seconds", r["queue"], r["name"], float(r["run_seconds"]))

    def swept(self, rows: Iterable[dict[str, Any]]) -> None:
        """Attempts the server ended itself (lease sweep): a lost lease or a timeout is a
        failed attempt, whether a retry follows or not; one whose cancel was asked, cancelled."""
        with self._lock:
            for r in rows:
                if r.get("name") is None:
                    continue
                counter = "cancelled" if r["status"] == "cancelled" else "failed"
                self._count(counter, r["queue"], r["name"])

    def render(self, gauges: dict[str, Any]) -> str:
        lines: list[str] = []
        with self._lock:
            for counter, help_text in COUNTERS.items():
                metric = f"branchwork_tasks_{counter}_total"
                lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
                for (queue, name), value in sorted(self.counters[counter].items()):
                    lines.append(f'{metric}{{queue="{escape_label(queue)}",'
                                 f'name="{escape_label(name)}"}} {value}')
            for histogram, help_text in HISTOGRAMS.items():
                metric = f"branchwork_task_{histogram}"
                lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} histogram"]
                for (queue, name), hist in sorted(self.histograms[histogram].items()):
                    labels = f'queue="{escape_label(queue)}",name="{escape_label(name)}"'
                    cumulative = 0
                    for bound, count in zip((*BUCKETS, float("inf")), hist.counts,
                                            strict=True):
                        cumulative += count
                        le = "+Inf" if bound == float("inf") else repr(bound)
                        lines.append(f'{metric}_bucket{{{labels},le="{le}"}} {cumulative}')
                    lines.append(f"{metric}_sum{{{labels}}} {hist.sum!r}")
                    lines.append(f"{metric}_count{{{labels}}} {cumulative}")
        lines += ["# HELP branchwork_queue_depth Tasks in a queue by state, read at scrape time.",
                  "# TYPE branchwork_queue_depth gauge"]
        for row in gauges["depth"]:
            lines.append(f'branchwork_queue_depth{{queue="{escape_label(row["queue"])}",'
                         f'status="{row["status"]}"}} {row["n"]}')
        lines += ["# HELP branchwork_workers_online Workers seen recently and not stopped.",
                  "# TYPE branchwork_workers_online gauge",
                  f"branchwork_workers_online {gauges['workers_online']}"]
        return "\n".join(lines) + "\n"


# Both counts use partial indexes (tasks_claim_idx, tasks_running_idx), not the whole table.
DEPTH_SQL = """
SELECT q.name AS queue, s.status, COALESCE(c.n, 0) AS n
FROM queues q CROSS JOIN (VALUES ('queued'), ('running')) AS s(status)
LEFT JOIN (
    SELECT queue, 'queued' AS status, count(*) AS n FROM tasks WHERE status = 'queued'
    GROUP BY queue
    UNION ALL
    SELECT queue, 'running', count(*) FROM tasks WHERE status = 'running' GROUP BY queue
) c ON c.queue = q.name AND c.status = s.status
ORDER BY q.name, s.status
"""


async def read_gauges(conn: AsyncConnection, offline_after: float) -> dict[str, Any]:
    async with conn.cursor() as cur:
        await cur.execute(DEPTH_SQL)
        depth = await cur.fetchall()
        await cur.execute(
            "SELECT count(*) AS n FROM workers WHERE stopped_at IS NULL "
            "AND last_seen_at > now() - make_interval(secs => %s)", (offline_after,))
        row = await cur.fetchone()
    return {"depth": depth, "workers_online": int(row["n"]) if row else 0}


def sweep_hook(pool: AsyncConnectionPool,
               metrics: Metrics) -> Callable[[list[dict[str, Any]]], Awaitable[None]]:
    """A rescuer hook that counts the attempts a sweep ended. The sweep's rows carry no task
    name, so they are looked up by primary key (sweeps that end anything are rare)."""

    async def hook(rows: list[dict[str, Any]]) -> None:
        async with pool.connection() as conn, conn.cursor() as cur:
            await cur.execute("SELECT id, name FROM tasks WHERE id = ANY(%s)",
                              ([r["id"] for r in rows],))
            names = {r["id"]: r["name"] for r in await cur.fetchall()}
        metrics.swept([{**r, "name": names.get(r["id"])} for r in rows])

    return hook


# The store creates tasks on its own (a workflow advancing, a cron fire) deep inside request
# handlers and background services, where no ``app.state`` is at hand. The app's Metrics is
# put in this context variable for each request and for its background services, so such
# sends count in the right app's counters (several apps may share a process in tests).
current: ContextVar[Metrics | None] = ContextVar("branchwork_metrics", default=None)


def count_server_sent(items: Sequence[dict[str, Any]], outcomes: Sequence[Any]) -> None:
    metrics = current.get()
    if metrics is not None:
        metrics.server_sent(items, outcomes)


class MetricsContext:
    """ASGI middleware: the app's Metrics in ``current`` while a request is handled."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        token = current.set(self.metrics)
        try:
            await self.app(scope, receive, send)
        finally:
            current.reset(token)

"""Prometheus metrics: per-process counters and histograms fed by the engine's use cases
(send, claim, report, sweep), plus gauges read at scrape time (queue depth, workers online,
``app/read/queues.py: gauges``). The one ``Metrics`` object lives in the server state.

Counters are per server process, as Prometheus expects: with several replicas, ``sum`` over
instances. Label sets are capped (``MAX_SERIES``) so that a sender inventing task names
cannot grow the process without bound; the overflow is counted under ``queue="__other__",name="__other__"``.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

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
    "folded": "Sends folded into a task already there (debounce, or a concurrency key's "
              "cancel-newest): no new task; the answer names the task (folded_into).",
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

    def observe_all(self, values: Iterable[float]) -> None:
        """Count each value in its bucket (negative ones as 0): a claim's or report's batch."""
        counts, total = self.counts, 0.0
        for value in values:
            value = max(0.0, value)
            counts[bisect.bisect_left(BUCKETS, value)] += 1
            total += value
        self.sum += total


class Metrics:
    """The process's counters; the engine calls ``sent``/``claimed``/``reported``/``swept``
    after its transaction (they never touch the database)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[str, dict[tuple[str, str], int]] = {k: {} for k in COUNTERS}
        self.histograms: dict[str, dict[tuple[str, str], Histogram]] = {
            k: {} for k in HISTOGRAMS}
        self._series: set[tuple[str, str]] = set()
        # Claim statements run (first tries, and re-checks after a wake-up or the fallback
        # poll): what a send costs in claim queries when many workers wait.
        self.claim_queries = 0

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

    def _tally(self, counter: str, histogram: str,
               entries: Iterable[tuple[str, str, float | None]]) -> None:
        """Count each ``(queue, name, value)`` and observe its value when it has one. A claim
        or report is mostly one task type: each distinct pair finds its series once, rather
        than once per task (this runs on every claim and report)."""
        groups: dict[tuple[str, str], list[float | None]] = {}
        for queue, name, value in entries:
            group = groups.get((queue, name))
            if group is None:
                group = groups[(queue, name)] = []
            group.append(value)
        hists = self.histograms[histogram]
        for (queue, name), values in groups.items():
            self._count(counter, queue, name, len(values))
            observed = [v for v in values if v is not None]
            if observed:
                key = self._key(queue, name)
                hist = hists.get(key)
                if hist is None:
                    hist = hists[key] = Histogram()
                hist.observe_all(observed)

    def sent(self, items: Sequence[Mapping[str, Any]], outcomes: Sequence[Any]) -> None:
        """After a send (by the API, a workflow advance or a cron fire): ``items`` are the
        tasks' column mappings, ``outcomes`` have ``.duplicate`` (duplicates do not count)."""
        with self._lock:
            for item, out in zip(items, outcomes, strict=False):
                if getattr(out, "folded_into", None) is not None:
                    self._count("folded", item["queue"], item["name"])
                elif not out.duplicate:
                    self._count("sent", item["queue"], item["name"])

    def claimed(self, tasks: Sequence[Mapping[str, Any]]) -> None:
        """After a claim: the leased tasks."""
        now = time.time()
        entries = [(t["queue"], t["name"], now - run_at.timestamp()
                    if isinstance(run_at := t.get("run_at"), datetime) else None)
                   for t in tasks]
        with self._lock:
            self._tally("claimed", "claim_wait_seconds", entries)

    def claim_query(self) -> None:
        with self._lock:
            self.claim_queries += 1

    def reported(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """After a batch report: rows of ``store.tasks.report`` (applied ones count)."""
        by_counter: dict[str, list[tuple[str, str, float | None]]] = {
            "completed": [], "cancelled": [], "failed": []}
        for r in rows:
            if not r.get("applied") or r.get("name") is None:
                continue
            status, seconds = r["new_status"], r.get("run_seconds")
            counter = ("completed" if status == "succeeded"
                       else "cancelled" if status == "cancelled" else "failed")
            by_counter[counter].append(
                (r["queue"], r["name"], None if seconds is None else float(seconds)))
        with self._lock:
            for counter, entries in by_counter.items():
                if entries:
                    self._tally(counter, "run_seconds", entries)

    def swept(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Attempts the server ended itself (lease sweep): a lost lease or a timeout is a
        failed attempt, whether a retry follows or not; one whose cancel was asked, cancelled."""
        with self._lock:
            for r in rows:
                if r.get("name") is None:
                    continue
                counter = "cancelled" if r["status"] == "cancelled" else "failed"
                self._count(counter, r["queue"], r["name"])

    def render(self, gauges: Mapping[str, Any]) -> str:
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
            lines += ["# HELP branchwork_claim_queries_total Claim statements run (first tries "
                      "and re-checks after a wake-up or the fallback poll).",
                      "# TYPE branchwork_claim_queries_total counter",
                      f"branchwork_claim_queries_total {self.claim_queries}"]
        lines += ["# HELP branchwork_queue_depth Tasks in a queue by state, read at scrape time.",
                  "# TYPE branchwork_queue_depth gauge"]
        for row in gauges["depth"]:
            lines.append(f'branchwork_queue_depth{{queue="{escape_label(row["queue"])}",'
                         f'status="{row["status"]}"}} {row["n"]}')
        lines += ["# HELP branchwork_workers_online Workers seen recently and not stopped.",
                  "# TYPE branchwork_workers_online gauge",
                  f"branchwork_workers_online {gauges['workers_online']}"]
        if gauges.get("health") is not None:
            lines += health_lines(gauges["health"])
        if gauges.get("flow") is not None:
            lines += flow_lines(gauges["flow"])
        return "\n".join(lines) + "\n"


def health_lines(health: Mapping[str, Any]) -> list[str]:
    """Gauges of the queue health report (``app/read/health.py``), read at scrape time."""
    lines = ["# HELP branchwork_tasks_stuck Running tasks with no progress past stuck_after.",
             "# TYPE branchwork_tasks_stuck gauge"]
    for queue, n in sorted(health["stuck"].items()):
        lines.append(f'branchwork_tasks_stuck{{queue="{escape_label(queue)}"}} {n}')
    oldest = health["oldest_transaction"]
    lines += ["# HELP branchwork_db_oldest_transaction_seconds Age of the oldest open "
              "transaction in the database (0: none); it holds back vacuum.",
              "# TYPE branchwork_db_oldest_transaction_seconds gauge",
              "branchwork_db_oldest_transaction_seconds "
              f"{float(oldest['age_seconds']) if oldest else 0.0!r}"]
    tables = sorted(health["tables"].items())
    for metric, key, help_text in (
            ("branchwork_db_dead_tuples", "dead_tuples", "Dead tuples of a hot table."),
            ("branchwork_db_last_autovacuum_timestamp_seconds", "last_autovacuum",
             "When autovacuum last finished on a hot table (0: never)."),
            ("branchwork_db_last_vacuum_timestamp_seconds", "last_vacuum",
             "When a manual VACUUM last finished on a hot table (0: never).")):
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
        for table, row in tables:
            value = row[key]
            if isinstance(value, datetime):
                value = value.timestamp()
            lines.append(f'{metric}{{table="{table}"}} {value or 0}')
    lines += ["# HELP branchwork_queue_health_warnings Queue health warnings now (see /health).",
              "# TYPE branchwork_queue_health_warnings gauge",
              f"branchwork_queue_health_warnings {len(health['warnings'])}"]
    return lines


FLOW_LIMIT_GAUGES = (
    ("branchwork_rate_limit_units_used", "units_used",
     "Units of a rate limit in use now, summed over its keys (they free one per step)."),
    ("branchwork_rate_limit_capacity", "capacity",
     "Units one key of a rate limit allows at once (burst + 1)."),
    ("branchwork_rate_limit_keys_in_use", "keys_in_use", "Keys of a rate limit with units in use."),
    ("branchwork_rate_limit_keys_exhausted", "keys_exhausted",
     "Keys of a rate limit with no unit free now."),
    ("branchwork_rate_limit_next_unit_seconds", "next_unit_seconds",
     "Seconds until an exhausted key of a rate limit frees its next unit (0: none waits)."),
)
FLOW_KEY_GAUGES = (
    ("branchwork_concurrency_keys", "keys", "Concurrency keys with unfinished tasks."),
    ("branchwork_concurrency_keys_full", "full",
     "Concurrency keys running as many tasks as their limit."),
    ("branchwork_concurrency_key_running", "running", "Tasks running under a concurrency key."),
)


def flow_lines(flow: Mapping[str, Any]) -> list[str]:
    """Gauges of flow control in use (``app/read/flow.py``), read at scrape time; per limit
    and per queue, never per key (keys are per customer: unbounded)."""
    lines: list[str] = []
    for metric, key, help_text in FLOW_LIMIT_GAUGES:
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
        for row in flow["limits"]:
            lines.append(f'{metric}{{limit="{escape_label(row["name"])}"}} {row[key]!r}')
    for metric, key, help_text in FLOW_KEY_GAUGES:
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
        for queue, row in sorted(flow["keys"].items()):
            lines.append(f'{metric}{{queue="{escape_label(queue)}"}} {row[key]}')
    lines += ["# HELP branchwork_tasks_held_back Due queued tasks a flow control holds back "
              "now, by what: a concurrency key at its limit, or a rate limit with no unit free.",
              "# TYPE branchwork_tasks_held_back gauge"]
    for row in flow["held"]:
        for reason in ("key_limit", "rate_limit"):
            lines.append(f'branchwork_tasks_held_back{{queue="{escape_label(row["queue"])}",'
                         f'reason="{reason}"}} {row[reason]}')
    return lines

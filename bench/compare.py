"""PgQueuer and Branchwork side by side, in one run on one PostgreSQL.

    python bench/compare.py [-n 20000] [--rounds 2] [--json] [--flat] [--replicas 2]

Each system gets its own database on the same PostgreSQL server (the one named by
BRANCHWORK_BENCH_DATABASE_URL, else an embedded one). For each round and each setting, each
system is sent N no-op tasks in batches of 1,000 (PgQueuer ``Queries.enqueue`` of lists over
asyncpg; Branchwork ``POST /v1/tasks/batch`` over HTTP to one ``branchwork server``), then one
worker process drains them (a PgQueuer ``QueueManager`` in drain mode; ``branchwork
run-worker -c C -b B``). Settings: batch 50 with 200 concurrent, batch 200 with 800.

- drain rate = tasks / (last finish - first start), from each system's own timestamps
  (PgQueuer: ``pgqueuer_log`` picked/successful rows; Branchwork: ``tasks.started_at`` /
  ``finished_at``); send rate = tasks / wall time of the sending loop;
- CPU seconds per 10,000 tasks for each process group in the same window (psutil, see
  ``_measure.py``): PgQueuer's worker process, Branchwork's server and worker, and PostgreSQL
  (the backends of the two databases plus its background processes); for sends, the sending
  thread of this script too;
- Branchwork's idle send-to-start latency (single sends to the waiting worker) after each drain.

``--flat``: then pre-fill Branchwork's table with finished tasks and their history and a backlog
on another queue (1,000,000 and 100,000 by default) and drain N again at each setting.
``--replicas 2``: then the same drain with two ``branchwork server`` processes, one worker on
each; counts tasks claimed more than once (``task_events``). Prints a table, or JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _bw
import _pgq
import psycopg
from _common import FreshDatabase, start_server, stop, with_database
from _measure import CpuSampler
from engine import machine

SETTINGS = (("batch 50", 50, 200), ("batch 200", 200, 800))
SEND_BATCH = 1000
SERVER_SETTINGS = {"BRANCHWORK_MAX_WAIT_SECONDS": "5", "BRANCHWORK_POOL_MAX_SIZE": "10"}
PGQ, BW = _pgq.SYSTEM, _bw.SYSTEM


def attempt(run: Any, failed: dict[str, Any]) -> dict[str, Any]:
    """``run()``'s result, or ``failed`` with the error that stopped it: one failed round or
    phase is reported in the table and the others still run."""
    try:
        return run()
    except Exception as exc:  # noqa: BLE001 - reported, not hidden
        return {**failed, "error": f"{type(exc).__name__}: {exc}"}


def failed_round(system: str, setting: tuple[str, int, int]) -> dict[str, Any]:
    return {"system": system, "setting": setting[0], "per_s": None, "send_per_s": None,
            "cpu_per_10k": {}, "send_cpu_per_10k": {}, "wal_per_task": None,
            "send_wal_per_task": None, "idle_latency_ms": None}


def commit() -> str:
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                              text=True, cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


# ----- report -------------------------------------------------------------------------------

def spread(values: list[float | None], fmt: str = "{:,.0f}") -> str:
    got = sorted(v for v in values if v is not None)
    if not got:
        return "-"
    if len(got) == 1 or got[0] == got[-1]:
        return fmt.format(got[0])
    return f"{fmt.format(got[0])} – {fmt.format(got[-1])}"


def ratio(a: list[float | None], b: list[float | None]) -> str:
    a2, b2 = [x for x in a if x], [x for x in b if x]
    return f"{statistics.fmean(a2) / statistics.fmean(b2):.2f}" if a2 and b2 else "-"


def mean(values: Any) -> float | None:
    got = [v for v in values if v is not None]
    return statistics.fmean(got) if got else None


def cpu_cell(rows: list[dict[str, Any]], key: str) -> str:
    rows = [r for r in rows if r.get(key)]
    if not rows:
        return "-"
    groups = list(rows[0][key])
    avg = {g: statistics.fmean(r[key].get(g, 0.0) for r in rows) for g in groups}
    return "  ".join(f"{g} {v:.2f}" for g, v in avg.items()) + f"  = {sum(avg.values()):.2f}"


def table(report: dict[str, Any]) -> str:
    rows = report["rounds"]
    m, n = report["machine"], report["rounds_run"]
    out = [f"{PGQ} {report['pgqueuer_version']} vs {BW} (commit {report['commit']}), "
           f"{report['tasks']:,} no-op tasks, {n} round{'s' if n != 1 else ''}, "
           f"{report['started']}",
           f"{m['cpus']} CPUs ({m.get('cpu', '?')}), Python {m['python']}, PostgreSQL "
           f"{report.get('postgresql', '?')}; load average {report['load_before']} before, "
           f"{report['load_after']} after", ""]
    line = "{:<28} {:<26} {:<26} {}"
    out.append(line.format("tasks/s", PGQ, BW, "ratio BW/PgQ"))
    for label, _, concurrency in SETTINGS:
        p = [r["per_s"] for r in rows if r["system"] == PGQ and r["setting"] == label]
        b = [r["per_s"] for r in rows if r["system"] == BW and r["setting"] == label]
        out.append(line.format(f"drain {label} ({concurrency} conc.)", spread(p), spread(b),
                               ratio(b, p)))
    p = [r["send_per_s"] for r in rows if r["system"] == PGQ]
    b = [r["send_per_s"] for r in rows if r["system"] == BW]
    out.append(line.format(f"send, batches of {SEND_BATCH:,}", spread(p), spread(b), ratio(b, p)))
    out += ["", "CPU seconds per 10,000 tasks (mean of the rounds; window = first start to last "
            "finish, send = the sending loop)"]
    for label, _, _ in SETTINGS:
        for system in (PGQ, BW):
            sel = [r for r in rows if r["system"] == system and r["setting"] == label]
            out.append(f"  drain {label:<10} {system:<11} {cpu_cell(sel, 'cpu_per_10k')}")
    for system in (PGQ, BW):
        sel = [r for r in rows if r["system"] == system]
        out.append(f"  send             {system:<11} {cpu_cell(sel, 'send_cpu_per_10k')}")
    out += ["", "WAL bytes per task (server-wide, mean of the rounds)"]
    for system in (PGQ, BW):
        sel = [r for r in rows if r["system"] == system]
        cells = [("send", mean(r["send_wal_per_task"] for r in sel))]
        cells += [(f"drain {label}", mean(r["wal_per_task"] for r in sel
                                          if r["setting"] == label)) for label, _, _ in SETTINGS]
        out.append(f"  {system:<11} " + "  ".join(
            f"{name} {value:,.0f}" for name, value in cells if value is not None))
    lat = [r["idle_latency_ms"] for r in rows if r["system"] == BW and r["idle_latency_ms"]]
    if lat:
        out += ["", f"{BW} idle send-to-start (ms, {lat[0]['samples']} samples per drain): "
                f"p50 {spread([x['p50'] for x in lat], '{:.1f}')}, "
                f"p95 {spread([x['p95'] for x in lat], '{:.1f}')}, "
                f"p99 {spread([x['p99'] for x in lat], '{:.1f}')}"]
    for r in rows:
        if r.get("error"):
            out += [f"FAILED {r['system']} {r['setting']}: {r['error']}"]
    for phase in ("replicas", "flat"):
        if report.get(phase, {}).get("error"):
            out += ["", f"{phase}: failed: {report[phase]['error']}"]
    if report.get("flat", {}).get("rounds"):
        f = report["flat"]
        out += ["", f"flat: {f['finished']:,} finished tasks with history + {f['backlog']:,} "
                f"queued on another queue (prefill {f['prefill_seconds']:.0f} s; tasks + "
                f"task_events with indexes: {f['bytes_per_task']} bytes a task), "
                f"drains of {f['tasks']:,}"]
        for r in f["rounds"]:
            empty = [x["per_s"] for x in rows if x["system"] == BW and x["setting"] == r["setting"]]
            lat99 = r["idle_latency_ms"]["p99"] if r["idle_latency_ms"] else None
            out.append(f"  drain {r['setting']:<10} {r['per_s'] or 0:>8,} tasks/s  vs empty table "
                       f"{ratio([r['per_s']], empty)}  idle p99 {lat99} ms  "
                       f"CPU/10k {cpu_cell([r], 'cpu_per_10k')}")
    if report.get("replicas", {}).get("rounds"):
        rep = report["replicas"]
        lead = rep["scheduler_leader"]
        same = "the same" if lead["before"] == lead["after"] else "CHANGED"
        out += ["", f"replicas: {rep['servers']} branchwork servers, one worker on each; "
                f"scheduler leader {same} before and after ({lead['after']})"]
        for r in rep["rounds"]:
            one = [x["per_s"] for x in rows if x["system"] == BW and x["setting"] == r["setting"]]
            out.append(f"  drain {r['setting']:<10} {r['per_s'] or 0:>8,} tasks/s  (one server "
                       f"{spread(one)})  claimed twice {r['claimed_twice']}  retried "
                       f"{r['retried']}  CPU/10k {cpu_cell([r], 'cpu_per_10k')}")
    return "\n".join(out)


# ----- optional phases ----------------------------------------------------------------------

def replicas_phase(args: argparse.Namespace, db_url: str, url: str, conn: psycopg.Connection,
                   cpu: CpuSampler, servers: list[subprocess.Popen]) -> dict[str, Any]:
    urls = [url]
    for _ in range(args.replicas - 1):
        extra, extra_url = start_server(db_url, SERVER_SETTINGS)
        servers.append(extra)
        cpu.add("bw_server", extra.pid)
        urls.append(extra_url)
    leader = "SELECT holder, acquired_at::text FROM leader_leases WHERE name = 'scheduler'"
    before = conn.execute(leader).fetchall()
    rounds = [_bw.drain_round(urls, conn, cpu, args.tasks, s, args.limit, 0, SEND_BATCH)
              for s in SETTINGS]
    return {"servers": len(urls), "rounds": rounds,
            "scheduler_leader": {"before": before, "after": conn.execute(leader).fetchall()}}


def flat_phase(args: argparse.Namespace, url: str, conn: psycopg.Connection,
               cpu: CpuSampler) -> dict[str, Any]:
    n = args.flat_tasks or args.tasks
    seconds = _bw.prefill(conn, args.flat_finished, args.flat_backlog)
    size = conn.execute("SELECT pg_total_relation_size('tasks') "
                        "+ pg_total_relation_size('task_events')").fetchone()[0]
    return {"finished": args.flat_finished, "backlog": args.flat_backlog, "tasks": n,
            "prefill_seconds": round(seconds, 1),
            "bytes_per_task": round(size / max(1, args.flat_finished + args.flat_backlog)),
            "rounds": [_bw.drain_round([url], conn, cpu, n, s, args.limit, args.latency_samples,
                                     SEND_BATCH, fresh=False) for s in SETTINGS]}


# ----- main ---------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--tasks", type=int, default=20_000, help="tasks per drain")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--latency-samples", type=int, default=100,
                        help="single sends timed after each Branchwork drain (0: none)")
    parser.add_argument("--flat", action="store_true", help="also drain over a full table")
    parser.add_argument("--flat-finished", type=int, default=1_000_000)
    parser.add_argument("--flat-backlog", type=int, default=100_000)
    parser.add_argument("--flat-tasks", type=int, default=None, help="N of the flat drains")
    parser.add_argument("--replicas", type=int, default=1, help="servers for a last drain")
    parser.add_argument("--limit", type=float, default=300.0, help="seconds per drain at most")
    args = parser.parse_args()

    load_before = os.getloadavg()
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    db = FreshDatabase()
    pgq_name = db.name + "_pgq"
    admin = with_database(db.server, "postgres")
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{pgq_name}"')
    pgq_url = with_database(db.server, pgq_name)
    servers: list[subprocess.Popen] = []
    cpu = None
    report: dict[str, Any] = {"tasks": args.tasks, "rounds_run": args.rounds, "started": started}
    try:
        _pgq.install(pgq_url)
        server, url = start_server(db.url, SERVER_SETTINGS)
        servers.append(server)
        cpu = CpuSampler(admin, [db.name, pgq_name])
        cpu.add("bw_server", server.pid)
        rounds: list[dict[str, Any]] = []
        with psycopg.connect(db.url, autocommit=True) as conn:
            report["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
            for _ in range(args.rounds):
                for setting in SETTINGS:
                    rounds.append(attempt(lambda s=setting: _pgq.drain_round(
                        pgq_url, cpu, args.tasks, s, args.limit, SEND_BATCH),
                        failed_round(PGQ, setting)))
                    rounds.append(attempt(lambda s=setting: _bw.drain_round(
                        [url], conn, cpu, args.tasks, s, args.limit, args.latency_samples,
                        SEND_BATCH), failed_round(BW, setting)))
            report["rounds"] = rounds
            if args.replicas > 1:
                report["replicas"] = attempt(lambda: replicas_phase(
                    args, db.url, url, conn, cpu, servers), {})
            if args.flat:
                report["flat"] = attempt(lambda: flat_phase(args, url, conn, cpu), {})
    finally:
        if cpu is not None:
            cpu.close()
        for s in servers:
            stop(s)
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{pgq_name}" WITH (FORCE)')
        db.drop()
    report.update(pgqueuer_version=_pgq.version(), load_before=[round(x, 2) for x in load_before],
                  load_after=[round(x, 2) for x in os.getloadavg()], commit=commit(),
                  machine=machine(), argv=sys.argv[1:])
    print(json.dumps(report, indent=2) if args.json else table(report))


if __name__ == "__main__":
    main()

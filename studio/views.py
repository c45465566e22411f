"""What each studio page and partial shows, composed from the read model (``app/read``: the
same functions the API's GET routes use); no SQL and no HTTP here.

Loaders that many open browsers call after the same change signal go through the
process's :class:`~branchwork.studio.live.VersionCache`, so they cost one query per change.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from ..app.read import charts as chart_read
from ..app.read import health as health_read
from ..app.read import kv as kv_read
from ..app.read import overview as overview_read
from ..app.read import queues as queue_read
from ..app.read import schedules as schedule_read
from ..app.read import tasks as task_read
from ..app.read import trees as tree_read
from ..app.read import workers as worker_read
from ..app.read import workflows as workflow_read
from ..protocol import TASK_STATUSES
from . import charts, dag, tree
from .live import VersionCache
from .render import args_label

CHILDREN_SHOWN = 50
OVERVIEW_MIN_AGE = 2.0
TASKS_PER_PAGE = 50
ROOTS_PER_PAGE = 25
RUNS_PER_PAGE = 50
KEYS_PER_PAGE = 100
LIST_LIMIT = 1000  # definitions, schedules: small tables, bounded all the same
CHANNEL_SHOWN = 1000
# Stuck marks and queue health change with time alone, not with a change the observer sees:
# cached results of those loaders are kept at most this long.
TIMELY_SECONDS = 5.0


def _tick() -> int:
    return int(time.monotonic() // TIMELY_SECONDS)


async def queue_health(pool: AsyncConnectionPool, cache: VersionCache,
                       limits: health_read.Thresholds) -> dict[str, Any]:
    """The studio banner's report (``app/read/health.py``), at most one query per interval."""
    return await cache.get(("health", limits, _tick()),
                           lambda: health_read.queue_health(pool, limits))


async def overview(pool: AsyncConnectionPool, cache: VersionCache,
                   offline_after: float) -> dict[str, Any]:
    async def load() -> dict[str, Any]:
        async with pool.connection() as conn:
            stats, series = await overview_read.queue_activity(conn)
            online = await worker_read.workers_online(conn, offline_after)
        empty = {"succeeded": [0] * 60, "failed": [0] * 60}
        for q in stats:
            s = series.get(q["name"], empty)
            q["chart"] = charts.throughput_chart(s["succeeded"], s["failed"], 180, 32)
        total = charts.combine(series)
        return {"queues": stats, "workers_online": online,
                "chart": charts.throughput_chart(total["succeeded"], total["failed"], 720, 120),
                "totals": {status: sum(q[status] for q in stats) for status in TASK_STATUSES}}
    # Both aggregates scan the task table: under constant change, at most every 2 seconds.
    return await cache.get(("overview",), load, min_age=OVERVIEW_MIN_AGE, topic="overview")


async def queue_names(pool: AsyncConnectionPool) -> list[str]:
    return await queue_read.queue_names(pool)


async def task_list(pool: AsyncConnectionPool, cache: VersionCache, *, status: str | None,
                    queue: str | None, name: str | None, since: datetime | None,
                    until: datetime | None, cursor: int | None) -> dict[str, Any]:
    filters = task_read.TaskFilter(status=status, queue=queue, name_contains=name,
                                   since=since, until=until)

    async def load() -> dict[str, Any]:
        page = await task_read.list_tasks(pool, filters, cursor=cursor, limit=TASKS_PER_PAGE,
                                          brief=True)
        return {"tasks": page.items, "next_cursor": page.next_cursor}
    return await cache.get(("tasks", filters, cursor, _tick()), load)


async def task_detail(pool: AsyncConnectionPool, cache: VersionCache,
                      task_id: int) -> dict[str, Any] | None:
    return await cache.get(("task", task_id, _tick()), lambda: _task_detail(pool, task_id))


async def _task_detail(pool: AsyncConnectionPool, task_id: int) -> dict[str, Any] | None:
    async with pool.connection() as conn:
        task = await task_read.find_task(conn, task_id)
        if task is None:
            return None
        parent = (await task_read.task_brief(conn, task["parent_id"])
                  if task["parent_id"] is not None else None)
        kids = await task_read.children(conn, task_id, CHILDREN_SHOWN)
        kid_total = (len(kids) if len(kids) < CHILDREN_SHOWN
                     else await task_read.child_count(conn, task_id))
    history = task["history"]
    return {"task": task, "attempts": attempts_of(history), "history": history,
            "logs": task["logs"], "parent": parent, "children": kids,
            "children_total": kid_total}


def attempts_of(history: list[Any]) -> list[dict[str, Any]]:
    """Group the event history into attempts for the timeline: who ran it, when, outcome."""
    attempts: dict[int, dict[str, Any]] = {}
    for e in history:
        if e["attempt"] < 1:
            continue
        a = attempts.setdefault(e["attempt"], {"attempt": e["attempt"], "worker_id": None,
                                               "started_at": None, "ended_at": None,
                                               "outcome": None, "error": None, "events": []})
        a["events"].append(e)
        if e["event"] == "claimed":
            a["started_at"] = e["at"]
            a["worker_id"] = e["worker_id"]
        elif e["event"] not in ("cancel_requested", "retried_manually", "resumed"):
            a["ended_at"] = e["at"]
            a["outcome"] = e["event"]
            a["error"] = e["error"]
            a["worker_id"] = a["worker_id"] or e["worker_id"]
    return [attempts[k] for k in sorted(attempts)]


async def tree_view(pool: AsyncConnectionPool, cache: VersionCache, task_id: int,
                    open_text: str | None) -> dict[str, Any] | None:
    """The partly open tree, its nodes labelled by their args, and the timeline of its first
    ``TIMELINE_TASKS`` tasks."""
    async def load() -> dict[str, Any] | None:
        found = await tree.load(pool, task_id, open_text)
        if found is None:
            return None
        nodes = list(tree.walk(found.root))
        previews = await chart_read.args_previews(pool, [n.id for n in nodes])
        for n in nodes:
            n.row["args_label"] = args_label(previews.get(n.id, ""))
        spans = await chart_read.tree_spans(pool, found.root.id, TIMELINE_TASKS)
        return {"tree": found, "gantt": timeline(spans, by="name"),
                "gantt_cut": len(spans) >= TIMELINE_TASKS}
    return await cache.get(("tree", task_id, open_text), load)


TIMELINE_TASKS = 200


def timeline(spans: list[Any], by: str) -> charts.Gantt:
    """A Gantt of tasks labelled by ``by`` (``name``, or ``workflow_node`` for a run)."""
    return charts.gantt(
        list(spans), datetime.now(UTC),
        label=lambda s: f"#{s['id']} {s.get(by) or s['name']}",
        detail=lambda s: args_label(s["args_preview"], 40))


async def tree_index(pool: AsyncConnectionPool, cache: VersionCache,
                     cursor: int | None) -> dict[str, Any]:
    """Roots that sent tasks, newest first (the API's ``GET /v1/trees?with_children``)."""
    async def load() -> dict[str, Any]:
        page = await tree_read.list_roots(pool, with_children=True, cursor=cursor,
                                          limit=ROOTS_PER_PAGE)
        return {"roots": page.items, "next_cursor": page.next_cursor, "cursor": cursor}
    return await cache.get(("trees", cursor), load)


async def workers(pool: AsyncConnectionPool, cache: VersionCache,
                  offline_after: float) -> dict[str, Any]:
    async def load() -> dict[str, Any]:
        async with pool.connection() as conn:
            rows = await worker_read.list_workers(conn, offline_after)
            running = await overview_read.running_by_worker(conn, [w["id"] for w in rows])
        return {"workers": [{**w, "running_tasks": running.get(w["id"], [])} for w in rows]}
    return await cache.get(("workers",), load)


async def definitions(pool: AsyncConnectionPool, cache: VersionCache) -> dict[str, Any]:
    async def load() -> dict[str, Any]:
        return {"definitions": await worker_read.list_definitions(pool)}
    return await cache.get(("definitions",), load)


# The kv table has no cheap change marker (no index on updated_at, and it may be large), so
# the browser refetches this page on a timer. The cache key holds the time slot: however
# many browsers show the same page, it costs one bounded query per slot.
KV_REFRESH_SECONDS = 3


async def kv_page(pool: AsyncConnectionPool, cache: VersionCache | None, prefix: str,
                  after: str | None) -> dict[str, Any]:
    """``cache`` None (a page load): read now, so a key just set shows at once."""
    async def load() -> dict[str, Any]:
        page = await kv_read.list_keys(pool, prefix, after=after, limit=KEYS_PER_PAGE)
        return {"items": page.items, "next_after": page.next_cursor}
    if cache is None:
        return await load()
    slot = int(time.monotonic() // KV_REFRESH_SECONDS)
    return await cache.get(("kv", prefix, after, slot), load)


async def schedules(pool: AsyncConnectionPool, cache: VersionCache | None) -> dict[str, Any]:
    """``cache`` None (after an action): read now."""
    async def load() -> dict[str, Any]:
        return {"schedules": await schedule_read.list_schedules(pool, LIST_LIMIT)}
    if cache is None:
        return await load()
    return await cache.get(("schedules",), load)


async def workflows(pool: AsyncConnectionPool, cache: VersionCache,
                    name: str | None, cursor: int | None) -> dict[str, Any]:
    async def load() -> dict[str, Any]:
        async with pool.connection() as conn:
            defs = await workflow_read.list_definitions(conn, LIST_LIMIT)
            runs = await workflow_read.list_runs(conn, workflow=name, cursor=cursor,
                                                 limit=RUNS_PER_PAGE)
        return {"definitions": defs, "runs": runs.items, "next_cursor": runs.next_cursor}
    return await cache.get(("workflows", name, cursor), load)


async def workflow_run(pool: AsyncConnectionPool, cache: VersionCache,
                       run_id: int) -> dict[str, Any] | None:
    async def load() -> dict[str, Any] | None:
        run = await workflow_read.find_run(pool, run_id, CHANNEL_SHOWN)
        if run is None:
            return None
        nodes = run.pop("nodes")
        channel = run.pop("channel")
        spans = await chart_read.run_spans(pool, run_id, TIMELINE_TASKS)
        return {"run": run, "nodes": nodes, "channel": channel, "dag": dag.layout(nodes),
                "gantt": timeline(spans, by="workflow_node")}
    return await cache.get(("run", run_id), load)


# The queue depth curve and the run time percentiles each scan the task table (no index on
# the timestamps they read): recomputed at most this often, however many browsers look.
CHARTS_MIN_AGE = 5.0
RUN_TIME_WINDOWS = {"1h": 3600, "24h": 86400, "7d": 7 * 86400}


async def queues(pool: AsyncConnectionPool, cache: VersionCache | None) -> dict[str, Any]:
    """Every queue with its settings and counts, and its depth over the last hour.
    ``cache`` None (after an action): read now."""
    async def load() -> dict[str, Any]:
        async with pool.connection() as conn:
            stats = await queue_read.queue_stats(conn)
            depth = await chart_read.queue_depth(conn, 60)
        return {"queues": stats, "depth": charts.line_chart(depth, 720, 160),
                "depth_now": {q: v[-1] for q, v in depth.items()}}
    if cache is None:
        return await load()
    return await cache.get(("queues",), load, min_age=CHARTS_MIN_AGE, topic="queues")


async def performance(pool: AsyncConnectionPool, cache: VersionCache,
                      window: str) -> dict[str, Any]:
    async def load() -> dict[str, Any]:
        rows = await chart_read.run_times(pool, RUN_TIME_WINDOWS[window])
        return {"rows": charts.run_time_rows([dict(r) for r in rows])}
    return await cache.get(("performance", window), load, min_age=CHARTS_MIN_AGE,
                           topic="performance")

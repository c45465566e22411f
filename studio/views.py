"""What each studio page and partial shows, loaded from the database (no HTTP here).

Loaders that many open browsers call after the same change signal go through the
process's :class:`~branchwork.studio.live.VersionCache`, so they cost one query per change.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from ..app.store import kv as kv_store
from ..app.store import tasks as task_store
from ..app.store import trees as tree_store
from ..app.store import workers as worker_store
from . import charts, dag, queries, tree
from .live import VersionCache

CHILDREN_SHOWN = 50
OVERVIEW_MIN_AGE = 2.0


async def overview(pool: AsyncConnectionPool, cache: VersionCache,
                   offline_after: float) -> dict[str, Any]:
    async def load() -> dict[str, Any]:
        async with pool.connection() as conn:
            stats, series = await queries.overview(conn)
            online = await queries.workers_online(conn, offline_after)
        empty = {"succeeded": [0] * 60, "failed": [0] * 60}
        for q in stats:
            s = series.get(q["name"], empty)
            q["chart"] = charts.throughput_chart(s["succeeded"], s["failed"], 180, 32)
        total = charts.combine(series)
        return {"queues": stats, "workers_online": online,
                "chart": charts.throughput_chart(total["succeeded"], total["failed"], 720, 120),
                "totals": {status: sum(q[status] for q in stats)
                           for status in ("queued", "running", "succeeded", "failed",
                                          "cancelled")}}
    # Both aggregates scan the task table: under constant change, at most every 2 seconds.
    return await cache.get(("overview",), load, min_age=OVERVIEW_MIN_AGE, topic="overview")


async def task_list(pool: AsyncConnectionPool, cache: VersionCache, *, status: str | None,
                    queue: str | None, name: str | None, since: datetime | None,
                    until: datetime | None, cursor: int | None, limit: int) -> dict[str, Any]:
    async def load() -> dict[str, Any]:
        async with pool.connection() as conn:
            rows = await queries.list_tasks(conn, status=status, queue=queue, name=name,
                                            since=since, until=until, before_id=cursor,
                                            limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return {"tasks": rows, "next_cursor": rows[-1]["id"] if more and rows else None}
    key = ("tasks", status, queue, name, since, until, cursor, limit)
    return await cache.get(key, load)


async def task_detail(pool: AsyncConnectionPool, cache: VersionCache,
                      task_id: int) -> dict[str, Any] | None:
    return await cache.get(("task", task_id), lambda: _task_detail(pool, task_id))


async def _task_detail(pool: AsyncConnectionPool, task_id: int) -> dict[str, Any] | None:
    async with pool.connection() as conn:
        brief = await queries.task_brief(conn, task_id)
        if brief is None:
            return None
        task = await task_store.get(conn, task_id)
        history = await task_store.history(conn, task_id)
        logs = await task_store.logs(conn, task_id)
        parent = (await queries.task_brief(conn, task["parent_id"])
                  if task["parent_id"] is not None else None)
        kids = await queries.children(conn, task_id, CHILDREN_SHOWN)
        kid_total = (len(kids) if len(kids) < CHILDREN_SHOWN
                     else await queries.child_count(conn, task_id))
    return {"task": task, "attempts": attempts_of(history), "history": history, "logs": logs,
            "parent": parent, "children": kids, "children_total": kid_total}


def attempts_of(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
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
        elif e["event"] not in ("cancel_requested", "retried_manually"):
            a["ended_at"] = e["at"]
            a["outcome"] = e["event"]
            a["error"] = e["error"]
            a["worker_id"] = a["worker_id"] or e["worker_id"]
    return [attempts[k] for k in sorted(attempts)]


async def tree_view(pool: AsyncConnectionPool, cache: VersionCache, task_id: int,
                    open_text: str | None) -> tree.TreeView | None:
    async def load() -> tree.TreeView | None:
        async with pool.connection() as conn:
            return await tree.load(conn, task_id, open_text)
    return await cache.get(("tree", task_id, open_text), load)


async def tree_index(pool: AsyncConnectionPool, cache: VersionCache,
                     cursor: int | None) -> dict[str, Any]:
    async def load() -> dict[str, Any]:
        async with pool.connection() as conn:
            roots = await queries.tree_roots(conn, cursor, 26)
            more = len(roots) > 25
            roots = roots[:25]
            rollups = await tree_store.rollups(conn, [r["id"] for r in roots])
        for r in roots:
            r["rollup"] = rollups[r["id"]]
            r["total"] = sum(r["rollup"].values())
        return {"roots": roots, "next_cursor": roots[-1]["id"] if more and roots else None,
                "cursor": cursor}
    return await cache.get(("trees", cursor), load)


async def workers(pool: AsyncConnectionPool, cache: VersionCache,
                  offline_after: float) -> dict[str, Any]:
    async def load() -> dict[str, Any]:
        async with pool.connection() as conn:
            rows = await worker_store.list_workers(conn, offline_after)
            running = await queries.running_by_worker(conn, [w["id"] for w in rows])
        for w in rows:
            w["running_tasks"] = running.get(w["id"], [])
        return {"workers": rows}
    return await cache.get(("workers",), load)


async def definitions(pool: AsyncConnectionPool, cache: VersionCache) -> dict[str, Any]:
    async def load() -> dict[str, Any]:
        async with pool.connection() as conn:
            return {"definitions": await worker_store.list_definitions(conn)}
    return await cache.get(("definitions",), load)


# The kv table has no cheap change marker (no index on updated_at, and it may be large), so
# the browser refetches this page on a timer. The cache key holds the time slot: however
# many browsers show the same page, it costs one bounded query per slot.
KV_REFRESH_SECONDS = 3


async def kv_page(pool: AsyncConnectionPool, cache: VersionCache | None, prefix: str,
                  after: str | None, limit: int) -> dict[str, Any]:
    """``cache`` None (a page load): read now, so a key just set shows at once."""
    async def load() -> dict[str, Any]:
        async with pool.connection() as conn:
            rows = await kv_store.list_keys(conn, prefix, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return {"items": rows, "next_after": rows[-1]["key"] if more and rows else None}
    if cache is None:
        return await load()
    slot = int(time.monotonic() // KV_REFRESH_SECONDS)
    return await cache.get(("kv", prefix, after, limit, slot), load)


async def schedules(pool: AsyncConnectionPool, cache: VersionCache) -> dict[str, Any]:
    async def load() -> dict[str, Any]:
        async with pool.connection() as conn:
            return {"schedules": await queries.schedules(conn)}
    return await cache.get(("schedules",), load)


async def workflows(pool: AsyncConnectionPool, cache: VersionCache,
                    name: str | None, cursor: int | None) -> dict[str, Any]:
    async def load() -> dict[str, Any]:
        async with pool.connection() as conn:
            defs = await queries.workflow_definitions(conn)
            runs = await queries.workflow_runs(conn, name=name, before_id=cursor, limit=51)
        more = len(runs) > 50
        runs = runs[:50]
        return {"definitions": defs, "runs": runs,
                "next_cursor": runs[-1]["id"] if more and runs else None}
    return await cache.get(("workflows", name, cursor), load)


async def workflow_run(pool: AsyncConnectionPool, cache: VersionCache,
                       run_id: int) -> dict[str, Any] | None:
    async def load() -> dict[str, Any] | None:
        async with pool.connection() as conn:
            run = await queries.workflow_run(conn, run_id)
            if run is None:
                return None
            nodes = await queries.workflow_nodes(conn, run_id)
            channel = await queries.workflow_channel(conn, run_id)
        return {"run": run, "nodes": nodes, "channel": channel, "dag": dag.layout(nodes)}
    return await cache.get(("run", run_id), load)

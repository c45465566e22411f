"""The studio's dashboard and live signals: counts and throughput per queue, running tasks
per worker, the change markers and the topics a change touches (``app/store/insights.py``)."""

from __future__ import annotations

from typing import Any

from ...protocol import TASK_STATUSES
from ..store import insights as store
from ..store.insights import RunningTask
from .paging import Db, connection, fetch

MINUTES = 60


async def queue_activity(db: Db) -> tuple[list[dict[str, Any]], dict[str, dict[str, list[int]]]]:
    """Each queue with its counts by status, and per queue the tasks that finished (succeeded,
    failed) in each minute of the last hour, oldest minute first."""
    async with connection(db) as conn:
        queues = {r["name"]: {**r, **{s: 0 for s in TASK_STATUSES}}
                  for r in await store.queue_settings(conn)}
        rows = await store.status_minutes(conn)
    series: dict[str, dict[str, list[int]]] = {}
    for r in rows:
        q = queues.get(r["queue"])
        if q is not None:
            q[r["status"]] += r["n"]
        if r["minutes_ago"] is not None:
            s = series.setdefault(r["queue"], {"succeeded": [0] * MINUTES,
                                               "failed": [0] * MINUTES})
            s[r["status"]][MINUTES - 1 - r["minutes_ago"]] += r["n"]
    return list(queues.values()), series


async def running_by_worker(db: Db, worker_ids: list[str]) -> dict[str, list[RunningTask]]:
    if not worker_ids:
        return {}
    async with connection(db) as conn:
        rows = await store.running_by_worker(conn, worker_ids)
    out: dict[str, list[RunningTask]] = {}
    for r in rows:
        out.setdefault(r["worker_id"], []).append(r)
    return out


async def change_markers(db: Db) -> dict[str, Any]:
    return await fetch(db, store.change_markers)


async def changed_task_topics(db: Db, task_id: int, event_id: int, limit: int) -> set[str]:
    """Topics (``task:<id>``, ``root:<id>``, ``run:<id>``) of the tasks created or changed
    since the given marks; ``{"*"}`` when more than ``limit`` changed."""
    async with connection(db) as conn:
        rows = await store.changed_tasks(conn, task_id, event_id, limit + 1)
    if len(rows) > limit:
        return {"*"}
    topics: set[str] = set()
    for r in rows:
        topics.add(f"task:{r['id']}")
        topics.add(f"root:{r['root_id']}")
        if r["workflow_run_id"] is not None:
            topics.add(f"run:{r['workflow_run_id']}")
    return topics

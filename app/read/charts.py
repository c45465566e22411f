"""What the studio's charts show: queue depth over time, run times and failure rate per task
name, and the spans of a tree's or a run's tasks for a timeline (``app/store/insights.py``).

Queue depth is not sampled into a table: it is rebuilt from task timestamps. Walking back
minute by minute from today's queued count, a minute's arrivals (``created_at``) are taken
off and its departures (the claim, ``started_at``, or a cancel before any claim) put back.
A retried task's earlier claims are not kept (``started_at`` is its last), so the curve is
an estimate over retries; it is exact for tasks run once.
"""

from __future__ import annotations

from ..store import insights as store
from ..store.insights import RunTimes, Span
from .paging import Db, connection, fetch

__all__ = ["RunTimes", "Span", "args_previews", "queue_depth", "run_spans", "run_times", "tree_spans"]


def depth_series(queued_now: int, arrived: list[int], left: list[int]) -> list[int]:
    """Depth at the end of each minute, oldest first (``arrived``/``left`` index = minutes
    ago), the last value being now."""
    minutes = len(arrived)
    depth = [0] * minutes
    current = queued_now
    for ago in range(minutes):
        depth[minutes - 1 - ago] = max(current, 0)
        current = current - arrived[ago] + left[ago]
    return depth


async def queue_depth(db: Db, minutes: int = 60) -> dict[str, list[int]]:
    """Per queue, its queued tasks at the end of each of the last ``minutes`` minutes."""
    async with connection(db) as conn:
        now = {r["queue"]: r["n"] for r in await store.queued_now(conn)}
        flows = await store.queue_flow(conn, minutes)
    arrived: dict[str, list[int]] = {}
    left: dict[str, list[int]] = {}
    for r in flows:
        a = arrived.setdefault(r["queue"], [0] * minutes)
        d = left.setdefault(r["queue"], [0] * minutes)
        if r["arrived_ago"] is not None and 0 <= r["arrived_ago"] < minutes:
            a[r["arrived_ago"]] += r["n"]
        if r["left_ago"] is not None and 0 <= r["left_ago"] < minutes:
            d[r["left_ago"]] += r["n"]
    names = sorted(set(now) | set(arrived))
    return {q: depth_series(now.get(q, 0), arrived.get(q, [0] * minutes),
                            left.get(q, [0] * minutes)) for q in names}


async def run_times(db: Db, seconds: float, limit: int = 50) -> list[RunTimes]:
    """Per task name (the busiest ``limit``), over the last ``seconds``: finished, failed,
    run time p50 and p95 in seconds."""
    return await fetch(db, store.run_times, seconds, limit)


async def tree_spans(db: Db, root_id: int, limit: int) -> list[Span]:
    return await fetch(db, store.tree_spans, root_id, limit)


async def run_spans(db: Db, run_id: int, limit: int) -> list[Span]:
    return await fetch(db, store.run_spans, run_id, limit)


async def args_previews(db: Db, ids: list[int]) -> dict[int, str]:
    """The first characters of each task's args as JSON text: what labels a tree node."""
    if not ids:
        return {}
    rows = await fetch(db, store.args_previews, ids)
    return {r["id"]: r["args_preview"] for r in rows}

"""NOTIFY once per transaction, for the distinct queues it made work ready in."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from psycopg import AsyncCursor

from ..notifier import CHANNEL, encode


def payloads(rows: Iterable[tuple[str, datetime | None]]) -> list[str]:
    """One payload per queue: ready now, or the earliest future time something becomes ready."""
    now_queues: set[str] = set()
    later: dict[str, float] = {}
    for queue, run_at in rows:
        if run_at is None:
            now_queues.add(queue)
        else:
            ts = run_at.timestamp()
            later[queue] = min(ts, later.get(queue, ts))
    out = [encode(q) for q in sorted(now_queues)]
    out += [encode(q, ts) for q, ts in sorted(later.items()) if q not in now_queues]
    return out


async def notify(cur: AsyncCursor, rows: Iterable[tuple[str, datetime | None]]) -> None:
    messages = payloads(rows)
    if messages:
        await cur.execute(
            "SELECT pg_notify(%s, m) FROM unnest(%s::text[]) AS m", (CHANNEL, messages)
        )

"""Cron schedules in SQL (statements only): rows, the due one, and its bookkeeping.

When a schedule fires and what it sends is decided in ``app/engine/schedules.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

from psycopg import AsyncConnection, AsyncCursor

from .sql import dumps

COLUMNS = """name, kind, target, cron, timezone, args, options, misfire, grace_seconds, paused,
    source, next_fire_at, last_fire_at, last_sent_id, created_at, updated_at"""


class ScheduleRow(TypedDict):
    name: str
    kind: str
    target: str
    cron: str
    timezone: str
    args: Any
    options: Any
    misfire: str
    grace_seconds: float
    paused: bool
    source: str
    next_fire_at: datetime
    last_fire_at: datetime | None
    last_sent_id: int | None
    created_at: datetime
    updated_at: datetime


async def db_now(conn: AsyncConnection) -> datetime:
    async with conn.cursor() as cur:
        await cur.execute("SELECT now() AS now")
        row = await cur.fetchone()
        assert row is not None
        return row["now"]


async def policy(conn: AsyncConnection, name: str) -> dict[str, Any] | None:
    """The time zone, misfire policy and grace of an existing schedule."""
    async with conn.cursor() as cur:
        await cur.execute("SELECT timezone, misfire, grace_seconds FROM schedules "
                          "WHERE name = %s", (name,))
        return await cur.fetchone()


UPSERT_SQL = f"""
INSERT INTO schedules (name, kind, target, cron, timezone, args, options, misfire,
    grace_seconds, paused, source, next_fire_at)
VALUES (%(name)s, %(kind)s, %(target)s, %(cron)s, %(timezone)s, %(args)s::jsonb,
    %(options)s::jsonb, %(misfire)s, %(grace_seconds)s, COALESCE(%(paused)s, false),
    %(source)s, %(first)s)
ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, target = EXCLUDED.target,
    args = EXCLUDED.args, options = EXCLUDED.options, misfire = EXCLUDED.misfire,
    grace_seconds = EXCLUDED.grace_seconds, source = EXCLUDED.source,
    paused = COALESCE(%(paused)s, schedules.paused),
    next_fire_at = CASE WHEN schedules.cron = EXCLUDED.cron
        AND schedules.timezone = EXCLUDED.timezone
        THEN schedules.next_fire_at ELSE EXCLUDED.next_fire_at END,
    cron = EXCLUDED.cron, timezone = EXCLUDED.timezone, updated_at = now()
RETURNING {COLUMNS}
"""


async def upsert(conn: AsyncConnection, spec: dict[str, Any], first: datetime) -> ScheduleRow:
    """Create or update; the next fire time (``first``) is taken only when the timing
    (cron, time zone) changed or the schedule is new."""
    async with conn.cursor() as cur:
        await cur.execute(UPSERT_SQL, {
            **spec, "args": dumps(spec.get("args")), "options": dumps(spec.get("options") or {}),
            "first": first})
        row = await cur.fetchone()
        assert row is not None
        return row  # type: ignore[return-value]


async def get(conn: AsyncConnection, name: str) -> ScheduleRow | None:
    async with conn.cursor() as cur:
        await cur.execute(f"SELECT {COLUMNS} FROM schedules WHERE name = %s", (name,))
        return await cur.fetchone()  # type: ignore[return-value]


async def list_all(conn: AsyncConnection, limit: int | None = None) -> list[ScheduleRow]:
    async with conn.cursor() as cur:
        await cur.execute(f"SELECT {COLUMNS} FROM schedules ORDER BY name LIMIT %s", (limit,))
        return await cur.fetchall()  # type: ignore[return-value]


async def delete(conn: AsyncConnection, name: str) -> bool:
    async with conn.cursor() as cur:
        await cur.execute("DELETE FROM schedules WHERE name = %s RETURNING name", (name,))
        return await cur.fetchone() is not None


async def lock_timing(cur: AsyncCursor, name: str) -> dict[str, Any] | None:
    """``cron``, ``timezone``, ``paused`` and the database's ``now``, the row locked."""
    await cur.execute("SELECT cron, timezone, paused, now() AS now FROM schedules "
                      "WHERE name = %s FOR UPDATE", (name,))
    return await cur.fetchone()


async def set_paused(cur: AsyncCursor, name: str, paused: bool,
                     next_fire_at: datetime | None) -> ScheduleRow:
    """``next_fire_at`` None keeps the stored one."""
    await cur.execute(
        f"UPDATE schedules SET paused = %s, updated_at = now(), "
        f"next_fire_at = COALESCE(%s, next_fire_at) WHERE name = %s RETURNING {COLUMNS}",
        (paused, next_fire_at, name))
    row = await cur.fetchone()
    assert row is not None
    return row  # type: ignore[return-value]


async def lock_next_due(cur: AsyncCursor) -> dict[str, Any] | None:
    """The schedule whose fire is most overdue, locked (others' locked ones skipped), with
    the database's ``now``."""
    await cur.execute(
        f"SELECT {COLUMNS}, now() AS now FROM schedules WHERE NOT paused "
        "AND next_fire_at <= now() ORDER BY next_fire_at LIMIT 1 FOR UPDATE SKIP LOCKED")
    return await cur.fetchone()


async def record_fires(cur: AsyncCursor, name: str, next_fire_at: datetime,
                       last_fire_at: datetime | None, last_sent_id: int | None) -> None:
    """After a round of fires: the next time, and (when any fired) the last fire and send."""
    await cur.execute(
        "UPDATE schedules SET next_fire_at = %s, last_fire_at = COALESCE(%s, last_fire_at), "
        "last_sent_id = COALESCE(%s, last_sent_id) WHERE name = %s",
        (next_fire_at, last_fire_at, last_sent_id, name))

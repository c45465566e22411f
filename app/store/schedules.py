"""Cron schedules: rows, due selection and firing.

A fire sends with the idempotency key ``schedule:<name>:<fire time>`` (a task's
``idempotency_key``, or a workflow run's), so two schedulers that both fire the same time can
only create one run; the leader lease makes that race rare, the key makes it harmless.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter
from psycopg import AsyncConnection

from ..errors import ApiError, not_found
from ..jsonutil import dumps
from ..metrics import count_server_sent
from . import tasks as task_store
from . import workflows as wf_store
from .workflows import ensure_queues

MAX_CATCH_UP = 1000
COLUMNS = """name, kind, target, cron, timezone, args, options, misfire, grace_seconds, paused,
    source, next_fire_at, last_fire_at, last_sent_id, created_at, updated_at"""


def next_after(cron: str, tz: str, after: datetime) -> datetime:
    """The first fire time strictly after ``after``, computed in the schedule's time zone."""
    it = croniter(cron, after.astimezone(ZoneInfo(tz)))
    return it.get_next(datetime).astimezone(UTC)


def fire_times(cron: str, tz: str, first: datetime, now: datetime) -> list[datetime]:
    """Fire times from ``first`` (itself a fire time) up to ``now``, at most MAX_CATCH_UP."""
    out = []
    t = first
    while t <= now and len(out) < MAX_CATCH_UP:
        out.append(t)
        t = next_after(cron, tz, t)
    return out


async def db_now(conn: AsyncConnection) -> datetime:
    async with conn.cursor() as cur:
        await cur.execute("SELECT now() AS now")
        row = await cur.fetchone()
        assert row is not None
        return row["now"]


async def upsert(conn: AsyncConnection, spec: dict[str, Any],
                 keep_policy: bool = False) -> dict[str, Any]:
    """Create or update; the next fire time is recomputed only when the timing changed.

    ``keep_policy`` (a worker registering its schedules): an existing row keeps its time
    zone, misfire policy and grace, which only the API sets, so a worker restart does not
    undo them."""
    now = await db_now(conn)
    if keep_policy:
        async with conn.cursor() as cur:
            await cur.execute("SELECT timezone, misfire, grace_seconds FROM schedules "
                              "WHERE name = %s", (spec["name"],))
            existing = await cur.fetchone()
        if existing is not None:
            spec = {**spec, **existing}
    first = next_after(spec["cron"], spec["timezone"], now)
    async with conn.cursor() as cur:
        await cur.execute(
            f"""INSERT INTO schedules (name, kind, target, cron, timezone, args, options,
                   misfire, grace_seconds, paused, source, next_fire_at)
               VALUES (%(name)s, %(kind)s, %(target)s, %(cron)s, %(timezone)s, %(args)s::jsonb,
                   %(options)s::jsonb, %(misfire)s, %(grace_seconds)s,
                   COALESCE(%(paused)s, false), %(source)s, %(first)s)
               ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, target = EXCLUDED.target,
                   args = EXCLUDED.args, options = EXCLUDED.options, misfire = EXCLUDED.misfire,
                   grace_seconds = EXCLUDED.grace_seconds, source = EXCLUDED.source,
                   paused = COALESCE(%(paused)s, schedules.paused),
                   next_fire_at = CASE WHEN schedules.cron = EXCLUDED.cron
                       AND schedules.timezone = EXCLUDED.timezone
                       THEN schedules.next_fire_at ELSE EXCLUDED.next_fire_at END,
                   cron = EXCLUDED.cron, timezone = EXCLUDED.timezone, updated_at = now()
               RETURNING {COLUMNS}""",
            {**spec, "args": dumps(spec.get("args")), "options": dumps(spec.get("options") or {}),
             "first": first})
        row = await cur.fetchone()
        assert row is not None
        return row


async def get(conn: AsyncConnection, name: str) -> dict[str, Any]:
    async with conn.cursor() as cur:
        await cur.execute(f"SELECT {COLUMNS} FROM schedules WHERE name = %s", (name,))
        row = await cur.fetchone()
    if row is None:
        raise not_found("schedule", name)
    return row


async def list_all(conn: AsyncConnection) -> list[dict[str, Any]]:
    async with conn.cursor() as cur:
        await cur.execute(f"SELECT {COLUMNS} FROM schedules ORDER BY name")
        return await cur.fetchall()


async def delete(conn: AsyncConnection, name: str) -> None:
    async with conn.cursor() as cur:
        await cur.execute("DELETE FROM schedules WHERE name = %s RETURNING name", (name,))
        if await cur.fetchone() is None:
            raise not_found("schedule", name)


async def set_paused(conn: AsyncConnection, name: str, paused: bool) -> dict[str, Any]:
    """Pause or resume. Resuming starts from the next fire time after now: fires that fell
    in the pause were paused, not missed, so ``catch_up`` does not send them."""
    async with conn.cursor() as cur:
        await cur.execute("SELECT cron, timezone, paused, now() AS now FROM schedules "
                          "WHERE name = %s FOR UPDATE", (name,))
        current = await cur.fetchone()
        if current is None:
            raise not_found("schedule", name)
        resumed = current["paused"] and not paused
        following = next_after(current["cron"], current["timezone"], current["now"])
        await cur.execute(
            f"UPDATE schedules SET paused = %s, updated_at = now(), "
            f"next_fire_at = CASE WHEN %s THEN %s ELSE next_fire_at END WHERE name = %s "
            f"RETURNING {COLUMNS}", (paused, resumed, following, name))
        row = await cur.fetchone()
        assert row is not None
        return row


def idempotency_key(name: str, at: datetime) -> str:
    return f"schedule:{name}:{at.astimezone(UTC).isoformat()}"


async def _send(conn: AsyncConnection, sched: dict[str, Any], at: datetime) -> int:
    key = idempotency_key(sched["name"], at)
    options = sched["options"] or {}
    if sched["kind"] == "workflow":
        run_id, _ = await wf_store.create_run(
            conn, sched["target"], sched["args"], queue=options.get("queue"),
            priority=options.get("priority"), timeout_seconds=options.get("timeout_seconds"),
            idempotency_key=key)
        return run_id
    item = {**options, "name": sched["target"], "args": sched["args"],
            "idempotency_key": key}
    item.setdefault("queue", "default")
    for k, v in wf_store.TASK_DEFAULTS.items():
        item.setdefault(k, v)
    async with conn.cursor() as cur:
        await ensure_queues(cur, [item["queue"]])
    [out] = await task_store.send(conn, [item])
    count_server_sent([item], [out])
    return out.id


async def fire_due(conn: AsyncConnection, limit: int = 100) -> list[dict[str, Any]]:
    """Send every due fire of every due schedule, one transaction per schedule."""
    fired: list[dict[str, Any]] = []
    for _ in range(limit):
        async with conn.transaction(), conn.cursor() as cur:
            await cur.execute(
                f"SELECT {COLUMNS}, now() AS now FROM schedules WHERE NOT paused "
                "AND next_fire_at <= now() ORDER BY next_fire_at LIMIT 1 FOR UPDATE SKIP LOCKED")
            sched = await cur.fetchone()
            if sched is None:
                break
            now = sched["now"]
            times = fire_times(sched["cron"], sched["timezone"], sched["next_fire_at"], now)
            if sched["misfire"] == "skip":
                grace = timedelta(seconds=sched["grace_seconds"])
                times = [t for t in times if now - t <= grace]
                following = next_after(sched["cron"], sched["timezone"], now)
            else:
                last = times[-1] if times else sched["next_fire_at"]
                following = next_after(sched["cron"], sched["timezone"], last)
            sent_id = None
            for at in times:
                try:
                    sent_id = await _send(conn, sched, at)
                except ApiError as exc:  # e.g. the workflow was never registered
                    fired.append({"name": sched["name"], "at": at, "error": exc.message})
                    continue
                fired.append({"name": sched["name"], "at": at, "id": sent_id})
            await cur.execute(
                "UPDATE schedules SET next_fire_at = %s, "
                "last_fire_at = COALESCE(%s, last_fire_at), "
                "last_sent_id = COALESCE(%s, last_sent_id) WHERE name = %s",
                (following, times[-1] if times else None, sent_id, sched["name"]))
    return fired

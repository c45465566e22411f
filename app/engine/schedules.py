"""Cron schedules: create, pause, resume, remove, and fire what is due.

A fire sends with the idempotency key ``schedule:<name>:<fire time>`` (a task's
``idempotency_key``, or a workflow run's), so two schedulers that both fire the same time can
only create one run; the leader lease makes that race rare, the key makes it harmless.
Fire times are computed here (croniter, in the schedule's time zone); the store only keeps
them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from croniter import croniter
from psycopg import AsyncConnection, AsyncCursor
from psycopg_pool import AsyncConnectionPool

from ..store import queues as queue_store
from ..store import schedules as store
from .errors import DomainError, NotFound
from .payload import check_size
from .runs import create_run
from .send import send_in
from .tx import transaction
from .workflows import TASK_DEFAULTS

if TYPE_CHECKING:
    from ..metrics import Metrics
    from ..state import ServerState

MAX_CATCH_UP = 1000


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


def idempotency_key(name: str, at: datetime) -> str:
    return f"schedule:{name}:{at.astimezone(UTC).isoformat()}"


async def upsert(state: ServerState, spec: dict[str, Any],
                 keep_policy: bool = False) -> store.ScheduleRow:
    """Create or update; the next fire time is recomputed only when the timing changed.

    ``spec``: the schedule's columns (``name``, ``kind``, ``target``, ``cron``, ``timezone``,
    ``args``, ``options``, ``misfire``, ``grace_seconds``, ``paused``, ``source``).
    ``keep_policy`` (a worker registering its schedules): an existing row keeps its time
    zone, misfire policy and grace, which only the API sets, so a worker restart does not
    undo them."""
    [row] = await upsert_many(state, [spec], keep_policy)
    return row


async def upsert_many(state: ServerState, specs: list[dict[str, Any]],
                      keep_policy: bool = False) -> list[store.ScheduleRow]:
    """Several schedules in one transaction (a worker's, at its start)."""
    for spec in specs:
        check_size(spec.get("args"), state.settings.max_payload_bytes,
                   f"args of schedule {spec['name']}")
    async with transaction(state.pool) as cur:
        return [await _upsert(cur.connection, spec, keep_policy) for spec in specs]


async def _upsert(conn: AsyncConnection, spec: dict[str, Any],
                  keep_policy: bool) -> store.ScheduleRow:
    now = await store.db_now(conn)
    if keep_policy:
        existing = await store.policy(conn, spec["name"])
        if existing is not None:
            spec = {**spec, **existing}
    first = next_after(spec["cron"], spec["timezone"], now)
    return await store.upsert(conn, spec, first)


async def delete(state: ServerState, name: str) -> None:
    async with transaction(state.pool) as cur:
        if not await store.delete(cur.connection, name):
            raise NotFound.of("schedule", name)


async def set_paused(state: ServerState, name: str, paused: bool) -> store.ScheduleRow:
    """Pause or resume. Resuming starts from the next fire time after now: fires that fell
    in the pause were paused, not missed, so ``catch_up`` does not send them."""
    async with transaction(state.pool) as cur:
        current = await store.lock_timing(cur, name)
        if current is None:
            raise NotFound.of("schedule", name)
        resumed = current["paused"] and not paused
        following = next_after(current["cron"], current["timezone"], current["now"])
        return await store.set_paused(cur, name, paused, following if resumed else None)


async def _send(cur: AsyncCursor, sched: dict[str, Any], at: datetime,
                metrics: Metrics | None) -> int:
    key = idempotency_key(sched["name"], at)
    options = sched["options"] or {}
    if sched["kind"] == "workflow":
        run_id, _ = await create_run(
            cur, sched["target"], sched["args"], queue=options.get("queue"),
            priority=options.get("priority"), timeout_seconds=options.get("timeout_seconds"),
            idempotency_key=key, metrics=metrics)
        return run_id
    item = {**options, "name": sched["target"], "args": sched["args"],
            "idempotency_key": key}
    item.setdefault("queue", "default")
    for k, v in TASK_DEFAULTS.items():
        item.setdefault(k, v)
    await queue_store.ensure(cur, [item["queue"]])
    [out] = await send_in(cur, [item], metrics)
    return out.id


def _due_times(sched: dict[str, Any]) -> tuple[list[datetime], datetime]:
    """The fire times to send now under the misfire policy, and the next fire time after."""
    now = sched["now"]
    times = fire_times(sched["cron"], sched["timezone"], sched["next_fire_at"], now)
    if sched["misfire"] == "skip":
        grace = timedelta(seconds=sched["grace_seconds"])
        return ([t for t in times if now - t <= grace],
                next_after(sched["cron"], sched["timezone"], now))
    last = times[-1] if times else sched["next_fire_at"]
    return times, next_after(sched["cron"], sched["timezone"], last)


async def fire_due(pool: AsyncConnectionPool, limit: int = 100,
                   metrics: Metrics | None = None) -> list[dict[str, Any]]:
    """Send every due fire of every due schedule, one transaction per schedule.

    A fire that cannot be sent (the workflow was never registered, its args do not match)
    is reported in the answer (``error``) and skipped; the schedule moves on."""
    fired: list[dict[str, Any]] = []
    async with pool.connection() as conn:
        for _ in range(limit):
            async with conn.transaction(), conn.cursor() as cur:
                sched = await store.lock_next_due(cur)
                if sched is None:
                    break
                times, following = _due_times(sched)
                sent_id = None
                for at in times:
                    try:  # a refused fire is refused before it writes anything
                        sent_id = await _send(cur, sched, at, metrics)
                    except DomainError as exc:
                        fired.append({"name": sched["name"], "at": at, "error": exc.message})
                        continue
                    fired.append({"name": sched["name"], "at": at, "id": sent_id})
                await store.record_fires(cur, sched["name"], following,
                                         times[-1] if times else None, sent_id)
    return fired

"""Suspend and resume: a durable task's attempt ends waiting, and something later queues the
task again (docs/durable.md).

An attempt reports the outcome ``suspended`` with what it waits for. The report transaction
(``app/engine/report.py``) calls :func:`suspend_in`: the task becomes ``waiting`` (or, for a
sleep, ``queued`` at its due time), the attempt is given back, and whatever already holds
(an event in the look-back, say: ``READY_CHECKS``) resumes it before the transaction ends.
Everything that resumes a task (an event, a signal, an approval, a timeout, children that
finished) goes through :func:`resume_in`, which stores the wait's result as the task's step
and queues it; the task then runs again from the top and the wait returns that result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg_pool import AsyncConnectionPool

from ..store import events as event_store
from ..store import waits as wait_store
from ..store.sql import notify
from ..store.waits import ResumedRow, WaitRow
from .tx import Cursor, transaction

if TYPE_CHECKING:
    from ..state import ServerState

# Added to an event wait's look-back: the time between the worker reaching the wait and the
# suspend transaction is measured by the worker up to the report's send, not beyond; this
# margin covers the rest (the request in flight), so an event posted after the task started
# waiting is never missed. An event up to this much older may count too.
LOOKBACK_MARGIN_SECONDS = 1.0
# The most timed-out waits one pass of the wait service resumes.
TIMEOUT_BATCH = 1000
TIMED_OUT = {"timed_out": True}


@dataclass(frozen=True, slots=True)
class Wait:
    """What a suspended attempt waits for, as the worker reports it (``wait`` of an item)."""

    kind: str
    step: str
    key: str | None = None
    until: Any = None  # a sleep's due time (datetime), or
    seconds: float | None = None  # a sleep's length from the moment the task reached it
    timeout_seconds: float | None = None
    lookback_seconds: float | None = None
    waited_seconds: float = 0.0  # since the task reached the wait, measured by the worker
    detail: Any = None


@dataclass(frozen=True, slots=True)
class Resolution:
    """Resume ``task_id`` with ``result`` (stored as its wait's step), if it waits on a wait
    of ``kind`` (and ``key``) — None: any."""

    task_id: int
    result: Any
    kind: str | None = None
    key: str | None = None


ReadyCheck = Callable[[Cursor, list[WaitRow]], Awaitable[list[Resolution]]]


def event_result(event: dict[str, Any]) -> dict[str, Any]:
    """What a wait for an event stores, and ``ctx.wait_for_event`` returns the value of."""
    return {"timed_out": False, "value": event["payload"], "event_id": event["id"],
            "key": event["key"]}


async def events_in_lookback(cur: Cursor, waits: list[WaitRow]) -> list[Resolution]:
    """Waits for an event whose look-back already holds one: resumed at once."""
    found = await event_store.matches(cur, [w["task_id"] for w in waits])
    return [Resolution(m["task_id"], event_result(m), kind="event", key=m["key"])
            for m in found]


# Per wait kind, what may already hold when the wait is recorded (run in the suspend's
# transaction, after the waits are written). Helper C2: children, approvals.
READY_CHECKS: dict[str, ReadyCheck] = {
    "event": events_in_lookback,
}


def suspend_item(task_id: int, lease_token: str, wait: Wait, logs: str | None,
                 idx: int) -> dict[str, Any]:
    """One row of the suspend statement (``idx``: the item's place in its report); times
    count from when the task reached the wait."""
    waited = max(0.0, wait.waited_seconds)
    lookback = None
    if wait.kind == "event":
        lookback = (wait.lookback_seconds or 0.0) + waited + LOOKBACK_MARGIN_SECONDS
    return {"idx": idx, "id": task_id, "lease_token": lease_token, "kind": wait.kind,
            "step": wait.step, "key": wait.key,
            "until": wait.until.isoformat() if wait.until is not None else None,
            "seconds": None if wait.seconds is None else max(0.0, wait.seconds - waited),
            "timeout_seconds": (None if wait.timeout_seconds is None
                                else max(0.0, wait.timeout_seconds - waited)),
            "since_seconds": lookback, "detail": wait.detail, "logs": logs}


async def lock_keys_of(cur: Cursor, rows: Sequence[dict[str, Any]]) -> None:
    """The event keys the suspend rows wait on, locked: call it before any row lock of the
    transaction (a post on the same key takes this lock first too, see ``store/events.py``)."""
    await event_store.lock_keys(cur, [r["key"] for r in rows
                                      if r["kind"] == "event" and r["key"] is not None])


async def suspend_in(cur: Cursor, rows: Sequence[dict[str, Any]],
                     max_log: int = 65_536) -> list[dict[str, Any]]:
    """Record suspended attempts (``suspend_item`` rows) in the caller's transaction (which
    has called :func:`lock_keys_of`), then resume at once those whose wait already holds.
    Rows are shaped as the report's."""
    if not rows:
        return []
    out = await wait_store.suspend(cur, rows, max_log)
    waiting = [r["id"] for r in out if r["applied"] and r["new_status"] == "waiting"]
    if waiting:
        waits = await wait_store.of_tasks(cur, waiting)
        ready: list[Resolution] = []
        for kind, check in READY_CHECKS.items():
            of_kind = [w for w in waits if w["kind"] == kind]
            if of_kind:
                ready += await check(cur, of_kind)
        resumed = {r["id"] for r in await resume_in(cur, ready)}
        for r in out:
            if r["id"] in resumed and r["applied"]:
                r["new_status"] = "queued"
    return out


async def resume_in(cur: Cursor, resolutions: Sequence[Resolution]) -> list[ResumedRow]:
    """Resume waiting tasks in the caller's transaction: each resolution whose wait is still
    there stores its result as the wait's step and queues the task (NOTIFY on commit). Only
    the tasks actually resumed come back: a wait resolves once."""
    if not resolutions:
        return []
    rows = await wait_store.resume(cur, [
        {"task_id": r.task_id, "result": r.result, "kind": r.kind, "key": r.key}
        for r in resolutions])
    await notify(cur, ((r["queue"], None) for r in rows))
    return rows


async def resume(state: ServerState, resolutions: Sequence[Resolution]) -> list[ResumedRow]:
    """:func:`resume_in` in a transaction of its own."""
    async with transaction(state.pool) as cur:
        return await resume_in(cur, resolutions)


async def resume_timed_out(pool: AsyncConnectionPool) -> int:
    """Resume up to ``TIMEOUT_BATCH`` waits past their timeout with ``{"timed_out": true}``
    (the wait raises ``WaitTimedOut`` in the task); how many were resumed."""
    async with transaction(pool) as cur:
        due = await wait_store.lock_timed_out(cur, TIMEOUT_BATCH)
        rows = await resume_in(cur, [Resolution(w["task_id"], TIMED_OUT) for w in due])
    return len(rows)


async def prune_events(pool: AsyncConnectionPool, older_than_seconds: float) -> int:
    """Forget up to ``TIMEOUT_BATCH`` events older than ``older_than_seconds``."""
    async with transaction(pool) as cur:
        return await event_store.prune(cur, older_than_seconds, TIMEOUT_BATCH)

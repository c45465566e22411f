"""Why isn't it running? The reasons, computed by the server from the same facts the claim
decides on, for the API (``GET /v1/tasks/{id}/why``), the client, the CLI and the studio.

Each reason is ``{"code", "message", ...details}`` (codes: docs/flow-control.md, "Why isn't it
running?"). A task that runs or finished has none. The checks run in order and all that hold
are listed, so a task both rate limited and without a worker says both.

Extension point: ``STATUS_FINDERS`` maps a status to its extra finders (C1's ``waiting``
status is ``waiting_reasons``, built from ``task_waits``); ``WAIT_MESSAGES`` words a wait kind.
A new status or wait kind adds one entry; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from ...protocol import QueueSelector
from ..store import limits as limit_store
from ..store import why as why_store
from ..store.why import TaskFacts
from .paging import Db, connection, found

Reason = dict[str, Any]
Conn = AsyncConnection[Any]


@dataclass(frozen=True, slots=True)
class Situation:
    """What a finder looks at: the task's facts, on one connection."""

    conn: Conn
    task: TaskFacts
    offline_after: float


Finder = Callable[[Situation], Awaitable[list[Reason]]]


def _reason(code: str, message: str, **details: Any) -> Reason:
    return {"code": code, "message": message, **details}


def _ids(ids: list[int]) -> str:
    shown = ", ".join(str(i) for i in ids[:5])
    return shown + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


# -- time: scheduled, debounced, retry back-off, durable sleep --------------------------------


async def time_reasons(s: Situation) -> list[Reason]:
    t = s.task
    if t["due"]:
        return []
    until = t["run_at"]
    if t["last_event"] == "suspended":
        return [_reason("sleeping", f"a durable sleep, until {until:%Y-%m-%d %H:%M:%S} UTC",
                        until=until)]
    if t["debounce_key"] is not None and t["started_at"] is None:
        return [_reason("debouncing", f"debounced on key {t['debounce_key']!r}: runs once no "
                        f"send with that key came until {until:%H:%M:%S} UTC",
                        until=until, key=t["debounce_key"])]
    if t["attempts"] > 0:
        return [_reason("retry_backoff", f"attempt {t['attempts']} failed; the retry waits "
                        f"until {until:%Y-%m-%d %H:%M:%S} UTC", until=until,
                        attempt=t["attempts"])]
    return [_reason("scheduled", f"scheduled for {until:%Y-%m-%d %H:%M:%S} UTC", until=until)]


# -- the queue: paused, its limit full (and whether stuck tasks hold it) ----------------------


async def queue_reasons(s: Situation) -> list[Reason]:
    t = s.task
    out: list[Reason] = []
    if t["paused"]:
        out.append(_reason("queue_paused", f"queue {t['queue']!r} is paused",
                           queue=t["queue"]))
    limit = t["concurrency_limit"]
    if t["due"] and limit is not None:
        held = await why_store.slot_holders(s.conn, t["queue"])
        if held["running"] >= limit:
            out.append(_reason(
                "queue_limit_full", f"queue {t['queue']!r} runs {held['running']} of its "
                f"limit {limit}: held by {_ids(held['ids'])}", queue=t["queue"], limit=limit,
                running=held["running"], held_by=held["ids"]))
            out += _stuck(held["stuck_ids"], f"queue {t['queue']!r}", queue=t["queue"])
    return out


def _stuck(ids: list[int], what: str, **details: Any) -> list[Reason]:
    if not ids:
        return []
    return [_reason("stuck_holders", f"the slots of {what} are held by stuck tasks (no "
                    f"progress past their stuck_after): {_ids(ids)}", stuck_ids=ids,
                    **details)]


# -- flow control (helper A's statements): the key's limit, rate limits -----------------------


async def key_reasons(s: Situation) -> list[Reason]:
    if not s.task["due"]:
        return []
    async with s.conn.cursor() as cur:
        hold = await limit_store.key_holders(cur, s.task["id"])
    if hold is None or hold["limit"] is None or len(hold["running_ids"]) < hold["limit"]:
        return []
    ids = hold["running_ids"]
    out = [_reason("key_limit_full", f"key {hold['key']!r} runs {len(ids)} of its limit "
                   f"{hold['limit']}: held by {_ids(ids)}", queue=hold["queue"],
                   key=hold["key"], limit=hold["limit"], held_by=ids)]
    return out + _stuck(await why_store.stuck_among(s.conn, ids), f"key {hold['key']!r}",
                        key=hold["key"])


async def rate_reasons(s: Situation) -> list[Reason]:
    if not s.task["due"]:
        return []
    async with s.conn.cursor() as cur:
        holds = await limit_store.rate_holds(cur, s.task["id"])
    out = []
    for h in holds:
        at = h["next_unit_at"]
        if at is None:
            continue
        keyed = f" for key {h['key']!r}" if h["key"] else ""
        out.append(_reason("rate_limited", f"rate limit {h['limit']!r}{keyed} is used up; "
                           f"its next unit frees at {at.strftime('%H:%M:%S.%f')[:-3]} UTC",
                           limit=h["limit"], key=h["key"] or None, units=h["units"],
                           next_unit_at=at))
    return out


# -- workers: is anyone online that serves this queue and task name? -------------------------


def _serves(worker: why_store.SeenWorker, queue: str) -> bool:
    try:
        return QueueSelector.parse(worker["queues"] or []).matches(queue)
    except ValueError:
        return False


async def worker_reasons(s: Situation) -> list[Reason]:
    t = s.task
    online = await why_store.online_workers(s.conn, s.offline_after)
    on_queue = [w for w in online if _serves(w, t["queue"])]
    knowing = [w for w in on_queue if not w["task_names"] or t["name"] in w["task_names"]]
    if knowing:
        return []
    if on_queue:
        message = (f"{len(on_queue)} online worker(s) serve queue {t['queue']!r}, none "
                   f"runs task {t['name']!r}")
    else:
        message = f"no worker online serves queue {t['queue']!r} ({len(online)} online)"
    return [_reason("no_worker", message, queue=t["queue"], name=t["name"],
                    online_workers=len(online), on_queue=len(on_queue))]


# -- children, durable waits ------------------------------------------------------------------


async def children_reasons(s: Situation) -> list[Reason]:
    t = s.task
    if not t["children_open"]:
        return []
    return [_reason("waiting_on_children", f"{t['children_open']} child task(s) not finished: "
                    f"{_ids(t['children_ids'])}", open=t["children_open"],
                    children=t["children_ids"])]


# How a wait kind reads (C1's kinds; C2's add a line). Unknown kinds read generically.
WAIT_MESSAGES: dict[str, str] = {
    "event": "waiting for event {key!r}",
    "signal": "waiting for signal {key!r}",
    "approval": "waiting for an approval",
    "children": "waiting for its children to finish",
    "sleep": "sleeping",
}


async def waiting_reasons(s: Situation) -> list[Reason]:
    out = []
    for w in await why_store.waits(s.conn, s.task["id"]):
        text = WAIT_MESSAGES.get(w["kind"], "waiting for {kind} {key!r}").format(
            kind=w["kind"], key=w["key"])
        if w["deadline"] is not None:
            text += f" (times out at {w['deadline']:%Y-%m-%d %H:%M:%S} UTC)"
        out.append(_reason(f"waiting_for_{w['kind']}", f"{text}, step {w['step']!r}",
                           kind=w["kind"], key=w["key"], step=w["step"],
                           deadline=w["deadline"]))
    return out


async def ready_reasons(s: Situation) -> list[Reason]:
    n = await why_store.ahead(s.conn, s.task)
    more = "more than " if n >= why_store.AHEAD_CAP else ""
    return [_reason("ready", f"ready: the next claim of queue {s.task['queue']!r} takes it "
                    f"after {more}{n} task(s) ahead in line", ahead=n)]


# The checks per status, in the order their reasons are listed. ``ready`` is added for a
# queued task when none of them holds it back.
QUEUED_FINDERS: list[Finder] = [time_reasons, queue_reasons, key_reasons, rate_reasons,
                                worker_reasons]
STATUS_FINDERS: dict[str, list[Finder]] = {
    "queued": QUEUED_FINDERS,
    "waiting": [waiting_reasons, children_reasons],
}


async def reasons_of(conn: Conn, task: TaskFacts, offline_after: float) -> list[Reason]:
    s = Situation(conn, task, offline_after)
    out: list[Reason] = []
    for finder in STATUS_FINDERS.get(task["status"], []):
        out += await finder(s)
    if task["status"] == "queued" and not out:
        out = await ready_reasons(s)
    return out


async def why(db: Db, task_id: int, offline_after: float) -> dict[str, Any]:
    """``{"task_id", "name", "queue", "status", "running": bool, "reasons": [...],
    "checked_at"}``; 404 for a task that does not exist."""
    return found(await find(db, task_id, offline_after), "task", task_id)


async def find(db: Db, task_id: int, offline_after: float) -> dict[str, Any] | None:
    """``why``, or None for a task that does not exist."""
    async with connection(db) as conn:
        task = await why_store.facts(conn, task_id)
        if task is None:
            return None
        reasons = await reasons_of(conn, task, offline_after)
    return {"task_id": task_id, "name": task["name"], "queue": task["queue"],
            "status": task["status"], "running": task["status"] == "running",
            "reasons": reasons, "checked_at": task["now"]}


__all__ = ["STATUS_FINDERS", "WAIT_MESSAGES", "Finder", "Reason", "Situation", "find", "why"]

"""The flow claim: lease tasks of a queue under flow control (docs/flow-control.md).

A queue is under flow control once a task with a concurrency key or rate limits was sent
to it, or when it has a rate limit of its own. Candidates are row-locked (``SKIP LOCKED``),
so concurrent claims do not pick the same tasks. A queue whose tasks have key limits (or
which has a concurrency limit) serialises its claims on its row first, so the running counts
they read cannot be raced; a queue with rate limits only needs no such lock, because the
rate-limit buckets are row-locked themselves, in one global order, so claims of two queues
sharing a limit cannot deadlock. The transaction's ``now()`` is the instant the buckets are
charged at and the ``started_at`` the leased tasks get: the guarantee is stated over it.

Rate limits use GCRA (``store/limits.py``): one row per limit and key, moved forward by each
grant, so a claim costs one locked row per limit in play, whatever the rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..store import leases as lease_store
from ..store import limits as store
from ..store.leases import ClaimedTask
from ..store.limits import BucketRow, Candidate
from .tx import transaction

if TYPE_CHECKING:
    from ..state import ServerState

# How many candidates one claim looks at beyond its batch (each is row-locked): a few tasks
# passed over (their per-key rate limit has no unit free yet) must not leave the batch
# short, but a claim must not pay for a long scan either (keys at their limit are passed
# over in SQL already; a passed-over task is looked at again by the next claim).
SCAN_EXTRA = 8


@dataclass(frozen=True, slots=True)
class FlowClaim:
    tasks: list[ClaimedTask]
    wake_at: datetime | None  # when a rate limit next frees a unit a passed-over task needs


def _demands(c: Candidate, queue_limit: str | None) -> list[tuple[str, str, int]]:
    out = [(u["limit"], u.get("key") or "", int(u.get("units", 1)))
           for u in c["rate_limits"] or ()]
    if queue_limit is not None:
        out.append((queue_limit, "", 1))
    return out


def _take(buckets: dict[tuple[str, str], BucketRow], tats: dict[tuple[str, str], datetime],
          demands: Sequence[tuple[str, str, int]], now: datetime) -> datetime | None:
    """Charge every demand or none (GCRA); None when charged, else when they would fit."""
    trial: dict[tuple[str, str], datetime] = {}
    latest: datetime | None = None
    for name, key, units in demands:
        b = buckets.get((name, key))
        if b is None:  # the limit was deleted after the send: nothing to charge
            continue
        step = store.emission_us(b["period_seconds"], b["units"])
        tat = trial.get((name, key)) or tats.get((name, key)) or b["tat"]
        free = store.next_free(tat, now, units, step, b["burst"])
        if free is not None:
            latest = free if latest is None else max(latest, free)
            continue
        trial[(name, key)] = max(tat, now) + timedelta(microseconds=step * units)
    if latest is not None:
        return latest
    tats.update(trial)
    return None


@dataclass(slots=True)
class _Choice:
    ids: list[int]
    clock: int  # the highest fair tag chosen (the queue's clock moves to it)
    tats: dict[tuple[str, str], datetime]  # the buckets' new arrival times
    wake_at: datetime | None


def choose(cands: Sequence[Candidate], buckets: dict[tuple[str, str], BucketRow],
           queue_limit: str | None, clock: int, cap: int, now: datetime) -> _Choice:
    """Walk the candidates in order, taking each whose key has a free slot and whose rate
    limits have its units, up to ``cap``; say when a passed-over one could go."""
    out = _Choice([], clock, {}, None)
    running: dict[str, int] = {}
    for c in cands:
        if len(out.ids) >= cap:
            break
        key = c["concurrency_key"]
        if key is not None and c["concurrency_limit"] is not None \
                and running.setdefault(key, c["key_running"]) >= c["concurrency_limit"]:
            continue
        free = _take(buckets, out.tats, _demands(c, queue_limit), now)
        if free is not None:
            out.wake_at = free if out.wake_at is None else min(out.wake_at, free)
            continue
        if key is not None:
            running[key] = running.get(key, c["key_running"]) + 1
        out.ids.append(c["id"])
        if c["fair_tag"] is not None:
            out.clock = max(out.clock, c["fair_tag"])
    return out


async def claim_flow(state: ServerState, worker_id: str, queue: str,
                     task_names: Sequence[str] | None, room: int, locked: bool) -> FlowClaim:
    """Lease up to ``room`` tasks of flow queue ``queue``. ``locked``: the queue has key
    limits or a concurrency limit (the settings cache says so), and its claims serialise on
    its row; a look without the lock that finds one after all is done again with it."""
    got = await _claim(state, worker_id, queue, task_names, room, locked)
    if got is None:
        got = await _claim(state, worker_id, queue, task_names, room, True)
    return got or FlowClaim([], None)


async def _claim(state: ServerState, worker_id: str, queue: str,
                 task_names: Sequence[str] | None, room: int, locked: bool) -> FlowClaim | None:
    """One transaction in pipeline mode: the BEGIN goes with the first statement and the
    COMMIT with the lease (the queue lock and the plan setting go with the first
    statement), so a claim costs two round trips."""
    async with transaction(state.pool) as cur, cur.connection.pipeline():
        await store.generic_plans(cur)
        if locked:
            await store.lock_queue(cur, queue)
        cands, buckets, view = await store.candidates(cur, queue, task_names,
                                                      room + SCAN_EXTRA)
        if view is None or view["paused"]:
            return FlowClaim([], None)
        if not locked and (view["queue_limit"] is not None
                           or any(c["concurrency_limit"] is not None for c in cands)):
            return None  # running counts need the lock
        cap = room
        if view["queue_limit"] is not None:
            running = await lease_store.running_counts(cur, [queue])
            cap = min(cap, view["queue_limit"] - running.get(queue, 0))
        pick = choose(cands, buckets, view["queue_rate_limit"], view["fair_clock"], cap,
                      view["now"])
        if not pick.ids:
            return FlowClaim([], pick.wake_at)
        await lease_store.lease_ids(cur, pick.ids, worker_id, state.settings.lease_seconds,
                                    queue, pick.clock, pick.tats)
        await cur.connection.commit()
        return FlowClaim(await lease_store.leased(cur), None)


def flow_queues(special: dict[str, Any], matches: Any) -> dict[str, bool]:
    """The queues a claim takes through the flow path (under flow control, matched by the
    claim's selector, not paused), each with whether its claims take the queue lock."""
    return {name: bool(q.get("keyed") or q.get("concurrency_limit") is not None)
            for name, q in sorted(special.items())
            if (q.get("flow") or q.get("rate_limit")) and not q.get("paused")
            and matches(name)}

"""Claim: lease ready tasks to a worker, waiting (long-poll) up to a deadline for one.

A waiting claim holds no database connection: it waits on the notifier, re-checking on a
slow timer. If the worker goes away while tasks are being leased for it, they are handed
back at once rather than left to their lease running out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ...protocol import QueueSelector
from ..store import leases as lease_store
from ..store import limits as limit_store
from ..store.leases import ClaimedTask, LeasePlan
from ..store.queues import QueueRow
from .flow_claim import claim_flow, flow_queues
from .release import release
from .tx import transaction

if TYPE_CHECKING:
    from ..state import ServerState


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """What a worker asks for: ``queues`` as sent (names and ``*``/``?`` globs)."""

    worker_id: str
    queues: tuple[str, ...]
    task_names: tuple[str, ...] | None
    limit: int
    wait_seconds: float

    @property
    def selector(self) -> QueueSelector:
        return QueueSelector.parse(self.queues)


@dataclass(frozen=True, slots=True)
class _Plan:
    lease: LeasePlan
    limited: list[str]  # queues whose caps are cut to their free slots in the transaction
    flow: dict[str, bool]  # queues under flow control -> whether to lock (flow_claim.py)


def plan(req: ClaimRequest, selector: QueueSelector, special: dict[str, QueueRow],
         lease_seconds: float) -> _Plan:
    """Which queues to take from and how many from each, from the settings cache: queues not
    in ``special`` are unlimited and running; the globs expand in SQL to the other queues."""
    settings = [r for name, r in special.items() if selector.matches(name)]
    names = set(selector.exact) | {s["name"] for s in settings}
    paused = {s["name"] for s in settings if s["paused"]}
    flow = flow_queues(special, selector.matches)
    limited = sorted(s["name"] for s in settings if s["concurrency_limit"] is not None
                     and s["name"] not in paused and s["name"] not in flow)
    caps = {name: req.limit for name in names if name not in paused and name not in flow}
    return _Plan(LeasePlan(worker_id=req.worker_id, caps=caps, expand=selector.like_patterns,
                           skip=sorted(set(special) | names), task_names=req.task_names,
                           limit=req.limit, lease_seconds=lease_seconds), limited, flow)


async def claim_once(state: ServerState, req: ClaimRequest,
                     selector: QueueSelector) -> list[ClaimedTask]:
    """One attempt, honouring queue limits; queues under flow control are claimed from one
    transaction each, after the plain ones (none in play: nothing extra)."""
    special = await state.caches.queue_settings.special(state.pool)
    state.metrics.claim_query()
    p = plan(req, selector, special, state.settings.lease_seconds)
    tasks = await _claim_plain(state, req, p)
    for queue, locked in p.flow.items():
        room = req.limit - len(tasks)
        if room <= 0:
            break
        got = await claim_flow(state, req.worker_id, queue, req.task_names, room, locked)
        tasks.extend(got.tasks)
        if got.wake_at is not None:
            state.notifier.wake_later(queue, got.wake_at.timestamp())
    return tasks


async def _claim_plain(state: ServerState, req: ClaimRequest, p: _Plan) -> list[ClaimedTask]:
    """One transaction in pipeline mode: the BEGIN, the plan setting, the claim and the
    COMMIT go out together, so a claim of unlimited queues is one round trip. The claim runs
    on its generic plan (``generic_plans``, as the flow claim does): PostgreSQL's "auto"
    mode planned the statement afresh on every call, about a quarter of the claim's database
    CPU; the statement is written so that its generic plan has the custom plan's shape (the
    claim index per queue, the primary key for the update)."""
    lease = p.lease
    if not lease.caps and not lease.expand:
        return []
    async with transaction(state.pool) as cur, cur.connection.pipeline():
        await limit_store.generic_plans(cur)
        if p.limited:
            # Serialise claimers of a limited queue on its row, then count what runs.
            limits = await lease_store.lock_limits(cur, p.limited)
            running = await lease_store.running_counts(cur, p.limited)
            caps = dict(lease.caps)
            for name, cap in limits.items():
                if cap is not None:
                    caps[name] = max(0, min(req.limit, cap - running.get(name, 0)))
            caps = {k: v for k, v in caps.items() if v > 0}
            if not caps and not lease.expand:
                return []
            lease = replace(lease, caps=caps)
        await lease_store.claim(cur, lease)
        await cur.connection.commit()
        return await lease_store.leased(cur)


async def claim(state: ServerState, req: ClaimRequest,
                wait_disconnect: Callable[[], Awaitable[None]]) -> Sequence[ClaimedTask]:
    """Lease up to ``req.limit`` tasks, waiting up to ``req.wait_seconds`` (capped by the
    settings) for one. ``wait_disconnect`` returns when the worker has gone away."""
    settings = state.settings
    selector = req.selector
    wait = min(req.wait_seconds, settings.max_wait_seconds)
    deadline = time.monotonic() + wait
    await state.caches.sightings.touch(state.pool, req.worker_id, req.queues, req.task_names)
    tasks = await claim_once(state, req, selector)
    if tasks or wait <= 0:
        state.metrics.claimed(tasks)
        return tasks
    disconnect = asyncio.create_task(wait_disconnect())
    try:
        async with state.notifier.subscribe(selector,
                                            picky=req.task_names is not None) as sub:
            while True:
                tasks = await claim_once(state, req, selector)
                if tasks and disconnect.done():
                    # Nobody will receive these: hand them back rather than wait for the lease.
                    await release(state, req.worker_id,
                                  [(t["id"], str(t["lease_token"])) for t in tasks])
                    return []
                remaining = deadline - time.monotonic()
                if tasks or remaining <= 0 or disconnect.done():
                    state.metrics.claimed(tasks)
                    return tasks
                waiter = asyncio.create_task(
                    sub.wait(min(remaining, settings.poll_interval_seconds)))
                await asyncio.wait({waiter, disconnect}, return_when=asyncio.FIRST_COMPLETED)
                if disconnect.done():
                    waiter.cancel()
                    return []
    finally:
        disconnect.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await disconnect

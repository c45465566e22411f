"""One LISTEN connection per server process, fanned out to in-process waiters.

A send commits, then NOTIFY says which queues have new work, how many tasks (and, for delayed
work, when); that many waiting claims are woken, not every one.
Waiting claims hold no database connection: they wait on an asyncio event here. NOTIFY is
only a hint; waiters also wake on a slow fallback timer, so a lost notification costs
latency, never a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable

import psycopg

from ..protocol import QueueSelector
from .store.sql import CONFIG_CHANGED, decode, listen

log = logging.getLogger("branchwork.notifier")

# Delayed wake-ups are kept per queue and due time, to this resolution (seconds), and at most
# this many per queue (see ``Notifier._wake_later``).
TIMER_RESOLUTION = 0.05
MAX_TIMERS_PER_QUEUE = 256


class Subscription:
    """What one waiting claim listens for: its queue selector (exact names and globs).
    ``picky`` claims (a task-name filter) may not take what they are woken for, so they are
    woken on top of the count."""

    def __init__(self, selector: QueueSelector, picky: bool = False) -> None:
        self.selector = selector
        self.picky = picky
        self.event = asyncio.Event()
        self.woken_for: str | None = None

    def matches(self, queue: str) -> bool:
        return self.selector.matches(queue)

    def set(self, queue: str) -> None:
        self.woken_for = queue
        self.event.set()

    async def wait(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self.event.wait(), seconds)
            return True
        except TimeoutError:
            return False
        finally:
            self.event.clear()
            self.woken_for = None


class Notifier:
    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        # Insertion-ordered: the longest-waiting claims are woken first.
        self._subs: dict[Subscription, None] = {}
        self._task: asyncio.Task[None] | None = None
        # Delayed wake-ups: queue -> due slot -> (timer, how many claims it wakes).
        self._timers: dict[str, dict[int, tuple[asyncio.TimerHandle, int | None]]] = {}
        self.connected = asyncio.Event()
        # Called on CONFIG_CHANGED and on every (re)connect, when messages may have been missed.
        self.config_listeners: list[Callable[[], None]] = []

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="branchwork-notifier")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), 10)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for timers in self._timers.values():
            for timer, _ in timers.values():
                timer.cancel()

    @property
    def waiting(self) -> int:
        """How many claims of this process wait for a wake-up now (tests, debugging)."""
        return len(self._subs)

    @contextlib.asynccontextmanager
    async def subscribe(self, selector: QueueSelector,
                        picky: bool = False) -> AsyncIterator[Subscription]:
        sub = Subscription(selector, picky)
        self._subs[sub] = None
        try:
            yield sub
        finally:
            del self._subs[sub]
            if sub.event.is_set() and sub.woken_for is not None:
                # Woken, but leaving without looking (deadline, disconnect): pass it on.
                self.wake(sub.woken_for, 1)

    def wake(self, queue: str, count: int | None = None) -> None:
        """Wake ``count`` claims waiting on ``queue`` (every one when None): as many as there
        are tasks, not every idle worker, so one send costs O(1) claim queries. Claims
        already woken do not count; the fallback poll covers a wake-up that finds nothing."""
        left = count
        for sub in list(self._subs):
            if left is not None and left <= 0:
                break
            if not sub.matches(queue):
                continue
            if sub.picky:
                sub.set(queue)
            elif not sub.event.is_set():
                sub.set(queue)
                if left is not None:
                    left -= 1

    def wake_all(self) -> None:
        for sub in list(self._subs):
            sub.event.set()

    def wake_later(self, queue: str, run_at_epoch: float) -> None:
        """Wake the claims waiting on ``queue`` at that time (a rate limit's next unit)."""
        self._wake_later(queue, run_at_epoch, None)

    def _wake_later(self, queue: str, run_at_epoch: float, count: int | None) -> None:
        """One timer per queue and distinct due time (to ``TIMER_RESOLUTION``), so tasks due
        at different times (durable sleeps, delayed sends) each wake a claim on time. Past
        ``MAX_TIMERS_PER_QUEUE`` a wake-up joins the nearest earlier one; the claims it wakes
        too early go back to waiting, and the fallback poll covers them."""
        delay = run_at_epoch - time.time()
        if delay <= 0:
            self.wake(queue, count)
            return
        slot = math.ceil(run_at_epoch / TIMER_RESOLUTION)
        timers = self._timers.setdefault(queue, {})
        if slot not in timers and len(timers) >= MAX_TIMERS_PER_QUEUE:
            slot = max((s for s in timers if s < slot), default=slot)
        current = timers.get(slot)
        if current is not None:
            timer, pending = current
            timers[slot] = (timer, None if count is None or pending is None else count + pending)
            return
        wait = max(0.0, slot * TIMER_RESOLUTION - time.time())
        loop = asyncio.get_running_loop()
        timers[slot] = (loop.call_later(wait + 0.005, self._fire_timer, queue, slot), count)

    def _fire_timer(self, queue: str, slot: int) -> None:
        timers = self._timers.get(queue, {})
        _, count = timers.pop(slot, (None, None))
        if not timers:
            self._timers.pop(queue, None)
        self.wake(queue, count)

    def config_changed(self) -> None:
        for listener in list(self.config_listeners):
            listener()

    def handle(self, payload: str) -> None:
        if payload == CONFIG_CHANGED:
            self.config_changed()
            return
        queue, when, count = decode(payload)
        if when is None:
            self.wake(queue, count)
        else:
            self._wake_later(queue, when, count)

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True
                ) as conn:
                    await listen(conn)
                    self.connected.set()
                    backoff = 0.1
                    self.config_changed()
                    self.wake_all()  # anything sent while we were not listening
                    async for note in conn.notifies():
                        self.handle(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection lost: waiters fall back to polling
                self.connected.clear()
                log.warning("notifier connection lost (%s); reconnecting in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

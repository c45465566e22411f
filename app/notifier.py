"""One LISTEN connection per server process, fanned out to in-process waiters.

A send commits, then NOTIFY says which queues have new work (and, for delayed work, when).
Waiting claims hold no database connection: they wait on an asyncio event here. NOTIFY is
only a hint; waiters also wake on a slow fallback timer, so a lost notification costs
latency, never a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

import psycopg

from ..protocol import QueueSelector
from .store.sql import CONFIG_CHANGED, decode, listen

log = logging.getLogger("branchwork.notifier")


class Subscription:
    """What one waiting claim listens for: its queue selector (exact names and globs)."""

    def __init__(self, selector: QueueSelector) -> None:
        self.selector = selector
        self.event = asyncio.Event()

    def matches(self, queue: str) -> bool:
        return self.selector.matches(queue)

    async def wait(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self.event.wait(), seconds)
            return True
        except TimeoutError:
            return False
        finally:
            self.event.clear()


class Notifier:
    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._subs: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
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
        for timer in self._timers.values():
            timer.cancel()

    @contextlib.asynccontextmanager
    async def subscribe(self, selector: QueueSelector) -> AsyncIterator[Subscription]:
        sub = Subscription(selector)
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self._subs.discard(sub)

    def wake(self, queue: str) -> None:
        for sub in list(self._subs):
            if sub.matches(queue):
                sub.event.set()

    def wake_all(self) -> None:
        for sub in list(self._subs):
            sub.event.set()

    def _wake_later(self, queue: str, run_at_epoch: float) -> None:
        delay = run_at_epoch - time.time()
        if delay <= 0:
            self.wake(queue)
            return
        loop = asyncio.get_running_loop()
        current = self._timers.get(queue)
        if current is not None and current.when() <= loop.time() + delay:
            return  # an earlier wake-up for this queue is already set
        if current is not None:
            current.cancel()
        self._timers[queue] = loop.call_later(delay + 0.005, self._fire_timer, queue)

    def _fire_timer(self, queue: str) -> None:
        self._timers.pop(queue, None)
        self.wake(queue)

    def config_changed(self) -> None:
        for listener in list(self.config_listeners):
            listener()

    def handle(self, payload: str) -> None:
        if payload == CONFIG_CHANGED:
            self.config_changed()
            return
        queue, when = decode(payload)
        if when is None:
            self.wake(queue)
        else:
            self._wake_later(queue, when)

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

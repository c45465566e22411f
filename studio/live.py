"""Live updates: one change observer per server process, fanned out to every open page.

The observer polls a few cheap change markers (``max(id)`` of two indexed tables and
fingerprints of small tables) every ``interval`` seconds. When a marker moves it works out
*what* changed (topics such as ``tasks``, ``task:12``, ``root:7``, ``run:3``) with one more
query, and puts that signal on every subscriber's queue. An SSE stream per open page
forwards the signal; the page refetches only the partials that listen to those topics.

So the database sees one poll per process, however many browsers are open, and partial
queries go through :class:`VersionCache`, which lets all browsers reacting to the same
signal share one query.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from psycopg_pool import AsyncConnectionPool

from ..app.read import overview

log = logging.getLogger("branchwork.studio.live")

# More changed rows than this in one tick is reported as "everything changed".
DETAIL_LIMIT = 500


class Subscriber:
    """One open page: a bounded queue of topic sets; overflow collapses into one signal."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[frozenset[str]] = asyncio.Queue(maxsize=16)

    def put(self, topics: frozenset[str]) -> None:
        try:
            self.queue.put_nowait(topics)
        except asyncio.QueueFull:
            # A slow client: merge everything pending into a single signal.
            merged: set[str] = set(topics)
            while not self.queue.empty():
                merged |= self.queue.get_nowait()
            self.queue.put_nowait(frozenset(merged))


class ChangeObserver:
    """Polls the change markers once per process and fans signals out to subscribers."""

    def __init__(self, pool: AsyncConnectionPool, interval: float = 0.5) -> None:
        self.pool = pool
        self.interval = interval
        self.version = 0
        self._markers: dict[str, Any] | None = None
        self._subs: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._later: dict[str, asyncio.TimerHandle] = {}
        self.closed = asyncio.Event()

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="branchwork-studio-observer")

    async def stop(self) -> None:
        self.closed.set()
        for timer in self._later.values():
            timer.cancel()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscriber]:
        sub = Subscriber()
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self._subs.discard(sub)

    def publish(self, topics: frozenset[str]) -> None:
        self.version += 1
        self.signal(topics)

    def signal(self, topics: frozenset[str]) -> None:
        for sub in list(self._subs):
            sub.put(topics)

    def signal_later(self, topic: str, delay: float) -> None:
        """Ask pages to refetch ``topic`` after ``delay`` (once, however often asked)."""
        if topic in self._later:
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._later.pop(topic, None)
            self.signal(frozenset({topic}))

        self._later[topic] = loop.call_later(delay, fire)

    async def _run(self) -> None:
        delay = self.interval
        while True:
            try:
                await self.tick()
                delay = self.interval
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database away: back off, pages keep what they show
                if delay == self.interval:
                    log.warning("studio change observer: %s", exc)
                delay = min(delay * 2, 5.0)
            await asyncio.sleep(delay)

    async def tick(self) -> frozenset[str]:
        """One poll; returns (and publishes) the topics that changed since the last one."""
        async with self.pool.connection() as conn:
            markers = await overview.change_markers(conn)
            previous = self._markers
            self._markers = markers
            if previous is None or markers == previous:
                return frozenset()
            topics = {name for name in markers if markers[name] != previous[name]}
            if "task_events" in topics or "tasks" in topics:
                topics.discard("task_events")
                topics.add("tasks")
                topics |= await overview.changed_task_topics(
                    conn, previous["tasks"], previous["task_events"], DETAIL_LIMIT)
        signal = frozenset(topics)
        self.publish(signal)
        return signal


class VersionCache:
    """Results of partial queries, shared while no change was observed (and for ``min_age``).

    Concurrent callers asking for the same key wait for one query instead of each running it.
    """

    def __init__(self, observer: ChangeObserver, size: int = 256) -> None:
        self.observer = observer
        self.size = size
        self._entries: OrderedDict[Any, tuple[int, float, asyncio.Future[Any]]] = OrderedDict()

    def clear(self) -> None:
        self._entries.clear()

    def forget(self, head: tuple[Any, ...]) -> None:
        """Drop the entries whose key starts with ``head``: a key may go on with parts the
        caller does not know (the time slot of ``views._tick``)."""
        n = len(head)
        for key in [k for k in self._entries if k[:n] == head]:
            del self._entries[key]

    async def get(self, key: Any, compute: Callable[[], Awaitable[Any]],
                  min_age: float = 0.0, topic: str = "*") -> Any:
        """``min_age``: an expensive result is recomputed at most that often; a page served
        an outdated one is signalled (``topic``) to refetch once the interval is over."""
        now = time.monotonic()
        version = self.observer.version
        entry = self._entries.get(key)
        if entry is not None:
            e_version, e_time, future = entry
            usable = not (future.done() and future.exception() is not None)
            young = now - e_time < min_age
            if usable and (e_version == version or young):
                if e_version != version:
                    self.observer.signal_later(topic, min_age - (now - e_time) + 0.05)
                self._entries.move_to_end(key)
                return await asyncio.shield(future)
        future = asyncio.get_running_loop().create_future()
        self._entries[key] = (version, now, future)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        try:
            result = await compute()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved
            self._entries.pop(key, None)
            raise
        future.set_result(result)
        return result

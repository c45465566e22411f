"""Progress and streams: a running task's writes, and the reads that follow them live.

A worker posts batches (chunks and/or progress) fenced by its lease token; readers replay a
task's chunks from any ``seq`` and then follow it until the task finishes. A reader on the
replica that took a batch is woken at once (``WAKE``); batches taken by another replica are
seen by the reader's poll (``POLL_SECONDS``), so no reader depends on a notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...protocol import MAX_STREAM_CHUNK_BYTES, MAX_STREAM_TASK_BYTES, TERMINAL_STATUSES
from ..store import streams as store
from .errors import Conflict, InvalidInput, NotFound, PayloadTooLarge, StaleLease
from .tx import single_statement

if TYPE_CHECKING:
    from ..state import ServerState

POLL_SECONDS = 0.5  # how late a reader sees a batch another replica took, at worst
KEEPALIVE_SECONDS = 15.0  # a silent stream says it is alive this often (proxies, readers)
READ_BATCH = 500


class Wakeups:
    """Readers of a task waiting in this process, woken when this process takes a batch for
    it (from any event loop: test servers run several loops in one process)."""

    def __init__(self) -> None:
        self._waiters: dict[int, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    @contextlib.contextmanager
    def waiting(self, task_id: int) -> Any:
        entry = (asyncio.get_running_loop(), asyncio.Event())
        self._waiters.setdefault(task_id, set()).add(entry)
        try:
            yield entry[1]
        finally:
            waiters = self._waiters.get(task_id)
            if waiters is not None:
                waiters.discard(entry)
                if not waiters:
                    self._waiters.pop(task_id, None)

    def wake(self, task_id: int) -> None:
        for loop, event in list(self._waiters.get(task_id, ())):
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(event.set)


WAKE = Wakeups()


@dataclass(frozen=True)
class Written:
    task_id: int
    chunks: int  # the task's chunk count after this batch (the last seq)


def check_progress(progress: float | None) -> None:
    if progress is not None and not 0.0 <= progress <= 1.0:
        raise InvalidInput(f"progress must be between 0 and 1, not {progress}",
                           code="invalid_progress")


async def write(state: ServerState, task_id: int, lease_token: str, chunks: list[str],
                progress: float | None = None, message: str | None = None,
                first_seq: int | None = None) -> Written:
    """Append a batch of chunks and/or set the progress of a running attempt. With
    ``first_seq`` a repeated batch (a retry after a lost answer) is recognised and changes
    nothing, so a writer may repeat it safely."""
    check_progress(progress)
    sizes = [len(c.encode()) for c in chunks]
    for i, size in enumerate(sizes):
        if size > MAX_STREAM_CHUNK_BYTES:
            raise PayloadTooLarge(f"chunk {i} is {size} bytes, over the limit of "
                                  f"{MAX_STREAM_CHUNK_BYTES} per chunk",
                                  {"chunk": i, "bytes": size, "limit": MAX_STREAM_CHUNK_BYTES})
    async with single_statement(state.pool) as cur:
        row = await store.write(cur, task_id, lease_token, chunks, sum(sizes), progress,
                                message, MAX_STREAM_TASK_BYTES, first_seq)
    if not row["fenced"]:
        raise StaleLease(f"task {task_id} is not running under this lease token",
                         {"task_id": task_id})
    if row["chunks"] is None and first_seq is not None:
        async with state.pool.connection() as conn:
            now = await store.state(conn, task_id)
        have = now["chunks"] if now else 0
        if have >= first_seq - 1 + len(chunks):
            return Written(task_id, first_seq - 1 + len(chunks))  # a repeat: already there
        if have != first_seq - 1:
            raise Conflict(f"task {task_id} has {have} chunks; a batch starting at seq "
                           f"{first_seq} does not follow them",
                           {"task_id": task_id, "chunks": have}, code="stream_gap")
    if row["chunks"] is None:
        raise PayloadTooLarge(f"task {task_id} would stream more than "
                              f"{MAX_STREAM_TASK_BYTES} bytes in all",
                              {"task_id": task_id, "limit": MAX_STREAM_TASK_BYTES},
                              code="stream_limit")
    WAKE.wake(task_id)
    return Written(task_id, int(row["chunks"]))


@dataclass(frozen=True)
class Event:
    """One server-sent event: ``chunk`` (with its seq as the event id), ``progress`` or
    ``end``."""

    kind: str
    data: dict[str, Any]
    id: int | None = None


async def check_readable(state: ServerState, task_id: int) -> dict[str, Any]:
    """The task (``status``, ``name``, ``queue``), or NotFound: checked before a stream's
    response starts, so a missing task is a 404, not an empty stream."""
    async with state.pool.connection() as conn:
        task = await store.task_status(conn, task_id)
    if task is None:
        raise NotFound.of("task", task_id)
    return task


async def follow(state: ServerState, task_id: int, after: int = 0,
                 poll: float = POLL_SECONDS) -> AsyncIterator[Event]:
    """Chunks after ``after``, the progress as it changes, then ``end`` once the task has
    finished and every chunk it streamed was given; ``keepalive`` after a silence."""
    last_progress: tuple[Any, Any] | None = None
    quiet_since = time.monotonic()
    while True:
        with WAKE.waiting(task_id) as woken:
            async with state.pool.connection() as conn:
                # Status first: a finished task's chunks all committed before it finished.
                task = await store.task_status(conn, task_id)
                rows = await store.chunks_after(conn, task_id, after, READ_BATCH)
                progress = await store.state(conn, task_id)
            if progress is not None and (progress["progress"], progress["message"]) \
                    not in (last_progress, (None, None)):
                last_progress = (progress["progress"], progress["message"])
                yield Event("progress", {"progress": progress["progress"],
                                         "message": progress["message"]})
                quiet_since = time.monotonic()
            if rows:
                quiet_since = time.monotonic()
            for row in rows:
                after = row["seq"]
                yield Event("chunk", {"seq": row["seq"], "data": row["data"],
                                      "attempt": row["attempt"]}, id=row["seq"])
            if len(rows) == READ_BATCH:
                continue
            if task is None or task["status"] in TERMINAL_STATUSES:
                yield Event("end", {"status": task["status"] if task else "deleted",
                                    "chunks": after})
                return
            if time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
                quiet_since = time.monotonic()
                yield Event("keepalive", {})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), poll)

"""Progress and streams, both ends: what a running task writes (``ctx.stream``,
``ctx.progress``) and what a caller reads (``run.stream()``, ``async for ... in
run.astream()``). The protocol is in docs/streaming.md.

Writing: chunks are buffered and sent in batches by one background thread per attempt, at
most ``LINGER`` seconds after the first unsent chunk, so a task streaming tokens costs one
round trip per batch, not per token. Every batch after the first names its ``first_seq``, so
a batch repeated after a lost answer (a server restart) is recognised and not stored twice.
The worker closes the writer when the attempt returns, before it reports: everything the
task streamed is stored before the task finishes.

Reading: server-sent events, replayed from the start (or any seq) and then live; a dropped
connection is resumed with ``Last-Event-ID``, so a reader sees every chunk once, in order.
The reader is written once, as a generator of steps (``_following``, the pattern of
``_flow.py``); ``events`` and ``aevents`` are its thin sync and async drivers, doing the I/O
and handing each event to their caller as it comes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Generator, Iterator
from contextlib import aclosing, closing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from . import _calls as calls
from ._exceptions import ApiError, BranchworkError, InvalidValue, api_error
from ._flow import Sleep, Step
from .protocol import (
    MAX_PROGRESS_MESSAGE,
    MAX_STREAM_BATCH,
    MAX_STREAM_CHUNK_BYTES,
    STALE_LEASE,
)

if TYPE_CHECKING:
    from ._context import TaskContext
    from ._http import AsyncClient, Client
    from ._origin import Origin

log = logging.getLogger("branchwork.stream")

LINGER = 0.05  # seconds a chunk may wait for others to share its batch
BATCH_BYTES = 512 * 1024  # request body budget per batch (chunks are at most 64 KiB)
RETRY_SECONDS = 60.0  # how long a writer keeps unsent chunks while the server is away
RECONNECT_SECONDS = 60.0  # how long a reader tries to reconnect before it gives up
READ_TIMEOUT = 60.0  # the server sends a keep-alive comment every 15 s


def check_progress(fraction: float | None, message: str | None) -> None:
    """Progress is a fraction from 0 to 1; anything else is a mistake worth raising."""
    if fraction is not None:
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise InvalidValue(f"progress must be a number from 0 to 1, not {fraction!r}")
        if not 0.0 <= float(fraction) <= 1.0:
            raise InvalidValue(f"progress must be between 0 and 1, not {fraction!r}")
    if message is not None and (not isinstance(message, str)
                                or len(message) > MAX_PROGRESS_MESSAGE):
        raise InvalidValue(f"a progress message is a string of at most "
                           f"{MAX_PROGRESS_MESSAGE} characters")


def check_chunk(chunk: Any) -> int:
    """A chunk's size in UTF-8 bytes; raises for a non-string or one over the limit."""
    if not isinstance(chunk, str):
        raise InvalidValue(f"ctx.stream() takes text, not {type(chunk).__name__}")
    size = len(chunk.encode())
    if size > MAX_STREAM_CHUNK_BYTES:
        raise InvalidValue(f"a stream chunk is {size} bytes, over the limit of "
                           f"{MAX_STREAM_CHUNK_BYTES}; split it")
    return size


class StreamWriter:
    """One attempt's buffer of chunks and progress, flushed by a background thread."""

    def __init__(self, ctx: TaskContext, origin: Origin, linger: float = LINGER) -> None:
        self.ctx = ctx
        self.origin = origin
        self.linger = linger
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._chunks: list[tuple[str, int]] = []
        self._progress: tuple[float | None, str | None] | None = None
        self._next_seq: int | None = None  # known after the first batch is stored
        self._wake = threading.Event()
        self._closed = False
        self._stale = False
        self._thread: threading.Thread | None = None

    def write(self, chunk: str) -> None:
        size = check_chunk(chunk)
        with self._lock:
            if self._stale or self._closed:
                return
            self._chunks.append((chunk, size))
            self._start()
        self._wake.set()

    def progress(self, fraction: float | None, message: str | None) -> None:
        check_progress(fraction, message)
        with self._lock:
            if self._stale or self._closed:
                return
            self._progress = (None if fraction is None else float(fraction), message)
            self._start()
        self._wake.set()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"branchwork-stream-{self.ctx.task_id}")
            self._thread.start()

    def _run(self) -> None:
        failing_since: float | None = None
        while True:
            self._wake.wait()
            if self._closed:
                return
            time.sleep(self.linger)  # let the chunks of this moment share one batch
            self._wake.clear()
            try:
                self.flush()
                failing_since = None
            except BranchworkError as exc:
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > RETRY_SECONDS:
                    log.warning("task %s: dropping unsent stream chunks: %s",
                                self.ctx.task_id, exc)
                    self._drop()
                    failing_since = None
                else:
                    self._wake.set()
                    time.sleep(0.5)

    def _drop(self) -> None:
        with self._lock:
            self._chunks.clear()
            self._progress = None

    def _take(self) -> tuple[list[tuple[str, int]], tuple[float | None, str | None] | None]:
        with self._lock:
            batch: list[tuple[str, int]] = []
            total = 0
            for chunk, size in self._chunks:
                if batch and (len(batch) >= MAX_STREAM_BATCH or total + size > BATCH_BYTES):
                    break
                batch.append((chunk, size))
                total += size
            return batch, self._progress

    def flush(self) -> None:
        """Send everything buffered now (in batches); raises when the server cannot be
        reached, keeping what was not sent."""
        with self._send_lock:
            while True:
                batch, progress = self._take()
                if not batch and progress is None:
                    return
                body: dict[str, Any] = {"lease_token": self.ctx.lease_token,
                                        "chunks": [c for c, _ in batch]}
                if progress is not None:
                    body["progress"], body["message"] = progress
                if self._next_seq is not None:
                    body["first_seq"] = self._next_seq
                try:
                    out = self.origin.sync().execute(calls.write_stream(self.ctx.task_id, body))
                except ApiError as exc:
                    if exc.code == STALE_LEASE or exc.status == 404:
                        self._stale = True  # this attempt no longer holds the task
                        self._drop()
                        return
                    if exc.code == "stream_gap" and self._next_seq is not None:
                        self._next_seq = None  # append after whatever is stored
                        continue
                    if 400 <= exc.status < 500 and exc.status not in (408, 429):
                        log.warning("task %s: the server refused stream chunks: %s",
                                    self.ctx.task_id, exc)
                        with self._lock:
                            del self._chunks[:len(batch)]
                            if self._progress == progress:
                                self._progress = None
                        continue
                    raise
                self._next_seq = int(out["chunks"]) + 1
                with self._lock:
                    del self._chunks[:len(batch)]
                    if self._progress == progress:
                        self._progress = None

    def close(self, timeout: float = RETRY_SECONDS) -> None:
        """Flush what is left (retrying while the server is away, up to ``timeout``) and
        stop the thread: the worker calls this before it reports the attempt."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.flush()
                break
            except BranchworkError as exc:
                if time.monotonic() > deadline:
                    log.warning("task %s: %s; unsent stream chunks dropped",
                                self.ctx.task_id, exc)
                    break
                time.sleep(0.5)
        self._closed = True
        self._wake.set()


# -- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamEvent:
    """One event of a task's stream: ``chunk`` (``seq``, ``data``), ``progress``
    (``progress``, ``message``) or ``end`` (``status``: how the task finished)."""

    kind: str
    seq: int | None = None
    data: str | None = None
    progress: float | None = None
    message: str | None = None
    status: str | None = None


def _event(kind: str, payload: dict[str, Any]) -> StreamEvent:
    if kind == "chunk":
        return StreamEvent("chunk", seq=payload["seq"], data=payload["data"])
    if kind == "progress":
        return StreamEvent("progress", progress=payload.get("progress"),
                           message=payload.get("message"))
    return StreamEvent("end", seq=payload.get("chunks"), status=payload.get("status"))


class _Parser:
    """Server-sent events, line by line (the subset the server writes)."""

    def __init__(self) -> None:
        self.kind = "message"
        self.data: list[str] = []

    def line(self, line: str) -> tuple[str, dict[str, Any]] | None:
        if line == "":
            if not self.data:
                return None
            kind, data = self.kind, "\n".join(self.data)
            self.kind, self.data = "message", []
            return kind, orjson.loads(data)
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            self.kind = value
        elif field == "data":
            self.data.append(value)
        return None


class _Follower:
    """The state of one reader across its connections: the last chunk seen (sent again as
    ``Last-Event-ID``) and since when reconnecting has failed."""

    def __init__(self, after: int, reconnect_seconds: float) -> None:
        self.after = after
        self.reconnect_seconds = reconnect_seconds
        self.failing_since: float | None = None
        self.parser = _Parser()

    def headers(self) -> dict[str, str]:
        self.parser = _Parser()  # a new connection starts a new event
        headers = {"accept": "text/event-stream"}
        if self.after:
            headers["last-event-id"] = str(self.after)
        return headers

    def line(self, line: str) -> StreamEvent | None:
        self.failing_since = None
        parsed = self.parser.line(line)
        if parsed is None:
            return None
        event = _event(*parsed)
        if event.kind == "chunk":
            self.after = event.seq or self.after
        return event

    def failed(self, exc: Exception) -> None:
        """Raise ``exc`` unless it is worth reconnecting (the server away or restarting)."""
        if isinstance(exc, ApiError) and exc.status not in (502, 503, 504):
            raise exc
        self.failing_since = self.failing_since or time.monotonic()
        if time.monotonic() - self.failing_since > self.reconnect_seconds:
            raise exc


_TIMEOUT = httpx.Timeout(10.0, read=READ_TIMEOUT)
_RECONNECT_PAUSE = 0.25


def _raise_for(status: int, body: bytes) -> None:
    if status >= 400:
        try:
            parsed = orjson.loads(body)
        except ValueError:
            parsed = None
        raise api_error(status, parsed, body.decode(errors="replace"))


# The reader's steps, besides the flow steps of ``_flow.py`` (it uses ``Sleep``) and the
# ``StreamEvent`` it hands to the driver's caller.
@dataclass(frozen=True, slots=True)
class _Connect:
    """Open the stream → ``(status, body)``, the body read only for a refusal (status 400 or
    more). Any step but ``_NEXT_LINE`` closes the stream opened before."""

    path: str
    headers: dict[str, str]

    def request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        return http.build_request("GET", self.path, headers=self.headers, timeout=_TIMEOUT)


class _NextLine:
    """→ the next line of the open stream, or None where the connection ended."""


_NEXT_LINE = _NextLine()
_IoStep = _Connect | _NextLine | Step
_ReaderStep = _IoStep | StreamEvent


def _following(path: str, after: int, reconnect_seconds: float
               ) -> Generator[_ReaderStep, Any, None]:
    """One reader, written once: connect naming the last chunk seen, hand on each event,
    and when the connection ends before the ``end`` event, pause and connect again (until
    ``_Follower.failed`` says to give up). ``events`` and ``aevents`` only do the I/O."""
    follower = _Follower(after, reconnect_seconds)
    while True:
        try:
            _raise_for(*(yield _Connect(path, follower.headers())))
            while (line := (yield _NEXT_LINE)) is not None:
                event = follower.line(line)
                if event is not None:
                    yield event
                    if event.kind == "end":
                        return
        except (httpx.TransportError, ApiError) as exc:
            follower.failed(exc)
        yield Sleep(_RECONNECT_PAUSE)  # the connection ended before the stream did


class _Steps:
    """The drivers' shared half of ``_following``: iterate it for the steps; run each one
    under ``with steps:``, setting ``answer``, so that what a step raises is thrown into the
    reader, which judges whether it is worth reconnecting."""

    def __init__(self, task_id: int, after: int, reconnect_seconds: float) -> None:
        self.flow = _following(calls.stream_path(task_id), after, reconnect_seconds)
        self.answer: Any = None
        self.error: Exception | None = None

    def __iter__(self) -> _Steps:
        return self

    def __next__(self) -> _ReaderStep:
        answer, error, self.answer, self.error = self.answer, self.error, None, None
        return self.flow.send(answer) if error is None else self.flow.throw(error)

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        if isinstance(exc, Exception):  # not a cancellation or an interrupt: those go on
            self.error = exc
            return True
        return False


class _Connection:
    """The sync I/O of the reader's steps: at most one open stream, closed before the next
    one and when the reader ends (however it ends)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.response: httpx.Response | None = None
        self.lines: Iterator[str] = iter(())

    def close(self) -> None:
        if self.response is not None:
            self.response.close()

    def perform(self, step: _IoStep) -> Any:
        if isinstance(step, _NextLine):
            return next(self.lines, None)
        self.close()  # the reader is done with this stream: it pauses or connects again
        if not isinstance(step, _Connect):
            return self.client._perform(step)
        http = self.client._http
        self.response = response = http.send(step.request(http), stream=True)
        self.lines = response.iter_lines()
        return response.status_code, response.read() if response.is_error else b""


class _AsyncConnection:
    """The async twin of ``_Connection``."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.response: httpx.Response | None = None
        self.lines: AsyncIterator[str] = _no_lines()

    async def aclose(self) -> None:
        if self.response is not None:
            await self.response.aclose()

    async def perform(self, step: _IoStep) -> Any:
        if isinstance(step, _NextLine):
            return await anext(self.lines, None)
        await self.aclose()
        if not isinstance(step, _Connect):
            return await self.client._perform(step)
        http = self.client._http
        self.response = response = await http.send(step.request(http), stream=True)
        self.lines = response.aiter_lines()
        return response.status_code, await response.aread() if response.is_error else b""


async def _no_lines() -> AsyncIterator[str]:
    return
    yield  # an async generator: the lines before the first connection (there are none)


def events(client: Client, task_id: int, after: int = 0,
           reconnect_seconds: float = RECONNECT_SECONDS) -> Iterator[StreamEvent]:
    """Every event of the task's stream after chunk ``after``, resuming across dropped
    connections (and server restarts) until the ``end`` event: the sync driver of
    ``_following``."""
    steps = _Steps(task_id, after, reconnect_seconds)
    with closing(_Connection(client)) as connection:
        for step in steps:
            if isinstance(step, StreamEvent):
                yield step
            else:
                with steps:
                    steps.answer = connection.perform(step)


async def aevents(client: AsyncClient, task_id: int, after: int = 0,
                  reconnect_seconds: float = RECONNECT_SECONDS) -> AsyncIterator[StreamEvent]:
    """The async twin of :func:`events`: the async driver of ``_following``."""
    steps = _Steps(task_id, after, reconnect_seconds)
    async with aclosing(_AsyncConnection(client)) as connection:
        for step in steps:
            if isinstance(step, StreamEvent):
                yield step
            else:
                with steps:
                    steps.answer = await connection.perform(step)

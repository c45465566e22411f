"""The stream reader's two drivers (``_stream.events`` and ``_stream.aevents``) against a
scripted SSE server (``httpx.MockTransport``): the same script gives both the same events.
What a real server cannot easily be made to do on cue is scripted here: a connection dropped
mid-stream or closed before the end, a 503, a 404, a server that never comes back, a reader
that stops early. ``tests/test_streaming.py`` covers the reader against real servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest

import branchwork
from branchwork import _stream
from branchwork._exceptions import NotFound, ServerError
from branchwork._stream import StreamEvent

URL = "http://branchwork.test"
TASK = 7
DRIVERS = ("sync", "async")


def sse(*events: tuple[str, dict[str, Any]]) -> list[bytes]:
    """Events as the server writes them, one part per event (chunks carry ``id``)."""
    parts = [b"retry: 1000\n\n"]
    for kind, data in events:
        head = f"id: {data['seq']}\n" if kind == "chunk" else ""
        parts.append(f": keep-alive\n{head}event: {kind}\n".encode()
                     + b"data: " + orjson.dumps(data) + b"\n\n")
    return parts


def chunk(seq: int) -> tuple[str, dict[str, Any]]:
    return "chunk", {"seq": seq, "data": f"c{seq}", "attempt": 1}


END = ("end", {"status": "succeeded", "chunks": 4})


class Body(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body for either client: its parts, then ``error`` (a dropped connection)
    or a clean close; records whether the reader closed it."""

    def __init__(self, parts: list[bytes], error: Exception | None = None) -> None:
        self.parts = parts
        self.error = error
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.parts
        if self.error is not None:
            raise self.error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            yield part
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


Answer = httpx.Response | Exception


class Script:
    """The server: one answer per request, in order (the last one repeats); it keeps the
    ``Last-Event-ID`` of every request."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.last_ids: list[str | None] = []
        self.accepts: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "GET" and request.url.path == f"/v1/tasks/{TASK}/stream"
        self.last_ids.append(request.headers.get("last-event-id"))
        self.accepts.append(request.headers.get("accept"))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def ok(parts: list[bytes], error: Exception | None = None) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"},
                          stream=Body(parts, error))


def refused(status: int, code: str) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "message": f"{code} here"})


def read(driver: str, script: Callable[[httpx.Request], httpx.Response], *,
         stop_after: int | None = None, **kwargs: Any) -> list[StreamEvent]:
    """Every event the driver yields (or the first ``stop_after``, then the reader is
    closed), as a caller of ``run.stream_events()`` / ``run.astream_events()`` sees them."""
    if driver == "sync":
        with branchwork.Client(URL, transport=httpx.MockTransport(script)) as client:
            out: list[StreamEvent] = []
            reader = _stream.events(client, TASK, **kwargs)
            for event in reader:
                out.append(event)
                if len(out) == stop_after:
                    reader.close()
                    break
            return out

    async def follow() -> list[StreamEvent]:
        async with branchwork.AsyncClient(URL, transport=httpx.MockTransport(script)) as client:
            out: list[StreamEvent] = []
            areader = _stream.aevents(client, TASK, **kwargs)
            async for event in areader:
                out.append(event)
                if len(out) == stop_after:
                    await areader.aclose()  # type: ignore[attr-defined]
                    break
            return out

    return asyncio.run(follow())


@pytest.fixture(autouse=True)
def quick_reconnect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_stream, "_RECONNECT_PAUSE", 0.01)


@pytest.mark.parametrize("driver", DRIVERS)
def test_resumes_with_last_event_id_until_the_end(driver: str) -> None:
    """Dropped mid-stream, then closed cleanly before the end: each reconnect names the last
    chunk seen (progress has no id and does not move it); nothing after ``end`` is read."""
    progress = ("progress", {"progress": 0.5, "message": "half way"})
    script = Script(
        ok(sse(chunk(1), chunk(2), progress), httpx.ReadError("connection reset")),
        ok(sse(chunk(3))),
        ok(sse(chunk(4), END, chunk(5))),
        ok(sse(chunk(99))))
    events = read(driver, script)
    assert [(e.kind, e.seq) for e in events] == [
        ("chunk", 1), ("chunk", 2), ("progress", None), ("chunk", 3), ("chunk", 4),
        ("end", 4)]
    assert [e.data for e in events if e.kind == "chunk"] == ["c1", "c2", "c3", "c4"]
    assert events[2] == StreamEvent("progress", progress=0.5, message="half way")
    assert events[-1].status == "succeeded"
    assert script.last_ids == [None, "2", "3"]
    assert script.accepts == ["text/event-stream"] * 3


@pytest.mark.parametrize("driver", DRIVERS)
def test_starts_after_the_given_chunk(driver: str) -> None:
    script = Script(ok(sse(chunk(4), END)))
    assert [e.seq for e in read(driver, script, after=3)] == [4, 4]
    assert script.last_ids == ["3"]


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_server_away_is_waited_for_then_followed(driver: str) -> None:
    """Connection refused and a 503 (a proxy before a restarting server) are retried."""
    script = Script(httpx.ConnectError("refused"), refused(503, "unavailable"),
                    ok(sse(chunk(1), END)))
    assert [e.kind for e in read(driver, script)] == ["chunk", "end"]
    assert len(script.last_ids) == 3


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize(("status", "code", "error"), [
    (404, "not_found", NotFound), (500, "internal_error", ServerError)])
def test_a_refusal_is_raised_at_once(driver: str, status: int, code: str,
                                     error: type[Exception]) -> None:
    script = Script(refused(status, code), ok(sse(chunk(1), END)))
    with pytest.raises(error) as raised:
        read(driver, script)
    assert raised.value.code == code  # type: ignore[attr-defined]
    assert len(script.last_ids) == 1


@pytest.mark.parametrize("driver", DRIVERS)
def test_gives_up_on_a_server_that_stays_away(driver: str) -> None:
    """After ``reconnect_seconds`` of failures the last error is raised as it came."""
    script = Script(ok(sse(chunk(1)), httpx.ReadError("reset")), httpx.ConnectError("refused"))
    with pytest.raises(httpx.ConnectError):
        read(driver, script, reconnect_seconds=0.2)
    assert script.last_ids[0] is None and set(script.last_ids[1:]) == {"1"}
    assert len(script.last_ids) > 2


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_reader_that_stops_early_closes_its_connection(driver: str) -> None:
    body = Body(sse(chunk(1), chunk(2), END))
    script = Script(httpx.Response(200, stream=body))
    assert [e.seq for e in read(driver, script, stop_after=1)] == [1]
    assert body.closed
    assert len(script.last_ids) == 1

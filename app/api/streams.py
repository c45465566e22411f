"""A running task's progress and streamed chunks: the worker's writes, and the readers'
server-sent events (docs/streaming.md)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from pydantic import Field, StrictFloat, StrictInt, StrictStr

from ... import protocol
from .. import access
from ..engine import stream as engine
from ..jsonutil import StrictJsonRoute
from .answers import StreamWrittenOut
from .deps import CallerDep, Server
from .schemas import Strict, TaskId

router = APIRouter(prefix="/v1/tasks", tags=["streams"], route_class=StrictJsonRoute)


class StreamIn(Strict):
    lease_token: uuid.UUID
    chunks: Annotated[list[StrictStr], Field(max_length=protocol.MAX_STREAM_BATCH)] = []
    progress: Annotated[StrictFloat, Field(ge=0.0, le=1.0)] | None = None
    message: Annotated[str, Field(max_length=protocol.MAX_PROGRESS_MESSAGE)] | None = None
    # The seq the first chunk should get: a repeated batch is then recognised (docs).
    first_seq: Annotated[StrictInt, Field(ge=1, le=2**31 - 1)] | None = None


@router.post("/{task_id}/stream", response_model=StreamWrittenOut,
             summary="Append streamed chunks and progress")
async def write_task_stream(task_id: TaskId, body: StreamIn,
                            server: Server) -> dict[str, int]:
    """Appends a running attempt's chunks (in order) and sets its progress; 409 on a stale lease."""
    out = await engine.write(server, task_id, str(body.lease_token), list(body.chunks),
                             body.progress, body.message, body.first_seq)
    return {"task_id": out.task_id, "chunks": out.chunks}


def _sse(event: engine.Event) -> bytes:
    if event.kind == "keepalive":
        return b": keep-alive\n\n"
    head = f"id: {event.id}\n" if event.id is not None else ""
    return (f"{head}event: {event.kind}\ndata: ".encode() + orjson.dumps(event.data)
            + b"\n\n")


@router.get("/{task_id}/stream", response_class=StreamingResponse,
            summary="Follow a task's stream as server-sent events")
async def read_task_stream(
    task_id: TaskId, server: Server, caller: CallerDep,
    after: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> StreamingResponse:
    """Replays the chunks after Last-Event-ID (or after), then follows live until an end event."""
    task = await engine.check_readable(server, task_id)
    access.check_task(caller, task["name"], task["queue"])
    start = after or 0
    if last_event_id and last_event_id.strip().isdigit():
        start = max(start, int(last_event_id.strip()))

    async def events() -> AsyncIterator[bytes]:
        yield b"retry: 1000\n\n"
        async for event in engine.follow(server, task_id, start):
            yield _sse(event)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})

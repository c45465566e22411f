"""A prepared send (``TaskRequest``) and the send flow: write queue limits, then send.

``send_batch`` and ``asend_batch`` run the same flow, through the sync or the async default
client; the ``TaskRun`` handles they return keep that origin.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import _calls as calls
from ._context import get_context
from ._flow import Flow, Once
from ._handle import TaskRun
from ._limits import queue_rate_limit, write_limits
from ._options import Queue
from ._origin import Origin

AUTO_KEY_PREFIX = "auto:"


class Sendable(Protocol):
    """What a send needs of its task definition."""

    name: str
    queue: Queue


@dataclass
class TaskRequest:
    """One validated send, not yet sent: the body of POST /v1/tasks.

    Made by ``task.prepare(...)``; sent with ``send_batch([...])`` (or ``.send()`` itself).
    Parent, spawn key and the automatic idempotency key are filled in when it is sent.
    """

    definition: Sendable
    body: dict[str, Any]
    explicit: frozenset[str] = field(default_factory=frozenset)
    limits: tuple[Any, ...] = ()  # rate limits defined in code, written before the send

    def finalize(self) -> tuple[dict[str, Any], bool]:
        """The body to send, and whether its idempotency key was generated here."""
        body = dict(self.body)
        ctx = get_context()
        # A debounced send carries no other key: its debounce key finds its task, and a
        # repeat after a lost answer folds into the same window.
        debounced = body.get("debounce_seconds") is not None
        if ctx is not None and "parent_id" not in self.explicit:
            body["parent_id"] = ctx.task_id
            if not body.get("spawn_key") and not debounced:
                body["spawn_key"] = ctx.next_spawn_key()
        auto = False
        if not debounced and not body.get("idempotency_key") and not (
                body.get("parent_id") is not None and body.get("spawn_key")):
            # Makes the send safe to repeat after a dropped connection: a repeat is recognised
            # by the server instead of creating a second task.
            body["idempotency_key"] = AUTO_KEY_PREFIX + uuid.uuid4().hex
            auto = True
        return body, auto


def queue_limit(queue: Queue) -> Flow[None]:
    """Write a queue's concurrency limit and rate limit to the server, once per client."""
    if queue.concurrency_limit is not None:
        yield Once(("queue", queue.name, queue.concurrency_limit),
                   lambda: calls.configure_queue(queue.name,
                                                 concurrency_limit=queue.concurrency_limit))
    yield from queue_rate_limit(queue)


def sending(requests: Sequence[TaskRequest]) -> Flow[list[tuple[Mapping[str, Any], bool]]]:
    """Queue limits first, then one request for all: ``[(answer, key_was_generated)]``."""
    for definition in {id(r.definition): r.definition for r in requests}.values():
        yield from queue_limit(definition.queue)
    yield from write_limits({lim for r in requests for lim in r.limits})
    bodies = [r.finalize() for r in requests]
    if len(bodies) == 1:
        outs = [(yield calls.send_task(bodies[0][0]))]
    else:
        outs = yield calls.send_tasks([b for b, _ in bodies])
    return [(out, auto) for out, (_, auto) in zip(outs, bodies, strict=True)]


def _runs(requests: Sequence[TaskRequest], answers: Sequence[tuple[Mapping[str, Any], bool]],
          origin: Origin) -> list[TaskRun]:
    runs = []
    for req, (out, auto) in zip(requests, answers, strict=True):
        # A generated key can only match this very send, repeated after a lost answer.
        duplicate = bool(out["duplicate"]) and not auto
        run = TaskRun(out["id"], duplicate=duplicate, task_name=req.definition.name,
                      status=None if duplicate else "queued", client=origin.client,
                      async_client=origin.async_client)
        run.debounced = bool(out.get("debounced"))
        run.folded_into = out.get("folded_into")
        runs.append(run)
    return runs


def send_batch(requests: Iterable[TaskRequest]) -> list[TaskRun]:
    """Send prepared requests (of any tasks) in one request and one transaction."""
    reqs = list(requests)
    if not reqs:
        return []
    origin = Origin()
    return _runs(reqs, origin.run(sending(reqs)), origin)


async def asend_batch(requests: Iterable[TaskRequest]) -> list[TaskRun]:
    """Async twin of ``send_batch``."""
    reqs = list(requests)
    if not reqs:
        return []
    origin = Origin()
    return _runs(reqs, await origin.arun(sending(reqs)), origin)

"""``TaskRun``: the handle of one sent task (status, result, cancel).

Each operation is one flow (``_flow.py``); the sync method and its ``a``-prefixed async twin
only choose the driver, through the client the handle came from (``Origin``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from . import _calls as calls
from . import _stream
from ._exceptions import TaskCancelled, TaskFailed, WaitTimeout
from ._flow import Deadline, Flow, Sleep
from ._http import AsyncClient, Client
from ._origin import Origin
from ._stream import StreamEvent
from .protocol import TERMINAL_STATUSES

TERMINAL = frozenset(TERMINAL_STATUSES)
_FIRST_POLL, _MAX_POLL = 0.05, 1.0


class _Pauses:
    """The waits between reads of a task's status, for ``result()`` and its async twin:
    quick at first for short tasks, growing to ``_MAX_POLL``, never past the deadline."""

    def __init__(self, timeout: float | None) -> None:
        self.deadline = Deadline(timeout)
        self._pause = _FIRST_POLL

    def next(self, run: TaskRun) -> float:
        """The next pause; ``WaitTimeout`` once the deadline has passed."""
        pause = self._pause
        left = self.deadline.left()
        if left is not None:
            if left <= 0:
                raise WaitTimeout(run.id, self.deadline.timeout or 0.0, run.status, run.task)
            pause = min(pause, left)
        self._pause = min(pause * 1.5, _MAX_POLL)
        return pause


class TaskRun:
    """A sent task. ``duplicate`` is True when the send matched an existing task (same
    idempotency key, or same parent and spawn key) and this handle points at that one.

    ``folded_into`` is the task a debounced send joined (None when it opened the window, or
    for any other send); ``debounced`` says the send was debounced (docs/flow-control.md).

    ``status`` and ``task`` are what was last read; ``refresh()`` reads again. Network calls
    have async twins named with an ``a`` prefix: ``arefresh``, ``aresult``, ``acancel``...
    """

    def __init__(self, task_id: int, *, duplicate: bool = False, task_name: str | None = None,
                 status: str | None = None, client: Client | None = None,
                 async_client: AsyncClient | None = None) -> None:
        self.id = int(task_id)
        self.duplicate = duplicate
        self.debounced = False
        self.folded_into: int | None = None
        self.task_name = task_name
        self.status: str | None = status
        self.task: dict[str, Any] | None = None
        self.origin = Origin(client, async_client)

    def __repr__(self) -> str:
        dup = ", duplicate" if self.duplicate else ""
        return f"<TaskRun {self.id} {self.task_name or ''} {self.status or '?'}{dup}>"

    def _update(self, task: dict[str, Any]) -> TaskRun:
        self.task = task
        self.status = task.get("status")
        self.task_name = task.get("name", self.task_name)
        return self

    @property
    def done(self) -> bool:
        """True once the last read status is final (succeeded, failed or cancelled)."""
        return self.status in TERMINAL

    @property
    def error(self) -> dict[str, Any] | None:
        return (self.task or {}).get("error")

    # -- flows ---------------------------------------------------------------------------
    def _refreshing(self) -> Flow[TaskRun]:
        return self._update((yield calls.get_task(self.id)))

    def _waiting(self, timeout: float | None) -> Flow[Any]:
        pauses = _Pauses(timeout)
        while True:
            yield from self._refreshing()
            if self.done:
                return self._outcome()
            yield Sleep(pauses.next(self))

    def _cancelling(self) -> Flow[str]:
        out = yield calls.cancel_task(self.id)
        self.status = out.get("status", self.status)
        return self.status or ""

    def _retrying(self) -> Flow[None]:
        self.status = (yield calls.retry_task(self.id)).get("status", "queued")

    def _outcome(self) -> Any:
        task = self.task or {}
        if self.status == "succeeded":
            return task.get("result")
        if self.status == "failed":
            raise TaskFailed(self.id, task)
        raise TaskCancelled(self.id, task)

    # -- the public methods: a flow and a driver ------------------------------------------
    def refresh(self) -> TaskRun:
        """Read the task again (GET /v1/tasks/{id}); returns self."""
        return self.origin.run(self._refreshing())

    async def arefresh(self) -> TaskRun:
        return await self.origin.arun(self._refreshing())

    def why(self) -> dict[str, Any]:
        """Why the task is not running, as the server sees it now (GET /v1/tasks/{id}/why):
        ``{"task_id", "status", "reasons": [{"code", "message", ...}]}``; no reasons while
        it runs or once it finished. Codes: docs/flow-control.md, "Why isn't it running?"."""
        return self.origin.run(self._asking_why())

    async def awhy(self) -> dict[str, Any]:
        return await self.origin.arun(self._asking_why())

    def _asking_why(self) -> Flow[dict[str, Any]]:
        return (yield calls.why_task(self.id))

    def result(self, timeout: float | None = None) -> Any:
        """Wait until the task is final and return its JSON result.

        Raises ``TaskFailed`` (error type, message, traceback attached), ``TaskCancelled``,
        or ``WaitTimeout`` when ``timeout`` seconds pass first (the task goes on).
        ``None`` waits as long as it takes.
        """
        return self.origin.run(self._waiting(timeout))

    wait = result  # ``run.wait(timeout)`` reads naturally; it is the same call.

    async def aresult(self, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """Async twin of ``result()`` / ``wait()``."""
        return await self.origin.arun(self._waiting(timeout))

    def cancel(self) -> str:
        """Cancel a queued task, or ask a running one to stop → the status after the call.

        Raises ``Conflict`` (code ``already_finished``) if the task already finished.
        """
        return self.origin.run(self._cancelling())

    async def acancel(self) -> str:
        return await self.origin.arun(self._cancelling())

    # -- progress and streams (docs/streaming.md) -----------------------------------------
    def stream_events(self, after: int = 0) -> Iterator[StreamEvent]:
        """The task's stream as events: every ``chunk`` after seq ``after`` (from the
        start by default), ``progress`` as it changes, then one ``end``. Resumes by itself
        across dropped connections and server restarts."""
        return _stream.events(self.origin.sync(), self.id, after)

    def stream(self, after: int = 0) -> Iterator[str]:
        """The text the task streams (``ctx.stream``), chunk by chunk, live, until it ends:
        ``for token in run.stream(): print(token, end="")``."""
        for event in self.stream_events(after):
            if event.kind == "chunk":
                yield event.data or ""

    def astream_events(self, after: int = 0) -> AsyncIterator[StreamEvent]:
        return _stream.aevents(self.origin.async_(), self.id, after)

    async def astream(self, after: int = 0) -> AsyncIterator[str]:
        """``async for token in run.astream(): ...``: the async twin of ``stream()``."""
        async for event in self.astream_events(after):
            if event.kind == "chunk":
                yield event.data or ""

    def retry(self) -> None:
        """Queue a failed or cancelled task again (``Conflict`` otherwise)."""
        self.origin.run(self._retrying())

    async def aretry(self) -> None:
        await self.origin.arun(self._retrying())

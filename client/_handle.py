"""``TaskRun``: the handle of one sent task (status, result, cancel)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ._config import default_async_client, default_client
from ._exceptions import TaskCancelled, TaskFailed, WaitTimeout
from ._http import AsyncClient, Client

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
_FIRST_POLL, _MAX_POLL = 0.05, 1.0


class _Pauses:
    """The waits between reads of a task's status, for ``result()`` and its async twin:
    quick at first for short tasks, growing to ``_MAX_POLL``, never past the deadline."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._pause = _FIRST_POLL

    def next(self, run: TaskRun) -> float:
        """The next pause; ``WaitTimeout`` once the deadline has passed."""
        pause = self._pause
        if self._deadline is not None:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(run.id, self.timeout or 0.0, run.status, run.task)
            pause = min(pause, left)
        self._pause = min(pause * 1.5, _MAX_POLL)
        return pause


class TaskRun:
    """A sent task. ``duplicate`` is True when the send matched an existing task (same
    idempotency key, or same parent and spawn key) and this handle points at that one.

    ``status`` and ``task`` are what was last read; ``refresh()`` reads again. Network calls
    have async twins named with an ``a`` prefix: ``arefresh``, ``aresult``, ``acancel``...
    """

    def __init__(self, task_id: int, *, duplicate: bool = False, task_name: str | None = None,
                 status: str | None = None, client: Client | None = None,
                 async_client: AsyncClient | None = None) -> None:
        self.id = int(task_id)
        self.duplicate = duplicate
        self.task_name = task_name
        self.status: str | None = status
        self.task: dict[str, Any] | None = None
        self._client = client
        self._async_client = async_client

    def __repr__(self) -> str:
        dup = ", duplicate" if self.duplicate else ""
        return f"<TaskRun {self.id} {self.task_name or ''} {self.status or '?'}{dup}>"

    def _sync(self) -> Client:
        return self._client or default_client()

    def _async(self) -> AsyncClient:
        return self._async_client or default_async_client()

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

    def refresh(self) -> TaskRun:
        """Read the task again (GET /v1/tasks/{id}); returns self."""
        return self._update(self._sync().get_task(self.id))

    async def arefresh(self) -> TaskRun:
        return self._update(await self._async().get_task(self.id))

    def _outcome(self) -> Any:
        task = self.task or {}
        if self.status == "succeeded":
            return task.get("result")
        if self.status == "failed":
            raise TaskFailed(self.id, task)
        raise TaskCancelled(self.id, task)

    def result(self, timeout: float | None = None) -> Any:
        """Wait until the task is final and return its JSON result.

        Raises ``TaskFailed`` (error type, message, traceback attached), ``TaskCancelled``,
        or ``WaitTimeout`` when ``timeout`` seconds pass first (the task goes on).
        ``None`` waits as long as it takes.
        """
        pauses = _Pauses(timeout)
        while True:
            self.refresh()
            if self.done:
                return self._outcome()
            time.sleep(pauses.next(self))

    wait = result  # ``run.wait(timeout)`` reads naturally; it is the same call.

    async def aresult(self, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """Async twin of ``result()`` / ``wait()``."""
        pauses = _Pauses(timeout)
        while True:
            await self.arefresh()
            if self.done:
                return self._outcome()
            await asyncio.sleep(pauses.next(self))

    def cancel(self) -> str:
        """Cancel a queued task, or ask a running one to stop → the status after the call.

        Raises ``Conflict`` (code ``already_finished``) if the task already finished.
        """
        out = self._sync().cancel_task(self.id)
        self.status = out.get("status", self.status)
        return self.status or ""

    async def acancel(self) -> str:
        out = await self._async().cancel_task(self.id)
        self.status = out.get("status", self.status)
        return self.status or ""

    def retry(self) -> None:
        """Queue a failed or cancelled task again (``Conflict`` otherwise)."""
        self.status = self._sync().retry_task(self.id).get("status", "queued")

    async def aretry(self) -> None:
        self.status = (await self._async().retry_task(self.id)).get("status", "queued")

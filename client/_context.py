"""The running task's context, per task through a ContextVar.

The worker sets it around each attempt (``with task_context(TaskContext.from_claim(...))``);
user code reads it with ``get_context()``, which is None outside a task. A ContextVar (not a
thread-local) means concurrent asyncio tasks in one thread each see their own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import Token
from dataclasses import dataclass, field
from typing import Any

from ._current import current_task, mark_progress
from ._durable import Durable, Replay
from ._exceptions import TaskCancelled
from ._people import PeopleInTheLoop

__all__ = ["TaskContext", "current_task", "get_context", "mark_progress", "reset_context",
           "set_context", "task_context"]

_MAKING_CONDITION = threading.Lock()


class CancelFlag(threading.Event):
    """``threading.Event`` whose condition is made on first ``set``/``wait``/``clear``.

    The worker makes one per attempt and most are only ever read with ``is_set()`` (a plain
    flag read), so the condition and its lock are made only when some thread uses them; the
    module lock makes sure two threads never make two of them."""

    def __init__(self) -> None:
        self._flag = False

    @property  # type: ignore[override]
    def _cond(self) -> threading.Condition:
        cond = self.__dict__.get("_made_cond")
        if cond is None:
            with _MAKING_CONDITION:
                cond = self.__dict__.get("_made_cond")
                if cond is None:
                    cond = self.__dict__["_made_cond"] = threading.Condition(threading.Lock())
        return cond


@dataclass
class TaskContext(Durable, PeopleInTheLoop):
    """What a running attempt knows about itself. ``attempt_number`` starts at 1. Durable
    steps, sleeps and waits (``step``, ``sleep_for``, ``wait_for_event``...) come from
    ``Durable`` (``_durable.py``, docs/durable.md), ``wait_for_approval`` from
    ``PeopleInTheLoop`` (``_people.py``)."""

    task_id: int
    task_name: str
    attempt_number: int = 1
    max_retries: int = 0
    queue: str = "default"
    priority: int = 5
    timeout_seconds: float | None = None
    parent_id: int | None = None
    root_id: int | None = None
    worker_id: str | None = None
    lease_token: str | None = None
    # The definition's ``durable``, set by the worker: waits on children suspend the task.
    durable: bool = False
    workflow_run_id: int | None = None
    workflow_node: str | None = None
    # Set by the worker when the server asks this task to stop; poll it or wait on it.
    cancel_requested: threading.Event = field(default_factory=CancelFlag)
    # Set by the worker runtime: called with True when the task starts waiting (on its
    # children, through ``branchwork.waiting()``) and False when it stops, so the worker can
    # lend the task's slot meanwhile. None: nobody listens (see ``_waiting.py``).
    on_waiting: Callable[[bool], None] | None = field(default=None, repr=False)
    # Set by the worker runtime: stamps this attempt's progress (a shared-memory write; see
    # ``branchwork.worker.progress``). Every call into Branchwork from the task calls it.
    on_progress: Callable[[], None] | None = field(default=None, repr=False)
    # Progress and streamed chunks (``_stream.py``), made on first use.
    _writer: Any = field(default=None, repr=False)
    _spawned: int = field(default=0, repr=False)
    _replay: Any = field(default=None, repr=False)  # durable steps of this attempt
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_claim(cls, task: Mapping[str, Any], worker_id: str | None = None) -> TaskContext:
        """Build the context from one task of a ``/v1/claim`` answer."""
        return cls(
            task_id=task["id"], task_name=task["name"],
            attempt_number=task.get("attempts") or 1,
            max_retries=task.get("max_retries") or 0,
            queue=task.get("queue") or "default", priority=task.get("priority") or 5,
            timeout_seconds=task.get("timeout_seconds"), parent_id=task.get("parent_id"),
            root_id=task.get("root_id"), worker_id=worker_id,
            lease_token=str(task["lease_token"]) if task.get("lease_token") else None,
            workflow_run_id=task.get("workflow_run_id"),
            workflow_node=task.get("workflow_node"),
            # A first run has no stored steps to read (the claim says so: ``replay``).
            _replay=Replay(stored={}) if task.get("replay") is False else None)

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt_number > self.max_retries

    def next_spawn_key(self) -> str:
        """The default spawn_key of the next child: its position among this attempt's sends.

        A retried parent sending the same children in the same order gets the existing
        children back as duplicates instead of new copies.
        """
        self.progress()
        with self._lock:
            key = str(self._spawned)
            self._spawned += 1
            return key

    def progress(self, fraction: float | None = None, message: str | None = None) -> None:
        """Say "still working": an attempt silent past its ``stuck_after`` is shown stuck.
        Any call into Branchwork (``get_context()``, a send, the KV store) says it too.

        With ``fraction`` (0 to 1) and/or ``message`` it is also the task's live progress,
        shown on its studio page and sent to its stream's readers (docs/streaming.md);
        a fraction outside 0..1 raises ``InvalidValue``."""
        if self.on_progress is not None:
            self.on_progress()
        if fraction is not None or message is not None:
            self.stream_writer().progress(fraction, message)

    def stream(self, chunk: str) -> None:
        """Append ``chunk`` (text, at most 64 KiB) to the task's stream: its readers (the
        ``GET /v1/tasks/{id}/stream`` events, ``run.stream()``, the studio) get it within
        moments, in order. Chunks are sent in batches; this never waits for the server."""
        if self.on_progress is not None:
            self.on_progress()
        self.stream_writer().write(chunk)

    def stream_writer(self) -> Any:
        """The attempt's ``StreamWriter``, made on first use."""
        with self._lock:
            if self._writer is None:
                from ._origin import Origin
                from ._stream import StreamWriter
                self._writer = StreamWriter(self, Origin())
            return self._writer

    @property
    def streaming(self) -> bool:
        """Whether this attempt has streamed or reported progress (a writer exists)."""
        return self._writer is not None

    def close_stream(self) -> None:
        """Send what the task streamed and has not been sent yet; the worker calls this when
        the attempt returns, before it reports (so readers get every chunk before ``end``)."""
        writer = self._writer
        if writer is not None:
            writer.close()

    def raise_if_cancelled(self) -> None:
        """Raise ``TaskCancelled`` when cancellation was requested: a cheap check for loops."""
        self.progress()
        if self.cancel_requested.is_set():
            raise TaskCancelled(self.task_id, message=f"task {self.task_id}: cancel requested")


def get_context() -> TaskContext | None:
    """The context of the task running here, or None outside a task. Counts as progress."""
    ctx = current_task.get()
    if ctx is not None and ctx.on_progress is not None:
        ctx.on_progress()
    return ctx


def set_context(ctx: TaskContext | None) -> Token[TaskContext | None]:
    """Low-level: set the context; give the token to ``reset_context`` afterwards."""
    return current_task.set(ctx)


def reset_context(token: Token[TaskContext | None]) -> None:
    current_task.reset(token)


@contextmanager
def task_context(ctx: TaskContext) -> Iterator[TaskContext]:
    """Run a block as the given task: ``get_context()`` returns ``ctx`` inside it."""
    token = current_task.set(ctx)
    try:
        yield ctx
    finally:
        current_task.reset(token)

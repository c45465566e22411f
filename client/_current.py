"""Which task runs here: the ContextVar behind ``get_context()``, in a module of its own.

It imports nothing of the client, so the HTTP client can mark progress on every request
(``mark_progress``) without importing the task context, whose durable and people methods
use the HTTP client in turn: no import cycle (``tests/test_architecture.py``).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._context import TaskContext

current_task: ContextVar[TaskContext | None] = ContextVar("branchwork_task", default=None)


def mark_progress() -> None:
    """A call into Branchwork from inside a task (any request of a client): progress."""
    ctx = current_task.get()
    if ctx is not None and ctx.on_progress is not None:
        ctx.on_progress()

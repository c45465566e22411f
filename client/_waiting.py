"""The no-deadlock rule for tasks that wait (on children, on a run, on anything).

While a task waits it is inside ``waiting()``, which calls the worker's
``TaskContext.on_waiting(True)`` hook (and ``False`` after). The Python worker then stops
counting the task against its concurrency, so a worker with concurrency 1 can run the
children of the parent that waits for them. Other runtimes may ignore the hook.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from ._context import get_context
from ._flow import Flow, T


def _set_waiting(flag: bool) -> None:
    ctx = get_context()
    hook = getattr(ctx, "on_waiting", None) if ctx is not None else None
    if hook is not None:
        hook(flag)


@contextmanager
def waiting() -> Iterator[None]:
    """Mark the current task as waiting (on children, on anything): its worker slot is lent
    to other tasks meanwhile. Outside a task, or under a runtime without the hook, a no-op."""
    _set_waiting(True)
    try:
        yield
    finally:
        _set_waiting(False)


@asynccontextmanager
async def awaiting() -> AsyncIterator[None]:
    """Async twin of ``waiting()``."""
    _set_waiting(True)
    try:
        yield
    finally:
        _set_waiting(False)


def lending(flow: Flow[T]) -> Flow[T]:
    """``flow`` run inside ``waiting()``, whichever driver runs it."""
    with waiting():
        return (yield from flow)

"""Task trees from the client: send children and wait for them without holding a worker
slot, and read, cancel or wait on a whole tree.

The no-deadlock rule: while a task waits on its children it is inside ``waiting()``, which
calls the worker's ``TaskContext.on_waiting(True)`` hook (and ``False`` after). The Python
worker then stops counting the task against its concurrency, so a worker with concurrency 1
can run the children of the parent that waits for them. Other runtimes may ignore the hook.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

from ._calls import Call
from ._config import default_async_client, default_client
from ._context import get_context

if TYPE_CHECKING:
    from ._handle import TaskRun
    from ._http import AsyncClient, Client


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


def wait_all(runs: Iterable[TaskRun], timeout: float | None = None) -> list[Any]:
    """Results of every run, in order, waiting inside ``waiting()``. The first failed child
    (in order) raises its ``TaskFailed``/``TaskCancelled``: ``.task_id`` is the child's id and
    ``.error_type``/``.error_message`` its error."""
    runs = list(runs)
    with waiting():
        return [run.result(timeout=timeout) for run in runs]


async def await_all(runs: Iterable[TaskRun], timeout: float | None = None) -> list[Any]:  # noqa: ASYNC109
    """Async twin of ``wait_all``: the children are awaited concurrently."""
    runs = list(runs)
    async with awaiting():
        return list(await asyncio.gather(*(run.aresult(timeout=timeout) for run in runs)))


# -- trees over HTTP -------------------------------------------------------------------------

def _get(task_id: int, limit: int | None) -> Call:
    params = {"limit": limit} if limit else None
    return Call("GET", f"/v1/trees/{int(task_id)}", params=params, safe=True)


def _cancel(task_id: int) -> Call:
    return Call("POST", f"/v1/trees/{int(task_id)}/cancel", safe=True)


def _wait(task_id: int, timeout: float) -> Call:
    return Call("GET", f"/v1/trees/{int(task_id)}/wait", params={"timeout_seconds": timeout},
                safe=True, extra_timeout=timeout)


def _roots(with_children: bool, cursor: int | None, limit: int) -> Call:
    params: dict[str, Any] = {"with_children": str(with_children).lower(), "limit": limit}
    if cursor is not None:
        params["cursor"] = cursor
    return Call("GET", "/v1/trees", params=params, safe=True)


def get_tree(task_id: int, *, limit: int | None = None,
             client: Client | None = None) -> dict[str, Any]:
    """The whole tree ``task_id`` belongs to: ``{root_id, rollup, total, finished, truncated,
    tree}``, ``tree`` nested through ``children``."""
    return (client or default_client()).execute(_get(task_id, limit))


def cancel_tree(task_id: int, *, client: Client | None = None) -> dict[str, Any]:
    """Cancel ``task_id`` and its descendants: ``{cancelled: [...], cancel_requested: [...]}``."""
    return (client or default_client()).execute(_cancel(task_id))


def wait_tree(task_id: int, timeout: float = 60.0, *,
              client: Client | None = None) -> dict[str, Any]:
    """Wait until nothing in the tree is queued or running (or ``timeout`` passes); the
    answer's ``finished`` says which. Long-polls the server in slices it allows."""
    import time

    deadline = time.monotonic() + timeout
    with waiting():
        while True:
            left = max(0.0, deadline - time.monotonic())
            body = (client or default_client()).execute(_wait(task_id, min(left, 30.0)))
            if body["finished"] or time.monotonic() >= deadline:
                return body


def list_roots(*, with_children: bool = False, cursor: int | None = None, limit: int = 100,
               client: Client | None = None) -> dict[str, Any]:
    return (client or default_client()).execute(_roots(with_children, cursor, limit))


async def aget_tree(task_id: int, *, limit: int | None = None,
                    client: AsyncClient | None = None) -> dict[str, Any]:
    return await (client or default_async_client()).execute(_get(task_id, limit))


async def acancel_tree(task_id: int, *, client: AsyncClient | None = None) -> dict[str, Any]:
    return await (client or default_async_client()).execute(_cancel(task_id))


async def await_tree(task_id: int, timeout: float = 60.0, *,  # noqa: ASYNC109
                     client: AsyncClient | None = None) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with awaiting():
        while True:
            left = max(0.0, deadline - loop.time())
            body = await (client or default_async_client()).execute(
                _wait(task_id, min(left, 30.0)))
            if body["finished"] or loop.time() >= deadline:
                return body


def run_children(sender: Any, items: Sequence[Any], timeout: float | None) -> list[Any]:
    """``task.run_many``: send all in one request, then ``wait_all``."""
    return wait_all(sender.send_many(items), timeout=timeout)


async def arun_children(sender: Any, items: Sequence[Any], timeout: float | None) -> list[Any]:  # noqa: ASYNC109
    return await await_all(await sender.asend_many(items), timeout=timeout)

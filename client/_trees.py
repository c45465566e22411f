"""Task trees from the client: wait for children without holding a worker slot
(``_waiting.py``), and read, cancel or wait on a whole tree."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from . import _calls as calls
from ._config import default_async_client, default_client
from ._context import get_context
from ._flow import Deadline, Flow
from ._gather import agather, gather
from ._handle import TaskRun
from ._http import AsyncClient, Client
from ._waiting import awaiting, lending, waiting

__all__ = ["acancel_tree", "aget_tree", "await_all", "await_tree", "awaiting", "cancel_tree",
           "get_tree", "list_roots", "wait_all", "wait_tree", "waiting"]

WAIT_SLICE = 30.0  # one long-poll of a wait; a longer wait is several


def wait_all(runs: Iterable[TaskRun], timeout: float | None = None) -> list[Any]:
    """Results of every run, in order, waiting inside ``waiting()``. The first failed child
    (in order) raises its ``TaskFailed``/``TaskCancelled``: ``.task_id`` is the child's id and
    ``.error_type``/``.error_message`` its error. Inside a ``durable=True`` task the wait
    suspends the task instead (``_gather.py``): no process is held while the children run."""
    runs = list(runs)
    ctx = get_context()
    if ctx is not None and ctx.durable:
        return gather(ctx, runs, timeout)
    with waiting():
        return [run.result(timeout=timeout) for run in runs]


async def await_all(runs: Iterable[TaskRun], timeout: float | None = None) -> list[Any]:  # noqa: ASYNC109
    """Async twin of ``wait_all``: the children are awaited concurrently."""
    runs = list(runs)
    ctx = get_context()
    if ctx is not None and ctx.durable:
        return await agather(ctx, runs, timeout)
    async with awaiting():
        return list(await asyncio.gather(*(run.aresult(timeout=timeout) for run in runs)))


# -- trees over HTTP -------------------------------------------------------------------------

def _waiting_for_tree(task_id: int, timeout: float) -> Flow[dict[str, Any]]:
    deadline = Deadline(timeout)
    while True:
        body = yield calls.wait_tree(task_id, deadline.slice(WAIT_SLICE))
        if body["finished"] or deadline.passed():
            return body


def get_tree(task_id: int, *, limit: int | None = None,
             client: Client | None = None) -> dict[str, Any]:
    """The whole tree ``task_id`` belongs to: ``{root_id, rollup, total, finished, truncated,
    tree}``, ``tree`` nested through ``children``."""
    return (client or default_client()).execute(calls.get_tree(task_id, limit))


def cancel_tree(task_id: int, *, client: Client | None = None) -> dict[str, Any]:
    """Cancel ``task_id`` and its descendants: ``{cancelled: [...], cancel_requested: [...]}``."""
    return (client or default_client()).execute(calls.cancel_tree(task_id))


def wait_tree(task_id: int, timeout: float = 60.0, *,
              client: Client | None = None) -> dict[str, Any]:
    """Wait until nothing in the tree is queued or running (or ``timeout`` passes); the
    answer's ``finished`` says which. Long-polls the server in slices it allows."""
    return (client or default_client()).run(lending(_waiting_for_tree(task_id, timeout)))


def list_roots(*, with_children: bool = False, cursor: int | None = None, limit: int = 100,
               client: Client | None = None) -> dict[str, Any]:
    return (client or default_client()).execute(calls.list_roots(with_children, cursor, limit))


async def aget_tree(task_id: int, *, limit: int | None = None,
                    client: AsyncClient | None = None) -> dict[str, Any]:
    return await (client or default_async_client()).execute(calls.get_tree(task_id, limit))


async def acancel_tree(task_id: int, *, client: AsyncClient | None = None) -> dict[str, Any]:
    return await (client or default_async_client()).execute(calls.cancel_tree(task_id))


async def await_tree(task_id: int, timeout: float = 60.0, *,  # noqa: ASYNC109
                     client: AsyncClient | None = None) -> dict[str, Any]:
    return await (client or default_async_client()).run(
        lending(_waiting_for_tree(task_id, timeout)))

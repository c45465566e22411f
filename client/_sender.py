"""``Sender``: the sending side of a task (``send``, ``send_many``, ``run``... and their async
twins) over some options. ``TaskDefinition`` and ``ConfiguredTask`` are senders."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._dsl import NodeTask
from ._handle import TaskRun
from ._request import TaskRequest, asend_batch, send_batch
from ._trees import await_all, wait_all


class Sender(NodeTask):
    def prepare(self, *args: Any, **kwargs: Any) -> TaskRequest:
        """Validate arguments and options into a request without sending it."""
        return self.definition.build_request(args, kwargs, self.options)

    def send(self, *args: Any, **kwargs: Any) -> TaskRun:
        """Send one task; returns once the server stored it. Raises ``InvalidArgs`` before
        sending anything if the arguments do not validate."""
        return send_batch([self.prepare(*args, **kwargs)])[0]

    async def asend(self, *args: Any, **kwargs: Any) -> TaskRun:
        return (await asend_batch([self.prepare(*args, **kwargs)]))[0]

    def _many(self, items: Iterable[Any]) -> list[TaskRequest]:
        reqs = []
        for item in items:
            if isinstance(item, tuple):
                reqs.append(self.prepare(*item))
            elif isinstance(item, Mapping) and self.definition.spec.model_param is None:
                reqs.append(self.prepare(**item))
            else:
                reqs.append(self.prepare(item))
        return reqs

    def send_many(self, items: Iterable[Any]) -> list[TaskRun]:
        """Send many in one request: each item is a model (or dict of its fields) for a model
        task, or a dict of keyword arguments / a tuple of positional ones for a plain task.
        All are validated first: one invalid item sends nothing."""
        return send_batch(self._many(items))

    async def asend_many(self, items: Iterable[Any]) -> list[TaskRun]:
        return await asend_batch(self._many(items))

    # -- send and wait (children inside a task lend the worker slot while waiting) ---------
    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Send and wait for the result; inside a task the wait lends the worker slot.
        A failed child raises ``TaskFailed`` (``.task_id`` is the child's)."""
        return wait_all([self.send(*args, **kwargs)])[0]

    async def arun(self, *args: Any, **kwargs: Any) -> Any:
        return (await await_all([await self.asend(*args, **kwargs)]))[0]

    def run_many(self, items: Iterable[Any], timeout: float | None = None) -> list[Any]:
        """``send_many`` then wait for every result, in order (fan out and gather)."""
        return wait_all(self.send_many(items), timeout=timeout)

    async def arun_many(self, items: Iterable[Any], timeout: float | None = None) -> list[Any]:  # noqa: ASYNC109
        return await await_all(await self.asend_many(items), timeout=timeout)

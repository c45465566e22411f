"""What a worker runtime needs from the client, as a small public surface.

``branchwork.worker`` (the Python worker) uses only this module and the names of
``branchwork``; a runtime written elsewhere can use the same. It holds:

- ``RunnableTask``: what a worker calls on a task definition (``TaskDefinition`` is one);
- the running task's context (``TaskContext``, ``task_context``, ``set_context``...);
- ``register_worker`` / ``aregister_worker``: everything a worker tells the server at start
  (itself and its tasks, queue limits, workflows, schedules), written once as a flow;
- the errors a worker tells apart, and ``schedules(registry)``;
- ``Suspend``: what a durable sleep or wait raises to end the attempt (docs/durable.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ._context import TaskContext, get_context, reset_context, set_context, task_context
from ._durable import Suspend
from ._exceptions import ApiError, BranchworkError, InvalidValue, ServerError
from ._http import AsyncClient, Client
from ._options import Queue
from ._registration import schedules, worker_registration

__all__ = ["ApiError", "AsyncClient", "BranchworkError", "Client", "InvalidValue", "RunnableTask",
           "ServerError", "Suspend", "TaskContext", "aregister_worker", "get_context",
           "register_worker", "reset_context", "schedules", "set_context", "task_context"]


@runtime_checkable
class RunnableTask(Protocol):
    """The worker-facing part of a task definition."""

    name: str
    fn: Callable[..., Any]
    queue: Queue

    @property
    def is_async(self) -> bool: ...

    def load_args(self, json_args: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Stored JSON args → ``(args, kwargs)``; ``InvalidArgs`` if they do not fit."""
        ...

    def dump_result(self, value: Any) -> Any:
        """A return value as storable JSON; ``ResultNotSerializable`` otherwise."""
        ...

    def retry_delay(self, attempt: int) -> float | None:
        """Seconds before the next attempt from a backoff function; None: the server's."""
        ...

    def call_on_error(self, exc: BaseException) -> None: ...

    async def acall_on_error(self, exc: BaseException) -> None: ...

    def registration(self) -> dict[str, Any]:
        """The definition as the server's TaskDefinitionIn."""
        ...


def register_worker(client: Client, registry: Any, worker_id: str, *, queues: Sequence[str],
                    info: Mapping[str, Any]) -> None:
    """Register the worker, its tasks, queue limits, workflows and schedules."""
    client.run(worker_registration(registry, worker_id, queues=queues, info=info))


async def aregister_worker(client: AsyncClient, registry: Any, worker_id: str, *,
                           queues: Sequence[str], info: Mapping[str, Any]) -> None:
    """Async twin of ``register_worker`` (the Python worker's)."""
    await client.run(worker_registration(registry, worker_id, queues=queues, info=info))

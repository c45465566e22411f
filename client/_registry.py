"""``Registry``: a named set of task definitions, composable with ``add_registry``."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar, overload

from ._exceptions import DefinitionError
from ._http import AsyncClient, Client
from ._options import Queue, RetryBackoff
from ._registration import queue_settings
from ._task import TaskDefinition
from ._workflow import Workflow
from ._workflow_context import injecting

V = TypeVar("V")


class Registry:
    """Holds task definitions; the worker runs a registry (``module:registry``).

    ``add_registry(other)`` includes another registry as a live view: tasks defined in it
    later are visible here too. Names are unique across everything a registry sees; a clash
    raises ``DefinitionError`` at definition (or at ``add_registry``).
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        self._own: dict[str, TaskDefinition] = {}
        self._included: list[Registry] = []
        self._parents: weakref.WeakSet[Registry] = weakref.WeakSet()
        self._workflows: dict[str, Workflow] = {}

    def __repr__(self) -> str:
        return f"<Registry {self.name or ''} tasks={sorted(self.tasks)}>"

    # -- defining -----------------------------------------------------------------------
    @overload
    def task(self, fn: Callable[..., Any], /) -> TaskDefinition: ...

    @overload
    def task(self, fn: None = None, /, *, name: str | None = None,
             queue: str | Queue = "default", priority: int = 5, max_retries: int = 0,
             timeout_seconds: float | None = None, retry_backoff: RetryBackoff = None,
             retry_delay_seconds: float | None = None,
             retry_max_delay_seconds: float | None = None,
             on_error: Callable[..., Any] | None = None,
             cron: str | None = None, stuck_after_seconds: float | None = None,
             stuck_action: str | None = None,
             on_events: list[str] | None = None,
             durable: bool = False, inject_context: bool = False,
             debounce: Any = None) -> Callable[[Callable[..., Any]], TaskDefinition]: ...

    def task(self, fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
        """Register a function as a task: ``@reg.task`` or ``@reg.task(queue=..., ...)``."""
        if fn is not None:
            return self._define(fn, options)

        def decorate(f: Callable[..., Any]) -> TaskDefinition:
            return self._define(f, options)

        return decorate

    def _define(self, fn: Callable[..., Any], options: dict[str, Any]) -> TaskDefinition:
        options = dict(options)
        if options.pop("inject_context", False):  # Graflow's: the context comes first
            fn = injecting(fn)
        definition = TaskDefinition(fn, registry=self, **options)
        self._check_new({definition.name: definition})
        self._check_queue_limits([definition])
        self._own[definition.name] = definition
        return definition

    def workflow(self, fn: Callable[[], Any] | None = None, /, **options: Any) -> Any:
        """Declare a DAG workflow (``_workflow.py``): ``@reg.workflow(queue=...,
        timeout_seconds=..., args_schema=Model, cron=..., name=..., priority=...)`` on a
        function whose body chains tasks with ``>>``."""

        def decorate(f: Callable[[], Any]) -> Workflow:
            wf = Workflow(f, registry=self, **options)
            for reg in self._ancestors_and_self():
                if wf.name in reg.workflows:
                    raise DefinitionError(f"two workflows are named {wf.name!r}")
            self._workflows[wf.name] = wf
            return wf

        return decorate(fn) if fn is not None else decorate

    @property
    def workflows(self) -> dict[str, Workflow]:
        """Every workflow this registry sees (its own and included ones), by name."""
        return self._merged(lambda reg: reg._workflows)

    def add_registry(self, other: Registry) -> None:
        """Include ``other``'s tasks, now and later. Clashing names raise ``DefinitionError``."""
        if other is self or self in other._all_registries():
            raise DefinitionError("a registry cannot include itself")
        if other in self._included:
            return
        self._check_new(other.tasks)
        self._check_queue_limits(list(other.tasks.values()))
        self._included.append(other)
        other._parents.add(self)

    def _check_new(self, new: dict[str, TaskDefinition]) -> None:
        """New names must not clash in this registry nor in any registry that includes it."""
        for reg in self._ancestors_and_self():
            seen = reg.tasks
            for name, definition in new.items():
                existing = seen.get(name)
                if existing is not None and existing is not definition:
                    where = f" (in registry {reg.name!r})" if reg.name else ""
                    raise DefinitionError(
                        f"two tasks are named {name!r}{where}: {existing.fn.__module__}."
                        f"{existing.fn.__qualname__} and {definition.fn.__module__}."
                        f"{definition.fn.__qualname__}; give one a name= option")

    def _check_queue_limits(self, new: list[TaskDefinition]) -> None:
        for reg in self._ancestors_and_self():
            limits = {d.queue.name: d.queue.concurrency_limit for d in reg.tasks.values()
                      if d.queue.concurrency_limit is not None}
            for d in new:
                limit, other = d.queue.concurrency_limit, limits.get(d.queue.name)
                if limit is not None and other is not None and limit != other:
                    raise DefinitionError(
                        f"queue {d.queue.name!r} has two concurrency limits: {other} and "
                        f"{limit} (task {d.name!r})")
                if limit is not None:
                    limits[d.queue.name] = limit

    def _ancestors_and_self(self) -> list[Registry]:
        return self._reachable(lambda reg: reg._parents)

    def _all_registries(self) -> list[Registry]:
        return self._reachable(lambda reg: reg._included)

    def _merged(self, table: Callable[[Registry], dict[str, V]]) -> dict[str, V]:
        """One fresh dict of ``table`` over this registry and all it includes (its own win)."""
        merged: dict[str, V] = {}
        for reg in reversed(self._all_registries()):
            merged.update(table(reg))
        return merged

    def _reachable(self, edges: Callable[[Registry], Iterable[Registry]]) -> list[Registry]:
        """This registry and every one reached through ``edges``, each once."""
        out: list[Registry] = []
        stack = [self]
        while stack:
            reg = stack.pop()
            if reg not in out:
                out.append(reg)
                stack.extend(edges(reg))
        return out

    # -- reading ------------------------------------------------------------------------
    @property
    def tasks(self) -> dict[str, TaskDefinition]:
        """Every task this registry sees (its own and included ones), by name; a fresh dict."""
        return self._merged(lambda reg: reg._own)

    def get(self, name: str) -> TaskDefinition | None:
        return self.tasks.get(name)

    def __getitem__(self, name: str) -> TaskDefinition:
        return self.tasks[name]

    def __contains__(self, name: object) -> bool:
        return name in self.tasks

    def __iter__(self) -> Iterator[TaskDefinition]:
        return iter(self.tasks.values())

    def __len__(self) -> int:
        return len(self.tasks)

    def queues(self) -> dict[str, Queue]:
        """The queues of all tasks, with their concurrency limits where one was given."""
        out: dict[str, Queue] = {}
        for d in self.tasks.values():
            if d.queue.concurrency_limit is not None or d.queue.name not in out:
                out[d.queue.name] = d.queue
        return out

    def registrations(self) -> list[dict[str, Any]]:
        """Every definition as the server's TaskDefinitionIn, for /v1/workers/register."""
        return [d.registration() for d in self.tasks.values()]

    def cron_tasks(self) -> list[TaskDefinition]:
        return [d for d in self.tasks.values() if d.cron is not None]

    # -- for the worker -----------------------------------------------------------------
    def apply_queue_settings(self, client: Client) -> None:
        """Write the queue concurrency limits declared in code to the server (idempotent)."""
        client.run(queue_settings(self))

    async def aapply_queue_settings(self, client: AsyncClient) -> None:
        await client.run(queue_settings(self))

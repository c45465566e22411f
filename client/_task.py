"""Task definitions: what ``@registry.task`` returns, how it sends, and what a worker needs
from it (``load_args``, ``dump_result``, ``retry_delay``, ``call_on_error``, ``registration``).
"""

from __future__ import annotations

import inspect
import logging
import math
import re
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pydantic_core
from pydantic import BaseModel

from ._args import ArgsSpec
from ._config import default_async_client, default_client
from ._context import get_context
from ._exceptions import DefinitionError, InvalidArgs, ResultNotSerializable
from ._handle import TaskRun
from ._http import AsyncClient, Client
from ._jsoncheck import json_problem

if TYPE_CHECKING:
    from ._registry import Registry

log = logging.getLogger("branchwork.client")

TASK_NAME = re.compile(r"^[A-Za-z_][\w.:\-/]*$")
QUEUE_NAME = re.compile(r"^[\w][\w.:\-/]*$")
BACKOFF_KINDS = ("fixed", "linear", "exponential")
MAX_SECONDS = 31_536_000.0
AUTO_KEY_PREFIX = "auto:"


@dataclass(frozen=True)
class Queue:
    """A queue name with an optional concurrency limit (most tasks running at once, cluster-wide).

    The limit is written to the server (PUT /v1/queues/{name}) by the first send of a task on
    this queue in a process, and by ``Registry.apply_queue_settings()`` which the worker calls
    when it registers.
    """

    name: str
    concurrency_limit: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not QUEUE_NAME.match(self.name) \
                or len(self.name) > 100:
            raise DefinitionError(f"invalid queue name {self.name!r}")
        limit = self.concurrency_limit
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 0):
            raise DefinitionError(f"queue {self.name!r}: concurrency_limit must be an int >= 0")


RetryBackoff = float | int | str | Callable[[int], float] | None

# Options accepted by with_config(); the first group also by @registry.task.
SEND_OPTIONS = frozenset({"queue", "priority", "max_retries", "timeout_seconds",
                          "idempotency_key", "delay", "run_at", "spawn_key", "parent_id"})


def _check(cond: bool, message: str, error: type[Exception]) -> None:
    if not cond:
        raise error(message)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_options(options: Mapping[str, Any], error: type[Exception]) -> None:
    """Validate send options early, so a bad one fails where it was written."""
    p = options.get("priority")
    if p is not None:
        _check(isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 10,
               f"priority must be an int from 1 to 10, not {p!r}", error)
    m = options.get("max_retries")
    if m is not None:
        _check(isinstance(m, int) and not isinstance(m, bool) and 0 <= m <= 1000,
               f"max_retries must be an int from 0 to 1000, not {m!r}", error)
    t = options.get("timeout_seconds")
    if t is not None:
        _check(_number(t) and 0 < t <= MAX_SECONDS, f"timeout_seconds must be > 0, not {t!r}",
               error)
    d = options.get("delay")
    if d is not None:
        seconds = d.total_seconds() if isinstance(d, timedelta) else d
        _check(_number(seconds) and 0 <= seconds <= MAX_SECONDS,
               f"delay must be seconds >= 0 or a timedelta, not {d!r}", error)
    r = options.get("run_at")
    if r is not None:
        _check(isinstance(r, datetime), f"run_at must be a datetime, not {r!r}", error)
        _check(d is None, "give delay or run_at, not both", error)
    for key in ("idempotency_key", "spawn_key"):
        k = options.get(key)
        if k is not None:
            _check(isinstance(k, str) and 0 < len(k) <= 512 and "\x00" not in k,
                   f"{key} must be a non-empty string of at most 512 characters", error)
    pid = options.get("parent_id")
    if pid is not None:
        _check(isinstance(pid, int) and not isinstance(pid, bool) and pid >= 1,
               f"parent_id must be a task id, not {pid!r}", error)


@dataclass
class TaskRequest:
    """One validated send, not yet sent: the body of POST /v1/tasks.

    Made by ``task.prepare(...)``; sent with ``send_batch([...])`` (or ``.send()`` itself).
    Parent, spawn key and the automatic idempotency key are filled in when it is sent.
    """

    definition: TaskDefinition
    body: dict[str, Any]
    explicit: frozenset[str] = field(default_factory=frozenset)

    def finalize(self) -> tuple[dict[str, Any], bool]:
        """The body to send, and whether its idempotency key was generated here."""
        body = dict(self.body)
        ctx = get_context()
        if ctx is not None and "parent_id" not in self.explicit:
            body["parent_id"] = ctx.task_id
            if not body.get("spawn_key"):
                body["spawn_key"] = ctx.next_spawn_key()
        auto = False
        if not body.get("idempotency_key") and not (body.get("parent_id") is not None
                                                    and body.get("spawn_key")):
            # Makes the send safe to repeat after a dropped connection: a repeat is recognised
            # by the server instead of creating a second task.
            body["idempotency_key"] = AUTO_KEY_PREFIX + uuid.uuid4().hex
            auto = True
        return body, auto


def _runs(requests: Sequence[TaskRequest], bodies: Sequence[tuple[dict[str, Any], bool]],
          outs: Sequence[Mapping[str, Any]], client: Client | None,
          async_client: AsyncClient | None) -> list[TaskRun]:
    runs = []
    for req, (_, auto), out in zip(requests, bodies, outs, strict=True):
        # A generated key can only match this very send, repeated after a lost answer.
        duplicate = bool(out["duplicate"]) and not auto
        runs.append(TaskRun(out["id"], duplicate=duplicate, task_name=req.definition.name,
                            status=None if duplicate else "queued", client=client,
                            async_client=async_client))
    return runs


def send_batch(requests: Iterable[TaskRequest]) -> list[TaskRun]:
    """Send prepared requests (of any tasks) in one request and one transaction."""
    reqs = list(requests)
    if not reqs:
        return []
    client = default_client()
    for definition in {id(r.definition): r.definition for r in reqs}.values():
        definition.ensure_queue(client)
    bodies = [r.finalize() for r in reqs]
    if len(reqs) == 1:
        outs = [client.send_task(bodies[0][0])]
    else:
        outs = client.send_tasks([b for b, _ in bodies])
    return _runs(reqs, bodies, outs, None, None)


async def asend_batch(requests: Iterable[TaskRequest]) -> list[TaskRun]:
    """Async twin of ``send_batch``."""
    reqs = list(requests)
    if not reqs:
        return []
    client = default_async_client()
    for definition in {id(r.definition): r.definition for r in reqs}.values():
        await definition.aensure_queue(client)
    bodies = [r.finalize() for r in reqs]
    if len(reqs) == 1:
        outs = [await client.send_task(bodies[0][0])]
    else:
        outs = await client.send_tasks([b for b, _ in bodies])
    return _runs(reqs, bodies, outs, None, None)


# Queues whose limit was written by this process, per client (clients are per event loop).
_applied: weakref.WeakKeyDictionary[Any, set[tuple[str, int | None]]] = (
    weakref.WeakKeyDictionary())


class _Sender:
    """``send``/``asend``/``send_many``/``asend_many``/``prepare`` over some options."""

    definition: TaskDefinition
    options: dict[str, Any]

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

    # -- children and workflows (``_trees.py``, ``_workflow.py``) -------------------------
    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Send and wait for the result; inside a task the wait lends the worker slot.
        A failed child raises ``TaskFailed`` (``.task_id`` is the child's)."""
        from ._trees import wait_all

        return wait_all([self.send(*args, **kwargs)])[0]

    async def arun(self, *args: Any, **kwargs: Any) -> Any:
        from ._trees import await_all

        return (await await_all([await self.asend(*args, **kwargs)]))[0]

    def run_many(self, items: Iterable[Any], timeout: float | None = None) -> list[Any]:
        """``send_many`` then wait for every result, in order (fan out and gather)."""
        from ._trees import run_children

        return run_children(self, list(items), timeout)

    async def arun_many(self, items: Iterable[Any], timeout: float | None = None) -> list[Any]:  # noqa: ASYNC109
        from ._trees import arun_children

        return await arun_children(self, list(items), timeout)

    def __rshift__(self, other: Any) -> Any:
        from ._workflow import chain

        return chain(self, other)

    def __rrshift__(self, other: Any) -> Any:
        from ._workflow import chain

        return chain(other, self)


class ConfiguredTask(_Sender):
    """A task with send options applied, from ``task.with_config(...)``."""

    def __init__(self, definition: TaskDefinition, options: dict[str, Any]) -> None:
        self.definition = definition
        self.options = options

    def with_config(self, **options: Any) -> ConfiguredTask:
        return self.definition.with_config(**{**self.options, **options})

    def __repr__(self) -> str:
        return f"<ConfiguredTask {self.definition.name} {self.options}>"


class TaskDefinition(_Sender):
    """A function registered as a task. Calling it runs the function here, directly."""

    def __init__(self, fn: Callable[..., Any], *, registry: Registry, name: str | None = None,
                 queue: str | Queue = "default", priority: int = 5, max_retries: int = 0,
                 timeout_seconds: float | None = None, retry_backoff: RetryBackoff = None,
                 retry_delay_seconds: float | None = None,
                 retry_max_delay_seconds: float | None = None,
                 on_error: Callable[..., Any] | None = None, cron: str | None = None) -> None:
        self.fn = fn
        self.registry = registry
        if not callable(fn):
            raise DefinitionError(f"a task must be a function, not {type(fn).__name__}")
        self.name = name or getattr(fn, "__name__", "")
        if not isinstance(self.name, str) or not TASK_NAME.match(self.name) \
                or len(self.name) > 200:
            hint = "" if self.name else "; give it one with name="
            raise DefinitionError(f"invalid task name {self.name!r}{hint}")
        self.queue = queue if isinstance(queue, Queue) else Queue(queue)
        check_options({"priority": priority, "max_retries": max_retries,
                       "timeout_seconds": timeout_seconds}, DefinitionError)
        self.priority = priority
        self.max_retries = max_retries
        self.timeout_seconds = timeout_seconds
        self._set_backoff(retry_backoff, retry_delay_seconds, retry_max_delay_seconds)
        if on_error is not None and not callable(on_error):
            raise DefinitionError(f"task {self.name!r}: on_error must be callable")
        self.on_error = on_error
        self.spec = ArgsSpec(fn, self.name)
        self.cron = cron
        if cron is not None:
            self._check_cron(cron)
        self.definition = self
        self.options: dict[str, Any] = {}
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def _set_backoff(self, backoff: RetryBackoff, delay: float | None,
                     max_delay: float | None) -> None:
        self.retry_backoff_fn: Callable[[int], float] | None = None
        self.retry_backoff: str | None = None
        self.retry_delay_seconds = delay
        self.retry_max_delay_seconds = max_delay
        for label, value in (("retry_delay_seconds", delay),
                             ("retry_max_delay_seconds", max_delay)):
            if value is not None and not (_number(value) and 0 <= value <= MAX_SECONDS):
                raise DefinitionError(f"task {self.name!r}: {label} must be seconds >= 0")
        if backoff is None:
            return
        if callable(backoff):
            self.retry_backoff_fn = backoff
        elif isinstance(backoff, str):
            if backoff not in BACKOFF_KINDS:
                raise DefinitionError(f"task {self.name!r}: retry_backoff must be a number, a "
                                      f"function or one of {BACKOFF_KINDS}")
            self.retry_backoff = backoff
        elif _number(backoff) and 0 <= backoff <= MAX_SECONDS:
            self.retry_backoff = "fixed"
            self.retry_delay_seconds = float(backoff)
        else:
            raise DefinitionError(f"task {self.name!r}: invalid retry_backoff {backoff!r}")

    def _check_cron(self, cron: str) -> None:
        from croniter import croniter

        if not isinstance(cron, str) or not croniter.is_valid(cron):
            raise DefinitionError(f"task {self.name!r}: invalid cron expression {cron!r}")
        if not self.spec.all_defaulted:
            raise DefinitionError(
                f"task {self.name!r}: a cron task is sent without arguments, so every "
                f"parameter needs a default (missing: {', '.join(self.spec.required)})")

    def __repr__(self) -> str:
        return f"<TaskDefinition {self.name} queue={self.queue.name}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    # -- sending ------------------------------------------------------------------------
    def with_config(self, **options: Any) -> ConfiguredTask:
        """A copy that sends with other options: queue, priority, max_retries,
        timeout_seconds, idempotency_key, delay (seconds or timedelta) or run_at, spawn_key,
        parent_id. ``None`` leaves an option as it was, except ``parent_id=None`` (no parent).
        Checked here; a bad option raises ``InvalidArgs``."""
        # None means "not given" (keep the definition's value), except parent_id=None: that
        # sends a detached task from inside a task (no parent, no default spawn key).
        options = {k: v for k, v in options.items() if v is not None or k == "parent_id"}
        unknown = set(options) - SEND_OPTIONS
        if unknown:
            raise InvalidArgs(self.name, f"unknown send options {sorted(unknown)}; "
                                         f"known: {sorted(SEND_OPTIONS)}")
        check_options(options, lambda m: InvalidArgs(self.name, m))  # type: ignore[arg-type]
        queue = options.get("queue")
        if isinstance(queue, Queue):
            options = {**options, "queue": queue.name}
        elif queue is not None:
            try:
                Queue(queue)
            except DefinitionError as exc:
                raise InvalidArgs(self.name, str(exc)) from exc
        return ConfiguredTask(self, dict(options))

    def build_request(self, args: tuple[Any, ...], kwargs: Mapping[str, Any],
                      options: Mapping[str, Any]) -> TaskRequest:
        json_args = self.spec.to_json(args, kwargs)
        body: dict[str, Any] = {
            "name": self.name, "args": json_args,
            "queue": options.get("queue") or self.queue.name,
            "priority": options.get("priority") or self.priority,
            "max_retries": options.get("max_retries", self.max_retries),
        }
        timeout = options.get("timeout_seconds", self.timeout_seconds)
        if timeout is not None:
            body["timeout_seconds"] = timeout
        for key in ("retry_backoff", "retry_delay_seconds", "retry_max_delay_seconds"):
            if getattr(self, key) is not None:
                body[key] = getattr(self, key)
        delay = options.get("delay")
        if delay is not None:
            body["delay_seconds"] = (delay.total_seconds() if isinstance(delay, timedelta)
                                     else float(delay))
        run_at = options.get("run_at")
        if run_at is not None:
            if run_at.tzinfo is None:
                run_at = run_at.replace(tzinfo=UTC)
            body["run_at"] = run_at.isoformat()
        for key in ("idempotency_key", "spawn_key", "parent_id"):
            if options.get(key) is not None:
                body[key] = options[key]
        if body.get("spawn_key") and body.get("parent_id") is None and get_context() is None:
            raise InvalidArgs(self.name, "spawn_key needs a parent: send it from inside a "
                                         "task or give parent_id")
        explicit = frozenset(k for k in ("parent_id",) if k in options)
        return TaskRequest(self, body, explicit)

    def ensure_queue(self, client: Client) -> None:
        """Write this task's queue limit to the server, once per process and client."""
        if self.queue.concurrency_limit is None:
            return
        item = (self.queue.name, self.queue.concurrency_limit)
        done = _applied.setdefault(client, set())
        if item not in done:
            client.configure_queue(self.queue.name,
                                   concurrency_limit=self.queue.concurrency_limit)
            done.add(item)

    async def aensure_queue(self, client: AsyncClient) -> None:
        if self.queue.concurrency_limit is None:
            return
        item = (self.queue.name, self.queue.concurrency_limit)
        done = _applied.setdefault(client, set())
        if item not in done:
            await client.configure_queue(self.queue.name,
                                         concurrency_limit=self.queue.concurrency_limit)
            done.add(item)

    # -- what the worker uses -------------------------------------------------------------
    def load_args(self, json_args: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Stored JSON args → ``(args, kwargs)`` to call ``fn`` with; ``InvalidArgs`` if they
        do not match the signature (e.g. sent by curl with a typo)."""
        return self.spec.from_json(json_args)

    def dump_result(self, value: Any) -> Any:
        """A return value as JSON-able data (pydantic models dumped); ``ResultNotSerializable``
        otherwise, so the worker can fail the attempt with a clear message."""
        try:
            if isinstance(value, BaseModel):
                data = value.model_dump(mode="json")
            else:
                data = pydantic_core.to_jsonable_python(value)
        except (pydantic_core.PydanticSerializationError, TypeError, ValueError) as exc:
            problem: str | None = str(exc)
        else:
            problem = json_problem(data, "result")
            if problem is None:
                return data
        raise ResultNotSerializable(f"task {self.name!r} returned a {type(value).__name__}, "
                                    f"which is not storable JSON: {problem}")

    def retry_delay(self, attempt: int) -> float | None:
        """Seconds before the next attempt after failed attempt ``attempt`` (1-based), when a
        backoff function was given; None means: let the server apply the stored policy."""
        if self.retry_backoff_fn is None:
            return None
        try:
            value = float(self.retry_backoff_fn(attempt))
        except Exception:
            log.exception("retry_backoff of task %s raised; using the server's policy", self.name)
            return None
        if not math.isfinite(value):
            return MAX_SECONDS if value > 0 else 0.0
        return min(max(value, 0.0), MAX_SECONDS)

    def call_on_error(self, exc: BaseException) -> None:
        """Call the ``on_error`` handler with the attempt's exception (or with nothing, if it
        takes no argument). Errors of the handler are logged, never raised: an alert that
        fails must not change the task's outcome."""
        if self.on_error is None:
            return
        try:
            out = self._invoke_on_error(exc)
            if inspect.isawaitable(out):
                import asyncio

                asyncio.run(_await(out))
        except Exception:
            log.exception("on_error handler of task %s failed", self.name)

    async def acall_on_error(self, exc: BaseException) -> None:
        """Async twin of ``call_on_error``: awaits an async handler."""
        if self.on_error is None:
            return
        try:
            out = self._invoke_on_error(exc)
            if inspect.isawaitable(out):
                await out
        except Exception:
            log.exception("on_error handler of task %s failed", self.name)

    def _invoke_on_error(self, exc: BaseException) -> Any:
        handler = self.on_error
        assert handler is not None
        try:
            params = inspect.signature(handler).parameters.values()
        except (TypeError, ValueError):
            return handler(exc)
        takes_one = any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
                        for p in params)
        return handler(exc) if takes_one else handler()

    def registration(self) -> dict[str, Any]:
        """This definition as the server's TaskDefinitionIn (for POST /v1/workers/register).

        ``defaults`` holds the send options in TaskIn field names (so a server-side sender,
        such as a cron scheduler, can merge them into a TaskIn body), plus the informational
        keys ``cron``, ``concurrency_limit`` and ``retry_backoff_function``.
        """
        defaults: dict[str, Any] = {"priority": self.priority, "max_retries": self.max_retries}
        for key in ("timeout_seconds", "retry_backoff", "retry_delay_seconds",
                    "retry_max_delay_seconds", "cron"):
            if getattr(self, key) is not None:
                defaults[key] = getattr(self, key)
        if self.retry_backoff_fn is not None:
            defaults["retry_backoff_function"] = True
        if self.queue.concurrency_limit is not None:
            defaults["concurrency_limit"] = self.queue.concurrency_limit
        return {"name": self.name, "queue": self.queue.name, "defaults": defaults,
                "args_schema": self.spec.json_schema()}


async def _await(awaitable: Any) -> Any:
    return await awaitable

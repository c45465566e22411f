"""Task definitions: what ``@registry.task`` returns (``TaskDefinition``) and its configured
copies (``ConfiguredTask``).

A definition is the function, its name, queue and options, and the request it builds for a
send. The other jobs live beside it: sending in ``_sender`` (and ``_request``), the worker's
side in ``_runner``, the registration payload in ``_registration``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, timedelta
from typing import Any

from . import protocol
from ._args import ArgsSpec
from ._context import get_context
from ._exceptions import DefinitionError, InvalidArgs
from ._limits import ConcurrencyKey, concurrency_key, definitions, flow_body, rate_limit_uses
from ._options import (
    SEND_OPTIONS,
    Backoff,
    Queue,
    RetryBackoff,
    check_cron,
    check_event_keys,
    check_options,
)
from ._registration import task_registration
from ._request import TaskRequest
from ._runner import TaskRunner
from ._sender import Sender
from ._windows import Debounce, debounce_option, window_body

__all__ = ["SEND_OPTIONS", "ConfiguredTask", "Queue", "RetryBackoff", "TaskDefinition",
           "TaskRequest"]


class ConfiguredTask(Sender):
    """A task with send options applied, from ``task.with_config(...)``."""

    def __init__(self, definition: TaskDefinition, options: dict[str, Any]) -> None:
        self.definition = definition
        self.options = options

    def with_config(self, **options: Any) -> ConfiguredTask:
        return self.definition.with_config(**{**self.options, **options})

    def __repr__(self) -> str:
        return f"<ConfiguredTask {self.definition.name} {self.options}>"


class TaskDefinition(Sender, TaskRunner):
    """A function registered as a task. Calling it runs the function here, directly."""

    def __init__(self, fn: Callable[..., Any], *, registry: Any, name: str | None = None,
                 queue: str | Queue = protocol.DEFAULT_QUEUE,
                 priority: int = protocol.DEFAULT_PRIORITY, max_retries: int = 0,
                 timeout_seconds: float | None = None, retry_backoff: RetryBackoff = None,
                 retry_delay_seconds: float | None = None,
                 retry_max_delay_seconds: float | None = None,
                 on_error: Callable[..., Any] | None = None, cron: str | None = None,
                 stuck_after_seconds: float | None = None,
                 stuck_action: str | None = None,
                 on_events: list[str] | None = None, durable: bool = False,
                 concurrency: ConcurrencyKey | None = None,
                 rate_limits: Any = None, debounce: Debounce | None = None) -> None:
        self.fn = fn
        self.registry = registry  # the Registry that defined it
        if not callable(fn):
            raise DefinitionError(f"a task must be a function, not {type(fn).__name__}")
        self.name = name or getattr(fn, "__name__", "")
        if not protocol.is_task_name(self.name):
            hint = "" if self.name else "; give it one with name="
            raise DefinitionError(f"invalid task name {self.name!r}{hint}")
        self.queue = queue if isinstance(queue, Queue) else Queue(queue)
        check_options({"priority": priority, "max_retries": max_retries,
                       "timeout_seconds": timeout_seconds,
                       "stuck_after_seconds": stuck_after_seconds,
                       "stuck_action": stuck_action}, DefinitionError)
        self.priority = priority
        self.max_retries = max_retries
        self.timeout_seconds = timeout_seconds
        self.stuck_after_seconds = stuck_after_seconds
        self.stuck_action = stuck_action
        self.backoff = Backoff.parse(self.name, retry_backoff, retry_delay_seconds,
                                     retry_max_delay_seconds)
        self.retry_backoff_fn = self.backoff.function
        self.retry_backoff = self.backoff.kind
        self.retry_delay_seconds = self.backoff.delay_seconds
        self.retry_max_delay_seconds = self.backoff.max_delay_seconds
        if on_error is not None and not callable(on_error):
            raise DefinitionError(f"task {self.name!r}: on_error must be callable")
        self.on_error = on_error
        self.spec = ArgsSpec(fn, self.name)
        self.cron = cron
        if cron is not None:
            check_cron(cron, f"task {self.name!r}")
            if not self.spec.all_defaulted:
                raise DefinitionError(
                    f"task {self.name!r}: a cron task is sent without arguments, so every "
                    f"parameter needs a default (missing: {', '.join(self.spec.required)})")
        # Flow control (docs/flow-control.md): a concurrency key and the rate limits used.
        self.concurrency = concurrency_key(concurrency, f"task {self.name!r}")
        self.rate_limits = rate_limit_uses(rate_limits, f"task {self.name!r}")
        # Debounce (docs/flow-control.md): sends with one key fold into one task.
        self.debounce = debounce_option(debounce, f"task {self.name!r}")
        # Event keys that start this task, with the event's payload as its arguments.
        self.on_events = check_event_keys(on_events, f"task {self.name!r}")
        # A durable task's waits on its children suspend it instead of holding its process
        # (docs/durable.md, "Parents that wait"); it must then replay like any durable task.
        if not isinstance(durable, bool):
            raise DefinitionError(f"task {self.name!r}: durable must be True or False")
        self.durable = durable
        self.definition = self
        self.options: dict[str, Any] = {}
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<TaskDefinition {self.name} queue={self.queue.name}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def backoff_options(self) -> dict[str, Any]:
        """The server-side retry policy, in TaskIn field names (absent when not given)."""
        values = {"retry_backoff": self.retry_backoff,
                  "retry_delay_seconds": self.retry_delay_seconds,
                  "retry_max_delay_seconds": self.retry_max_delay_seconds}
        return {k: v for k, v in values.items() if v is not None}

    def stuck_options(self) -> dict[str, Any]:
        """The definition's stuck settings, in TaskIn field names (absent when not given)."""
        values = {"stuck_after_seconds": self.stuck_after_seconds,
                  "stuck_action": self.stuck_action}
        return {k: v for k, v in values.items() if v is not None}

    def registration(self) -> dict[str, Any]:
        """This definition as the server's TaskDefinitionIn (for POST /v1/workers/register)."""
        return task_registration(self)

    # -- sending ------------------------------------------------------------------------
    def with_config(self, **options: Any) -> ConfiguredTask:
        """A copy that sends with other options: queue, priority, max_retries,
        timeout_seconds, stuck_after_seconds, stuck_action, idempotency_key, delay (seconds or timedelta) or run_at, spawn_key,
        parent_id. ``None`` leaves an option as it was, except ``parent_id=None`` (no parent).
        Checked here; a bad option raises ``InvalidArgs``. Send windows
        (docs/flow-control.md): ``debounce=Debounce(seconds, key=...)``, and
        ``unique_for=seconds`` or ``unique_while="active"`` beside an idempotency_key."""
        # None means "not given" (keep the definition's value), except parent_id=None: that
        # sends a detached task from inside a task (no parent, no default spawn key).
        options = {k: v for k, v in options.items() if v is not None or k == "parent_id"}
        unknown = set(options) - SEND_OPTIONS
        if unknown:
            raise InvalidArgs(self.name, f"unknown send options {sorted(unknown)}; "
                                         f"known: {sorted(SEND_OPTIONS)}")
        check_options(options, lambda m: InvalidArgs(self.name, m))
        try:
            if "concurrency" in options:
                concurrency_key(options["concurrency"], f"task {self.name!r}")
            if "debounce" in options:
                debounce_option(options["debounce"], f"task {self.name!r}")
            if "rate_limits" in options:
                options["rate_limits"] = rate_limit_uses(options["rate_limits"],
                                                         f"task {self.name!r}")
        except DefinitionError as exc:
            raise InvalidArgs(self.name, str(exc)) from exc
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
        body.update(self.stuck_options())
        body.update({k: options[k] for k in ("stuck_after_seconds", "stuck_action")
                     if options.get(k) is not None})
        body.update(self.backoff_options())
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
        uses = options.get("rate_limits", self.rate_limits)
        body.update(flow_body(options.get("concurrency", self.concurrency), uses))
        body.update(window_body(options.get("debounce", self.debounce), options))
        problem = protocol.send_window_problem(body)
        if problem is not None:
            raise InvalidArgs(self.name, problem)
        explicit = frozenset(k for k in ("parent_id",) if k in options)
        return TaskRequest(self, body, explicit, tuple(definitions(uses)))

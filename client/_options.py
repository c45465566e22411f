"""Send options and queues, checked where they are written (``protocol`` holds the limits)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from . import protocol
from ._exceptions import DefinitionError
from ._windows import check_unique

RetryBackoff = float | int | str | Callable[[int], float] | None

# Options accepted by with_config(); the first group also by @registry.task.
SEND_OPTIONS = frozenset({"queue", "priority", "max_retries", "timeout_seconds",
                          "stuck_after_seconds", "stuck_action",
                          "idempotency_key", "delay", "run_at", "spawn_key", "parent_id",
                          "concurrency", "rate_limits", "debounce", "unique_for",
                          "unique_while"})


@dataclass(frozen=True)
class Queue:
    """A queue name with an optional concurrency limit (most tasks running at once, cluster-wide).

    The limit is written to the server (PUT /v1/queues/{name}) by the first send of a task on
    this queue in a process, and by ``Registry.apply_queue_settings()`` which the worker calls
    when it registers.
    """

    name: str
    concurrency_limit: int | None = None
    # A rate limit every task of the queue consumes one unit of (docs/flow-control.md): a
    # ``RateLimit`` (written to the server like the concurrency limit) or a limit's name.
    rate_limit: Any = None
    # How long the server keeps the queue's finished tasks, by status, in seconds (0: forever;
    # None: the server's default), e.g. ``{"succeeded": 86400}``; written when a worker
    # registers (docs/operations.md, "Retention").
    retention: Mapping[str, float | None] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if not protocol.is_queue_name(self.name):
            raise DefinitionError(f"invalid queue name {self.name!r}")
        limit = self.concurrency_limit
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 0):
            raise DefinitionError(f"queue {self.name!r}: concurrency_limit must be an int >= 0")
        rate = self.rate_limit
        if rate is not None and not (isinstance(rate, str) or hasattr(rate, "period_seconds")):
            raise DefinitionError(f"queue {self.name!r}: rate_limit must be a RateLimit or the "
                                  "name of one")
        for status, seconds in (self.retention or {}).items():
            if status not in protocol.TERMINAL_STATUSES or not (
                    seconds is None or (is_seconds(seconds) and seconds >= 0)):
                raise DefinitionError(
                    f"queue {self.name!r}: retention maps succeeded, failed or cancelled to "
                    f"seconds >= 0 (or None), not {status!r}: {seconds!r}")


def _check(cond: bool, message: str, error: Callable[[str], Exception]) -> None:
    if not cond:
        raise error(message)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_seconds(value: Any) -> bool:
    return is_number(value) and 0 <= value <= protocol.MAX_SECONDS


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def check_options(options: Mapping[str, Any], error: Callable[[str], Exception]) -> None:
    """Validate send options early, so a bad one fails where it was written."""
    p = options.get("priority")
    if p is not None:
        _check(_is_int(p, protocol.MIN_PRIORITY, protocol.MAX_PRIORITY),
               f"priority must be an int from {protocol.MIN_PRIORITY} to "
               f"{protocol.MAX_PRIORITY}, not {p!r}", error)
    m = options.get("max_retries")
    if m is not None:
        _check(_is_int(m, 0, protocol.MAX_RETRIES),
               f"max_retries must be an int from 0 to {protocol.MAX_RETRIES}, not {m!r}", error)
    t = options.get("timeout_seconds")
    if t is not None:
        _check(is_seconds(t) and t > 0, f"timeout_seconds must be > 0, not {t!r}", error)
    s = options.get("stuck_after_seconds")
    if s is not None:
        _check(is_seconds(s) and s > 0, f"stuck_after_seconds must be > 0, not {s!r}", error)
    a = options.get("stuck_action")
    if a is not None:
        _check(a in protocol.STUCK_ACTIONS,
               f"stuck_action must be one of {list(protocol.STUCK_ACTIONS)}, not {a!r}", error)
    d = options.get("delay")
    if d is not None:
        seconds = d.total_seconds() if isinstance(d, timedelta) else d
        _check(is_seconds(seconds), f"delay must be seconds >= 0 or a timedelta, not {d!r}",
               error)
    r = options.get("run_at")
    if r is not None:
        _check(isinstance(r, datetime), f"run_at must be a datetime, not {r!r}", error)
        _check(d is None, "give delay or run_at, not both", error)
    for key in ("idempotency_key", "spawn_key"):
        k = options.get(key)
        if k is not None:
            _check(isinstance(k, str) and 0 < len(k) <= protocol.KEY_MAX and "\x00" not in k,
                   f"{key} must be a non-empty string of at most {protocol.KEY_MAX} "
                   "characters", error)
    check_unique(options, error)
    pid = options.get("parent_id")
    if pid is not None:
        _check(_is_int(pid, 1, protocol.MAX_TASK_ID), f"parent_id must be a task id, not {pid!r}",
               error)


@dataclass(frozen=True)
class Backoff:
    """A task's retry backoff: a server-side policy (kind, delay, cap) or a function that the
    worker calls after each failed attempt."""

    kind: str | None = None
    delay_seconds: float | None = None
    max_delay_seconds: float | None = None
    function: Callable[[int], float] | None = None

    @classmethod
    def parse(cls, task: str, backoff: RetryBackoff, delay: float | None,
              max_delay: float | None) -> Backoff:
        for label, value in (("retry_delay_seconds", delay),
                             ("retry_max_delay_seconds", max_delay)):
            if value is not None and not is_seconds(value):
                raise DefinitionError(f"task {task!r}: {label} must be seconds >= 0")
        if backoff is None:
            return cls(None, delay, max_delay)
        if callable(backoff):
            return cls(None, delay, max_delay, backoff)
        if isinstance(backoff, str):
            if backoff not in protocol.RETRY_BACKOFFS:
                raise DefinitionError(f"task {task!r}: retry_backoff must be a number, a "
                                      f"function or one of {protocol.RETRY_BACKOFFS}")
            return cls(backoff, delay, max_delay)
        if is_seconds(backoff):
            return cls("fixed", float(backoff), max_delay)
        raise DefinitionError(f"task {task!r}: invalid retry_backoff {backoff!r}")


def check_cron(cron: object, what: str) -> None:
    """``DefinitionError`` unless ``cron`` is a valid cron expression."""
    from croniter import croniter  # imported when a cron is declared: it is slow to import

    if not isinstance(cron, str) or not croniter.is_valid(cron):
        raise DefinitionError(f"{what}: invalid cron expression {cron!r}")


def check_event_keys(keys: object, what: str) -> list[str]:
    """The ``on_events`` of a task or workflow as a list; ``DefinitionError`` unless each is
    an event key (a non-empty string of at most ``KEY_MAX`` characters, without NUL)."""
    if keys is None:
        return []
    if isinstance(keys, str):
        keys = [keys]
    if not isinstance(keys, (list, tuple)):
        raise DefinitionError(f"{what}: on_events must be a list of event keys")
    out = list(dict.fromkeys(keys))
    for key in out:
        if not isinstance(key, str) or not key or len(key) > protocol.KEY_MAX or "\x00" in key:
            raise DefinitionError(f"{what}: invalid event key {key!r}")
    return out

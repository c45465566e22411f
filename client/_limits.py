"""Flow control in the Python API (docs/flow-control.md): named rate limits, their use by a
task, and concurrency keys. Checked where they are written, with ``protocol``'s rules."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from . import _calls as calls
from . import protocol
from ._exceptions import DefinitionError
from ._flow import Flow, Once

_LIMIT_NAME = re.compile(protocol.RATE_LIMIT_NAME_PATTERN)
_KEY_PATH = re.compile(protocol.KEY_PATH_PATTERN)


def _int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _check_key(key: Any, key_path: Any, what: str) -> None:
    if key is not None and key_path is not None:
        raise DefinitionError(f"{what}: give key or key_path, not both")
    if key is not None and not (isinstance(key, str) and 0 < len(key) <= protocol.KEY_MAX
                                and "\x00" not in key):
        raise DefinitionError(f"{what}: key must be a non-empty string of at most "
                              f"{protocol.KEY_MAX} characters")
    if key_path is not None and not (isinstance(key_path, str)
                                     and len(key_path) <= protocol.KEY_PATH_MAX
                                     and _KEY_PATH.match(key_path)):
        raise DefinitionError(f"{what}: key_path must be a dotted path into the args "
                              "(\"customer.id\")")


@dataclass(frozen=True)
class RateLimit:
    """A named limit: ``units`` per ``period_seconds``, spaced evenly, with ``burst`` more
    allowed at once. Written to the server (PUT /v1/rate-limits/{name}) by the first send
    that uses it in a process, and by the worker when it registers."""

    name: str
    units: int
    period_seconds: float
    burst: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.name, str) and len(self.name) <= protocol.RATE_LIMIT_NAME_MAX
                and _LIMIT_NAME.match(self.name)):
            raise DefinitionError(f"invalid rate limit name {self.name!r}")
        if not _int(self.units, 1, protocol.MAX_RATE_UNITS):
            raise DefinitionError(f"rate limit {self.name!r}: units must be an int >= 1")
        p = self.period_seconds
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 < p <= protocol.MAX_SECONDS:
            raise DefinitionError(f"rate limit {self.name!r}: period_seconds must be > 0")
        if not _int(self.burst, 0, protocol.MAX_RATE_UNITS):
            raise DefinitionError(f"rate limit {self.name!r}: burst must be an int >= 0")

    def use(self, *, key: str | None = None, key_path: str | None = None,
            units: int = 1) -> RateLimitUse:
        """This limit as a task consumes it: per key (given, or read from the args at
        ``key_path``) or for all, ``units`` per task."""
        return RateLimitUse(self, key=key, key_path=key_path, units=units)


@dataclass(frozen=True)
class RateLimitUse:
    """``units`` of a limit (a :class:`RateLimit`, or the name of one the server knows)."""

    limit: RateLimit | str
    key: str | None = None
    key_path: str | None = None
    units: int = 1

    def __post_init__(self) -> None:
        name = self.name
        if not (isinstance(name, str) and _LIMIT_NAME.match(name)):
            raise DefinitionError(f"invalid rate limit name {name!r}")
        _check_key(self.key, self.key_path, f"rate limit {name!r}")
        if not _int(self.units, 1, protocol.MAX_RATE_UNITS):
            raise DefinitionError(f"rate limit {name!r}: units must be an int >= 1")

    @property
    def name(self) -> str:
        return self.limit.name if isinstance(self.limit, RateLimit) else self.limit

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"limit": self.name, "units": self.units}
        if self.key is not None:
            out["key"] = self.key
        if self.key_path is not None:
            out["key_path"] = self.key_path
        return out


@dataclass(frozen=True)
class ConcurrencyKey:
    """At most ``limit`` tasks running per key value (None: no cap, fair turns only), the key
    given or read from the args at ``key_path``. ``strategy``: ``"fair"`` (round robin across
    keys), ``"cancel_in_progress"`` (a new send cancels the key's earlier tasks),
    ``"cancel_newest"`` (a send while the key has a task is dropped, folded into it)."""

    key: str | None = None
    key_path: str | None = None
    limit: int | None = None
    strategy: protocol.ConcurrencyStrategy = "fair"

    def __post_init__(self) -> None:
        if (self.key is None) == (self.key_path is None):
            raise DefinitionError("ConcurrencyKey: give key or key_path (one of them)")
        _check_key(self.key, self.key_path, "ConcurrencyKey")
        if self.limit is not None and not _int(self.limit, 1, 1_000_000):
            raise DefinitionError("ConcurrencyKey: limit must be an int >= 1")
        if self.strategy not in protocol.CONCURRENCY_STRATEGIES:
            raise DefinitionError(f"ConcurrencyKey: strategy must be one of "
                                  f"{list(protocol.CONCURRENCY_STRATEGIES)}")

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"concurrency_strategy": self.strategy}
        if self.key is not None:
            out["concurrency_key"] = self.key
        if self.key_path is not None:
            out["concurrency_key_path"] = self.key_path
        if self.limit is not None:
            out["concurrency_limit"] = self.limit
        return out


def rate_limit_uses(value: Any, what: str) -> tuple[RateLimitUse, ...]:
    """A task's ``rate_limits`` option as uses: a :class:`RateLimit`, a use, or a name, or
    a list of them."""
    if value is None:
        return ()
    items = value if isinstance(value, list | tuple) else [value]
    out = []
    for item in items:
        if isinstance(item, RateLimitUse):
            out.append(item)
        elif isinstance(item, RateLimit | str):
            out.append(RateLimitUse(item))
        else:
            raise DefinitionError(f"{what}: rate_limits takes RateLimit, RateLimit.use(...) "
                                  f"or limit names, not {item!r}")
    if len(out) > protocol.MAX_RATE_LIMITS_PER_TASK:
        raise DefinitionError(f"{what}: at most {protocol.MAX_RATE_LIMITS_PER_TASK} rate limits")
    return tuple(out)


def concurrency_key(value: Any, what: str) -> ConcurrencyKey | None:
    if value is None or isinstance(value, ConcurrencyKey):
        return value
    raise DefinitionError(f"{what}: concurrency takes a ConcurrencyKey, not {value!r}")


def flow_body(concurrency: ConcurrencyKey | None,
              uses: Sequence[RateLimitUse]) -> dict[str, Any]:
    """The send body's flow-control fields."""
    out = concurrency.body() if concurrency is not None else {}
    if uses:
        out["rate_limits"] = [u.body() for u in uses]
    return out


def definitions(uses: Iterable[RateLimitUse]) -> list[RateLimit]:
    """The limits among ``uses`` defined in code (names alone are the server's to know)."""
    return list({u.limit.name: u.limit for u in uses if isinstance(u.limit, RateLimit)}.values())


def write_limits(limits: Iterable[RateLimit]) -> Flow[None]:
    """Write limits defined in code to the server, once per client and definition."""
    for lim in limits:
        yield Once(("rate_limit", lim), lambda lim=lim: calls.put_rate_limit(
            lim.name, units=lim.units, period_seconds=lim.period_seconds, burst=lim.burst))


def queue_rate_limit(queue: Any) -> Flow[None]:
    """Write a queue's rate limit (``Queue(rate_limit=...)``) to the server, once per client."""
    lim = queue.rate_limit
    if lim is None:
        return
    if isinstance(lim, RateLimit):
        yield from write_limits([lim])
    name = lim.name if isinstance(lim, RateLimit) else lim
    yield Once(("queue_rate_limit", queue.name, name),
               lambda: calls.set_queue_rate_limit(queue.name, name))

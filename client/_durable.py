"""Durable tasks: steps, sleeps and waits that survive the attempt (docs/durable.md).

The replay model: a durable task runs again from the top whenever it resumes (after a sleep
or a wait) or is retried. Each durable call has a name, keyed by its order of use in the run
(the first ``"fetch"`` is ``fetch``, the second ``fetch#2``...). A call whose name is already
stored returns the stored result at once; otherwise a step runs its function and stores the
result (under the attempt's lease: a stale attempt stores nothing), and a sleep or a wait
raises :class:`Suspend`, which ends the attempt: the worker reports it ``suspended`` with
what it waits for, and frees its slot. The server queues the task again when the wait
resolves, and the re-run gets that far at once.

``TaskContext`` carries these methods (``Durable`` is its base); this module imports no
client (it takes the default one of the task's process when first needed).
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from ._exceptions import InvalidValue, ResultNotSerializable, StepMismatch, WaitTimedOut
from .protocol import KEY_MAX, MAX_LOOKBACK_SECONDS, MAX_SECONDS, STEP_NAME_MAX

if TYPE_CHECKING:
    from ._origin import Origin

__all__ = ["Durable", "Suspend", "adurable_wait", "durable_wait", "function_name"]


class Suspend(BaseException):  # noqa: N818 (control flow, like StopIteration)
    """Raised by a durable sleep or wait that has to wait: the attempt ends here and the
    worker reports it ``suspended`` with ``wait`` (the protocol's ``wait`` object, plus
    ``reached_at``, the ``time.monotonic()`` of the call). A ``BaseException``, so that an
    ``except Exception`` in the task does not swallow it; do not catch it yourself."""

    def __init__(self, wait: dict[str, Any]) -> None:
        super().__init__(f"suspended: waits for {wait.get('kind')} {wait.get('key') or ''}")
        self.wait = {**wait, "reached_at": time.monotonic()}


def function_name(fn: Callable[..., Any]) -> str:
    """What identifies a step's function across runs: ``module.qualname``."""
    target = getattr(fn, "func", fn)  # functools.partial
    target = getattr(target, "__func__", target)  # bound methods
    qualname = getattr(target, "__qualname__", None) or type(target).__qualname__
    module = getattr(target, "__module__", None) or type(target).__module__
    return f"{module}.{qualname}"


def _json(name: str, value: Any) -> Any:
    """``value`` as a re-run will see it (through JSON), so both runs see the same."""
    try:
        return orjson.loads(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise ResultNotSerializable(f"step {name!r} returned a value that cannot be stored "
                                    f"as JSON: {exc}") from exc


@dataclass
class Replay:
    """One attempt's view of the task's stored steps, and the names used so far."""

    stored: dict[str, dict[str, Any]] | None = None
    uses: dict[str, int] = field(default_factory=dict)  # base name -> uses in this run
    functions: dict[str, str] = field(default_factory=dict)  # base name -> function
    lock: threading.Lock = field(default_factory=threading.Lock)

    def key(self, base: str, fn: str | None = None) -> str:
        """The stored name of the next use of ``base``; a step name reused with another
        function in this run raises ``StepMismatch``."""
        if not isinstance(base, str) or not base or "\x00" in base:
            raise InvalidValue(f"a step name is a non-empty string, not {base!r}")
        with self.lock:
            if fn is not None:
                known = self.functions.setdefault(base, fn)
                if known != fn:
                    raise StepMismatch(f"step name {base!r} is used with {known} and with "
                                       f"{fn} in one task: give each function its own name")
            n = self.uses.get(base, 0) + 1
            self.uses[base] = n
        key = base if n == 1 else f"{base}#{n}"
        if len(key) > STEP_NAME_MAX:
            raise InvalidValue(f"step name {key[:50]!r}... is over {STEP_NAME_MAX} characters")
        return key

    def load(self, steps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        with self.lock:
            if self.stored is None:
                self.stored = {s["name"]: s for s in steps}
            return self.stored


def _check_stored(key: str, hit: dict[str, Any], kind: str, fn: str | None) -> None:
    if hit["kind"] != kind or (kind == "step" and hit.get("fn") != fn):
        recorded = hit.get("fn") if hit["kind"] == "step" else f"a {hit['kind']}"
        mine = fn if kind == "step" else f"a {kind}"
        raise StepMismatch(f"step {key!r} was recorded by {recorded} and is now used by "
                           f"{mine}: the task's code changed or is not deterministic")


def _wait_result(key: str, hit: dict[str, Any], wait: dict[str, Any]) -> Any:
    """What a resolved wait returns: its value, or ``WaitTimedOut``."""
    result = hit.get("result") or {}
    if hit["kind"] == "sleep":
        return None
    if result.get("timed_out"):
        raise WaitTimedOut(wait["kind"], wait.get("key"), key, wait.get("timeout_seconds"))
    return result.get("value")


def _seconds(value: float | None, what: str, top: float = MAX_SECONDS) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= top:
        raise InvalidValue(f"{what} is a number of seconds from 0 to {top}, not {value!r}")
    return float(value)


def _key_text(key: str, what: str) -> str:
    if not isinstance(key, str) or not key or "\x00" in key or len(key) > KEY_MAX:
        raise InvalidValue(f"{what} is a non-empty string of at most {KEY_MAX} characters")
    return key


def _until(when: datetime) -> str:
    if not isinstance(when, datetime):
        raise InvalidValue(f"sleep_until takes a datetime, not {type(when).__name__}")
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()


class Durable:
    """The durable methods of ``TaskContext`` (which provides ``task_id``, ``lease_token``
    and ``progress``). Sync methods for sync tasks, ``a``-prefixed ones for async tasks."""

    task_id: int
    lease_token: str | None
    _replay: Replay | None
    progress: Callable[..., None]  # TaskContext's (every durable call is progress)

    def _state(self) -> Replay:
        if self._replay is None:
            self._replay = Replay()
        return self._replay

    @staticmethod
    def _origin() -> Origin:
        from ._origin import Origin  # noqa: PLC0415 (the client imports this module's user)
        return Origin()

    def _stored(self) -> dict[str, dict[str, Any]]:
        state = self._state()
        if state.stored is not None:
            return state.stored
        return state.load(self._origin().sync().task_steps(self.task_id))

    async def _astored(self) -> dict[str, dict[str, Any]]:
        state = self._state()
        if state.stored is not None:
            return state.stored
        return state.load(await self._origin().async_().task_steps(self.task_id))

    def _remember(self, key: str, kind: str, fn: str | None, result: Any) -> None:
        stored = self._state().stored
        if stored is not None:
            stored[key] = {"name": key, "kind": kind, "fn": fn, "result": result}

    # -- steps ---------------------------------------------------------------------------
    def step(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` once per task: the result is stored (JSON) and a re-run
        of the task returns it without calling ``fn``. The value returned is the stored one,
        through JSON (a tuple comes back a list), the same on the first run and on replay."""
        self.progress()
        fid = function_name(fn)
        key = self._state().key(name, fid)
        hit = self._stored().get(key)
        if hit is not None:
            _check_stored(key, hit, "step", fid)
            return hit["result"]
        started = time.monotonic()
        value = _json(key, fn(*args, **kwargs))
        out = self._origin().sync().record_step(self.task_id, self._token(), key, fid, value,
                                                time.monotonic() - started)
        self._remember(key, "step", fid, out["result"])
        return out["result"]

    async def astep(self, name: str, fn: Callable[..., Any], *args: Any,
                    **kwargs: Any) -> Any:
        """``step`` for async tasks; ``fn`` may be a coroutine function or a plain one."""
        self.progress()
        fid = function_name(fn)
        key = self._state().key(name, fid)
        hit = (await self._astored()).get(key)
        if hit is not None:
            _check_stored(key, hit, "step", fid)
            return hit["result"]
        started = time.monotonic()
        value = fn(*args, **kwargs)
        if inspect.isawaitable(value):
            value = await value
        value = _json(key, value)
        out = await self._origin().async_().record_step(self.task_id, self._token(), key, fid,
                                                        value, time.monotonic() - started)
        self._remember(key, "step", fid, out["result"])
        return out["result"]

    def _token(self) -> str:
        if not self.lease_token:
            raise InvalidValue("durable steps need a running attempt (a lease token)")
        return self.lease_token

    # -- sleeps --------------------------------------------------------------------------
    def sleep_for(self, seconds: float, *, name: str = "sleep") -> None:
        """Sleep without holding a worker: the attempt ends, and the task runs again (from
        the top, replaying) ``seconds`` after it reached this line."""
        durable_wait(self, "sleep", name, seconds=_seconds(seconds, "sleep_for"))

    def sleep_until(self, when: datetime, *, name: str = "sleep") -> None:
        """Sleep until ``when`` (a naive datetime is UTC) without holding a worker."""
        durable_wait(self, "sleep", name, until=_until(when))

    async def asleep_for(self, seconds: float, *, name: str = "sleep") -> None:
        await adurable_wait(self, "sleep", name, seconds=_seconds(seconds, "sleep_for"))

    async def asleep_until(self, when: datetime, *, name: str = "sleep") -> None:
        await adurable_wait(self, "sleep", name, until=_until(when))

    # -- events and signals ----------------------------------------------------------------
    def wait_for_event(self, key: str, *, timeout: float | None = None,
                       lookback: float = 0.0) -> Any:
        """Wait, holding no worker, for an event posted on ``key`` (``POST /v1/events``,
        ``send_event``) after this call, or at most ``lookback`` seconds before it; returns
        its payload. Past ``timeout`` seconds, raises ``WaitTimedOut``."""
        return durable_wait(self, "event", f"event:{_key_text(key, 'an event key')}",
                            key=key, timeout=timeout,
                            lookback=_seconds(lookback, "lookback", MAX_LOOKBACK_SECONDS))

    async def await_for_event(self, key: str, *, timeout: float | None = None,  # noqa: ASYNC109
                              lookback: float = 0.0) -> Any:
        """``wait_for_event`` for async tasks."""
        return await adurable_wait(self, "event", f"event:{_key_text(key, 'an event key')}",
                                   key=key, timeout=timeout,
                                   lookback=_seconds(lookback, "lookback", MAX_LOOKBACK_SECONDS))

    def wait_for_signal(self, name: str, *, timeout: float | None = None) -> Any:
        """Wait, holding no worker, for signal ``name`` sent to this task
        (``POST /v1/tasks/{id}/signal``); returns its payload. Past ``timeout`` seconds,
        raises ``WaitTimedOut``. A signal sent while the task is not waiting is refused."""
        return durable_wait(self, "signal", f"signal:{_key_text(name, 'a signal name')}",
                            key=name, timeout=timeout)

    async def await_for_signal(self, name: str, *,
                               timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """``wait_for_signal`` for async tasks."""
        return await adurable_wait(self, "signal", f"signal:{_key_text(name, 'a signal name')}",
                                   key=name, timeout=timeout)


def _wait_body(kind: str, key: str | None, timeout: float | None, lookback: float | None,
               detail: Any, seconds: float | None, until: str | None) -> dict[str, Any]:
    wait: dict[str, Any] = {"kind": kind}
    for name, value in (("key", key), ("seconds", seconds), ("until", until),
                        ("timeout_seconds", _seconds(timeout, "timeout")),
                        ("lookback_seconds", lookback), ("detail", detail)):
        if value is not None:
            wait[name] = value
    return wait


def durable_wait(ctx: Durable, kind: str, name: str, *, key: str | None = None,
                 timeout: float | None = None, lookback: float | None = None,
                 detail: Any = None, seconds: float | None = None,
                 until: str | None = None) -> Any:
    """The one durable wait (sleeps, events, signals, approvals, children): the stored value
    when this wait is already resolved, ``WaitTimedOut`` when it timed out, else ``Suspend``
    (the attempt ends; the server resumes the task when the wait resolves)."""
    ctx.progress()
    wait = _wait_body(kind, key, timeout, lookback, detail, seconds, until)
    step = ctx._state().key(name)
    hit = ctx._stored().get(step)
    if hit is not None:
        _check_stored(step, hit, kind, None)
        return _wait_result(step, hit, wait)
    raise Suspend({**wait, "step": step})


async def adurable_wait(ctx: Durable, kind: str, name: str, *, key: str | None = None,
                        timeout: float | None = None,  # noqa: ASYNC109
                        lookback: float | None = None, detail: Any = None,
                        seconds: float | None = None, until: str | None = None) -> Any:
    """``durable_wait`` for async tasks (the stored steps are read with the async client)."""
    ctx.progress()
    wait = _wait_body(kind, key, timeout, lookback, detail, seconds, until)
    step = ctx._state().key(name)
    hit = (await ctx._astored()).get(step)
    if hit is not None:
        _check_stored(step, hit, kind, None)
        return _wait_result(step, hit, wait)
    raise Suspend({**wait, "step": step})

"""The worker's side of a task definition: turn stored JSON into a call, a return value into
storable JSON, a failure into a retry delay and an ``on_error`` call.

A mixin of ``TaskDefinition``; ``branchwork.worker_api.RunnableTask`` is the contract the
worker relies on.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections.abc import Callable
from typing import Any

import pydantic_core
from pydantic import BaseModel

from . import protocol
from ._args import ArgsSpec
from ._exceptions import ResultNotSerializable
from ._jsoncheck import json_problem, lossy_problem
from ._options import Backoff

log = logging.getLogger("branchwork.client")


class TaskRunner:
    name: str
    fn: Callable[..., Any]
    spec: ArgsSpec
    backoff: Backoff
    on_error: Callable[..., Any] | None

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    def load_args(self, json_args: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Stored JSON args → ``(args, kwargs)`` to call ``fn`` with; ``InvalidArgs`` if they
        do not match the signature (e.g. sent by curl with a typo)."""
        return self.spec.from_json(json_args)

    def dump_result(self, value: Any) -> Any:
        """A return value as JSON-able data (pydantic models dumped); ``ResultNotSerializable``
        otherwise, so the worker can fail the attempt with a clear message."""
        try:
            if isinstance(value, BaseModel):
                # Looked at before the JSON dump, which turns NaN into null and int keys
                # into strings without a word.
                problem: str | None = lossy_problem(value.model_dump(), "result")
                data = value.model_dump(mode="json")
            else:
                problem = lossy_problem(value, "result")
                data = pydantic_core.to_jsonable_python(value)
        except (pydantic_core.PydanticSerializationError, TypeError, ValueError) as exc:
            problem = str(exc)
        else:
            problem = problem or json_problem(data, "result")
            if problem is None:
                return data
        raise ResultNotSerializable(f"task {self.name!r} returned a {type(value).__name__}, "
                                    f"which is not storable JSON: {problem}")

    def retry_delay(self, attempt: int) -> float | None:
        """Seconds before the next attempt after failed attempt ``attempt`` (1-based), when a
        backoff function was given; None means: let the server apply the stored policy."""
        if self.backoff.function is None:
            return None
        try:
            value = float(self.backoff.function(attempt))
        except Exception:
            log.exception("retry_backoff of task %s raised; using the server's policy", self.name)
            return None
        if not math.isfinite(value):
            return protocol.MAX_SECONDS if value > 0 else 0.0
        return min(max(value, 0.0), protocol.MAX_SECONDS)

    def call_on_error(self, exc: BaseException) -> None:
        """Call the ``on_error`` handler with the attempt's exception (or with nothing, if it
        takes no argument). Errors of the handler are logged, never raised: an alert that
        fails must not change the task's outcome."""
        if self.on_error is None:
            return
        try:
            out = self._invoke_on_error(exc)
            if inspect.isawaitable(out):
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


async def _await(awaitable: Any) -> Any:
    return await awaitable

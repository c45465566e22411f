"""One attempt of one task, turned into the outcome a report carries.

The same rules apply wherever the task runs (event loop, thread, child process): the task's
context and output buffer are set around the call, ``on_error`` runs once per failed attempt
(inside the context, so its output lands in the attempt's logs), the retry delay comes from the
definition's backoff, and an attempt that was asked to stop ends as ``cancelled``.
"""

from __future__ import annotations

import asyncio
import inspect
import traceback
from typing import Any

from branchwork.worker_api import (
    RunnableTask,
    Suspend,
    TaskContext,
    reset_context,
    set_context,
)

from .capture import OutputBuffer, current_output

MAX_MESSAGE = 100_000
MAX_TRACEBACK = 1_000_000


def is_async(definition: Any) -> bool:
    flag = getattr(definition, "is_async", None)
    if isinstance(flag, bool):
        return flag
    return inspect.iscoroutinefunction(definition.fn)


def error_info(exc: BaseException, with_traceback: bool = True) -> dict[str, Any]:
    tb = "".join(traceback.format_exception(exc)) if with_traceback else None
    return {"type": type(exc).__name__, "message": str(exc)[:MAX_MESSAGE],
            "traceback": tb[-MAX_TRACEBACK:] if tb else None}


def failed(definition: RunnableTask, ctx: TaskContext, exc: BaseException) -> dict[str, Any]:
    """The outcome of a failed attempt, with the retry delay of the definition's backoff.
    The caller has called on_error already (sync or async, depending on where it runs)."""
    out: dict[str, Any] = {"outcome": "failed", "error": error_info(exc)}
    delay = definition.retry_delay(ctx.attempt_number)
    if delay is not None:
        out["retry_delay_seconds"] = max(0.0, float(delay))
    return out


def suspended(suspend: Suspend) -> dict[str, Any]:
    """The attempt ends waiting: the worker frees the slot and reports what it waits for
    (``wait``; ``reached_at`` becomes ``waited_seconds`` as the report leaves)."""
    return {"outcome": "suspended", "wait": suspend.wait}


def cancelled(ctx: TaskContext) -> dict[str, Any]:
    return {"outcome": "cancelled",
            "error": {"type": "Cancelled", "message": f"task {ctx.task_id} was cancelled "
                      "on request", "traceback": None}}


def _succeeded(definition: RunnableTask, value: Any) -> dict[str, Any]:
    return {"outcome": "succeeded", "result": definition.dump_result(value)}


def run_sync(definition: RunnableTask, ctx: TaskContext, raw_args: Any,
             buffer: OutputBuffer) -> dict[str, Any]:
    """Run a sync task here, in this thread; never raises for the task's own errors."""
    ctx.durable = bool(getattr(definition, "durable", False))  # waits on children suspend
    ctx_token = set_context(ctx)
    out_token = current_output.set(buffer)
    try:
        try:
            args, kwargs = definition.load_args(raw_args)
            outcome = _succeeded(definition, definition.fn(*args, **kwargs))
        except Suspend as suspend:  # a durable sleep or wait (docs/durable.md)
            outcome = suspended(suspend)
        except Exception as exc:
            if ctx.cancel_requested.is_set():
                outcome = cancelled(ctx)
            else:
                definition.call_on_error(exc)
                outcome = failed(definition, ctx, exc)
        if ctx.cancel_requested.is_set():
            outcome = cancelled(ctx)
    finally:
        ctx.close_stream()  # every chunk stored before the report ends the task's stream
        current_output.reset(out_token)
        reset_context(ctx_token)
    outcome["logs"] = buffer.getvalue()
    return outcome


async def run_async(definition: RunnableTask, ctx: TaskContext, raw_args: Any,
                    buffer: OutputBuffer, deadline: float | None) -> dict[str, Any]:
    """Run an async task on this loop. Cancelling the asyncio task that awaits this is how
    cancellation and shutdown reach the task; the caller decides what the cancellation means."""
    ctx.durable = bool(getattr(definition, "durable", False))  # waits on children suspend
    set_context(ctx)  # this coroutine runs in its own asyncio task, so its own context copy
    current_output.set(buffer)
    limit = asyncio.timeout_at(deadline) if deadline is not None else None
    try:
        args, kwargs = definition.load_args(raw_args)
        if limit is None:  # no timeout: no timer to arm and cancel
            value = await definition.fn(*args, **kwargs)
        else:
            async with limit:
                value = await definition.fn(*args, **kwargs)
        outcome = _succeeded(definition, value)
    except Suspend as suspend:  # a durable sleep or wait (docs/durable.md)
        outcome = suspended(suspend)
    except Exception as exc:
        if ctx.cancel_requested.is_set():
            outcome = cancelled(ctx)
        else:
            if isinstance(exc, TimeoutError) and limit is not None and limit.expired():
                exc = timeout_error(ctx)
            await definition.acall_on_error(exc)
            outcome = failed(definition, ctx, exc)
    if ctx.cancel_requested.is_set():
        outcome = cancelled(ctx)
    if ctx.streaming:  # every chunk stored before the report ends the stream
        await asyncio.to_thread(ctx.close_stream)
    outcome["logs"] = buffer.getvalue()
    return outcome


def timeout_error(ctx: TaskContext) -> TimeoutError:
    """Named like the error the server records when it times an attempt out itself."""
    return TimeoutError(f"task {ctx.task_id} ran past its timeout of {ctx.timeout_seconds} s")

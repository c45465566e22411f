"""Tasks the worker tests run in real worker processes (``run-worker workers_app:reg``).

Tasks leave traces in files under ``$BW_TEST_DIR`` so a test can see what ran where,
independently of what the worker reports.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from branchwork import KV, Queue, Registry, get_context

reg = Registry()
log = logging.getLogger("workers_app")


def trace(name: str, line: str) -> None:
    """Append one line to a trace file; O_APPEND keeps concurrent writers' lines whole."""
    path = Path(os.environ["BW_TEST_DIR"]) / name
    with open(path, "a") as f:
        f.write(line + "\n")


def lines(directory: Path, name: str) -> list[str]:
    path = directory / name
    return path.read_text().splitlines() if path.exists() else []


def hog_gil(seconds: float) -> int:
    """One C call that holds the GIL for about ``seconds`` (sum over a range never yields)."""
    start = time.perf_counter()
    sum(range(3_000_000))
    rate = 3_000_000 / max(time.perf_counter() - start, 1e-6)
    return sum(range(int(rate * seconds)))


# -- a sync and an async task, results back to the sender -----------------------------------
@reg.task(queue="math")
def add(a: int, b: int) -> int:
    return a + b


@reg.task(queue="math")
async def multiply(a: int, b: int) -> dict[str, int]:
    await asyncio.sleep(0.01)
    return {"product": a * b}


# -- retries, backoff and on_error -----------------------------------------------------------
def _count_error(exc: BaseException) -> None:
    ctx = get_context()
    assert ctx is not None
    KV.increment(f"errors:{ctx.task_id}")
    trace(f"errors-{ctx.task_id}", f"{ctx.attempt_number} {type(exc).__name__}")


@reg.task(max_retries=2, retry_backoff=lambda attempt: 1.0 * attempt, on_error=_count_error)
def flaky(succeed_on: int) -> str:
    ctx = get_context()
    assert ctx is not None
    if ctx.attempt_number < succeed_on:
        raise ValueError(f"attempt {ctx.attempt_number} fails")
    return f"ok on attempt {ctx.attempt_number}"


@reg.task(max_retries=1, retry_backoff=lambda attempt: 0.2, on_error=_count_error)
async def async_always_fails() -> None:
    raise RuntimeError("always")


# -- ordering ---------------------------------------------------------------------------------
@reg.task(queue="ordered")
def record(label: str) -> str:
    trace("order", label)
    return label


# -- timeouts, kills, releases ----------------------------------------------------------------
@reg.task(timeout_seconds=1.5, max_retries=1, retry_backoff=lambda attempt: 0.1,
          on_error=_count_error)
def stuck(seconds: float) -> str:
    trace("stuck", "started")
    print("stuck: going to sleep")
    time.sleep(seconds)
    return "finished"


@reg.task(timeout_seconds=1.0)
async def async_stuck(seconds: float) -> str:
    trace("async_stuck", "started")
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        trace("async_stuck", "cancelled")
        raise
    return "finished"


@reg.task
def slow(seconds: float, marker: str) -> str:
    """Marks its start and end, so a test can see an attempt that never finished."""
    trace(marker, f"start {get_context().attempt_number}")  # type: ignore[union-attr]
    time.sleep(seconds)
    trace(marker, f"end {get_context().attempt_number}")  # type: ignore[union-attr]
    return "slept"


@reg.task
def wait_for_file(name: str) -> str:
    trace(f"{name}.started", str(os.getpid()))
    path = Path(os.environ["BW_TEST_DIR"]) / name
    while not path.exists():
        time.sleep(0.05)
    return "file seen"


# -- holding the GIL longer than a lease ------------------------------------------------------
@reg.task
async def async_gil_hog(seconds: float) -> str:
    hog_gil(seconds)  # blocks the worker's event loop and holds its GIL
    return "survived"


@reg.task
def gil_hog(seconds: float) -> str:
    hog_gil(seconds)
    return "survived"


# -- cancellation -----------------------------------------------------------------------------
@reg.task
async def async_forever() -> None:
    trace("async_forever", "started")
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        trace("async_forever", "cancelled")
        raise


@reg.task
def cooperative(limit: float) -> str:
    ctx = get_context()
    assert ctx is not None
    trace("cooperative", "started")
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if ctx.cancel_requested.is_set():
            trace("cooperative", "saw cancel")
            return "stopped early"
        time.sleep(0.05)
    return "ran to the end"


@reg.task
def stubborn() -> None:
    trace("stubborn", "started")
    print("stubborn: not stopping")
    time.sleep(3600)  # ignores cancellation: must be killed


# -- contexts, trees and output --------------------------------------------------------------
@reg.task(queue="ctx")
async def whoami(delay: float) -> dict[str, Any]:
    before = get_context()
    await asyncio.sleep(delay)
    after = get_context()
    assert before is not None and after is not None
    return {"before": before.task_id, "after": after.task_id,
            "attempt": after.attempt_number, "worker": after.worker_id,
            "ctx": {"task_name": after.task_name, "queue": after.queue,
                    "priority": after.priority, "max_retries": after.max_retries,
                    "timeout_seconds": after.timeout_seconds, "parent_id": after.parent_id,
                    "root_id": after.root_id}}


@reg.task(queue="tree")
def leaf(n: int) -> int:
    ctx = get_context()
    assert ctx is not None
    return n * 10


@reg.task(queue="tree")
async def branch(n: int) -> list[int]:
    runs = [await leaf.asend(i) for i in range(n)]
    return [r.id for r in runs]


@reg.task(queue="tree")
def root(n: int) -> list[int]:
    return [branch.send(n).id for _ in range(2)]


@reg.task
def noisy(n: int) -> str:
    print(f"hello from the task, n={n}")
    log.warning("a warning from the task")
    print("x" * 200_000)  # more than the log limit: the tail is kept
    print("last line")
    return "done"


@reg.task
async def async_noisy() -> str:
    print("async says hi")
    log.info("async info line")
    return "done"


@reg.task(queue="math")
async def big_result(n: int) -> str:
    return "x" * n


# -- results the server cannot store --------------------------------------------------------
@reg.task(queue="math")
def unstorable() -> object:
    return object()


@reg.task(queue="math")
async def async_unstorable() -> float:
    return float("nan")


@reg.task(queue="math", max_retries=0)
def prints_nul() -> int:
    print("before\x00after")
    return 1


@reg.task(queue="math", max_retries=0)
async def async_fails_with_nul() -> None:
    print("a NUL\x00 in the output")
    raise ValueError("a NUL\x00 in the message")


# -- the README's example ---------------------------------------------------------------------
class EmailArgs(BaseModel):
    to: str
    subject: str


@reg.task(queue=Queue("email", concurrency_limit=10), max_retries=3, timeout_seconds=30,
          retry_backoff=lambda attempt: 0.2 * attempt)
def send_email(args: EmailArgs) -> dict:
    ctx = get_context()
    assert ctx is not None
    KV.increment("emails-sent")
    if args.subject == "flaky" and ctx.attempt_number == 1:
        raise ConnectionError("smtp went away")
    return {"sent": True, "to": args.to, "attempt": ctx.attempt_number}


@reg.task(queue="race")
async def traced_by_worker(i: int) -> int:
    """Traces "+ pid i" / "- pid i": which worker ran what, and how many at once."""
    trace("race", f"+ {os.getpid()} {i}")
    await asyncio.sleep(0.02)
    trace("race", f"- {os.getpid()} {i}")
    return i


@reg.task(queue="limits")
async def overlap(i: int) -> int:
    trace("overlap", f"+ {i}")
    await asyncio.sleep(0.3)
    trace("overlap", f"- {i}")
    return i

"""Durable tasks the durable tests run in real worker processes (``durable_app:reg``).

Steps leave one line per execution in files under ``$BW_TEST_DIR``, so a test counts what
really ran, whatever the worker or the server report.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from branchwork import Registry, WaitTimedOut, get_context

reg = Registry()


def trace(name: str, line: str) -> None:
    """Append one line to a trace file (O_APPEND keeps concurrent writers' lines whole)."""
    with open(Path(os.environ["BW_TEST_DIR"]) / name, "a") as f:
        f.write(line + "\n")


def lines(directory: Path, name: str) -> list[str]:
    path = directory / name
    return path.read_text().splitlines() if path.exists() else []


def ctx_of() -> Any:
    ctx = get_context()
    assert ctx is not None
    return ctx


# -- steps ------------------------------------------------------------------------------------


def fetch(marker: str, part: str) -> dict[str, str]:
    trace(marker, f"{part} ran")
    return {"part": part}


def slow_third(marker: str) -> str:
    """Blocks on its first execution (until the test kills the worker), not on later ones."""
    first = not (Path(os.environ["BW_TEST_DIR"]) / f"{marker}.third").exists()
    trace(f"{marker}.third", "started")
    trace(marker, "c ran")
    if first:
        time.sleep(120)
    return "c done"


@reg.task(queue="durable")
def three_steps(marker: str) -> list[Any]:
    ctx = ctx_of()
    a = ctx.step("a", fetch, marker, "a")
    b = ctx.step("b", fetch, marker, "b")
    c = ctx.step("c", slow_third, marker)
    return [a, b, c]


def other(marker: str, part: str) -> dict[str, str]:
    trace(marker, f"{part} other ran")
    return {"other": part}


@reg.task(queue="durable")
def reuses_a_name(marker: str) -> Any:
    """The same step name with two functions: the task fails with StepMismatch."""
    ctx = ctx_of()
    ctx.step("load", fetch, marker, "one")
    return ctx.step("load", other, marker, "two")


@reg.task(queue="durable")
def loop_of_steps(marker: str, n: int) -> list[Any]:
    """One name used n times in a loop: each use is its own step (load, load#2...)."""
    ctx = ctx_of()
    out = [ctx.step("load", fetch, marker, str(i)) for i in range(n)]
    ctx.sleep_for(0.2)
    return out


# -- sleeps -----------------------------------------------------------------------------------


@reg.task(queue="sleepy")
def sleeper(n: int, seconds: float) -> int:
    ctx_of().sleep_for(seconds)
    return n


@reg.task(queue="durable")
async def async_sleeper(marker: str) -> list[Any]:
    ctx = ctx_of()

    async def made() -> str:
        trace(marker, "made")
        return "made"

    first = await ctx.astep("make", made)
    await ctx.asleep_for(0.3)
    second = await ctx.astep("double", lambda x: x * 2, first)
    return [first, second]


# -- events and signals ------------------------------------------------------------------------


@reg.task(queue="durable")
def wait_event(key: str, timeout: float | None = None, lookback: float = 0.0) -> Any:
    ctx = ctx_of()
    trace(f"event-{ctx.task_id}", "ran")
    trace(f"event-at-{ctx.task_id}", repr(time.time()))
    try:
        return {"payload": ctx.wait_for_event(key, timeout=timeout, lookback=lookback)}
    except WaitTimedOut as exc:
        return {"timed_out": True, "step": exc.step}


@reg.task(queue="durable")
def wait_twice(key: str) -> list[Any]:
    """Two waits on one key in a row: each gets its own event, never the same one twice."""
    ctx = ctx_of()
    first = ctx.wait_for_event(key, lookback=600)
    second = ctx.wait_for_event(key, lookback=600)
    return [first, second]


@reg.task(queue="durable")
def wait_signal(name: str, timeout: float | None = None) -> Any:
    ctx = ctx_of()
    try:
        return {"payload": ctx.wait_for_signal(name, timeout=timeout)}
    except WaitTimedOut:
        return {"timed_out": True}


@reg.task(queue="durable")
async def async_wait_event(key: str) -> Any:
    return await ctx_of().await_for_event(key, timeout=60)

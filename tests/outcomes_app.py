"""The registry the workflow-handler and streaming tests run in real worker processes
(issue 15): handlers that count their calls in the KV store, and tasks that stream."""

from __future__ import annotations

import asyncio
import time

import orjson

from branchwork import KV, Registry, RunOutcome, get_context

reg = Registry()


# -- workflow handlers ----------------------------------------------------------------------

@reg.task
def record_outcome(outcome: RunOutcome) -> dict:
    """Count this handler's calls per run (a second call would show as 2) and keep what it
    was told."""
    KV.increment(f"handled:{outcome.run_id}")
    KV.set(f"outcome:{outcome.run_id}", orjson.dumps(outcome.model_dump()).decode())
    return {"run_id": outcome.run_id, "status": outcome.status,
            "failed_node": outcome.failed_node}


@reg.task
def step_ok() -> str:
    return "ok"


@reg.task
def step_boom() -> str:
    raise RuntimeError("node exploded")


@reg.task
def step_slow() -> str:
    """Runs until cancelled (at most 60 s), checking for the stop request."""
    ctx = get_context()
    assert ctx is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.05)
        ctx.raise_if_cancelled()
    return "slept"


@reg.task
def node_after() -> str:
    return "after"


@reg.workflow(queue="outcomes", on_failure=record_outcome, on_success=record_outcome)
def handled_ok():
    step_ok >> node_after


@reg.workflow(queue="outcomes", on_failure=record_outcome, on_success=record_outcome)
def handled_boom():
    step_ok >> step_boom >> node_after


@reg.workflow(queue="outcomes", on_failure=record_outcome)
def handled_slow():
    step_ok >> step_slow


# -- progress and streams ---------------------------------------------------------------------

@reg.task(queue="streams")
def tokens(n: int, pause: float = 0.0, gate: str | None = None) -> int:
    """Stream n tokens with progress; with ``gate`` it waits, after the first half, until
    that KV key is set (the test restarts the server meanwhile)."""
    ctx = get_context()
    assert ctx is not None
    for i in range(n):
        ctx.stream(f"tok{i} ")
        ctx.progress((i + 1) / n, f"{i + 1} of {n}")
        if gate and i == n // 2 - 1:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if KV.get(gate):
                        break
                except Exception:  # noqa: BLE001 — the server is restarting: ask again
                    pass
                time.sleep(0.1)
        if pause:
            time.sleep(pause)
    return n


@reg.task(queue="streams")
async def atokens(n: int, pause: float = 0.0) -> int:
    ctx = get_context()
    assert ctx is not None
    for i in range(n):
        ctx.stream(f"a{i} ")
        ctx.progress((i + 1) / n)
        await asyncio.sleep(pause)
    return n


@reg.task(queue="streams")
def slow_progress(steps: int, pause: float) -> str:
    """Progress the studio's task page shows while it happens."""
    ctx = get_context()
    assert ctx is not None
    for i in range(steps):
        ctx.progress((i + 1) / steps, f"step {i + 1} of {steps}")
        ctx.stream(f"line {i + 1}\n")
        time.sleep(pause)
    return "done"


@reg.task(queue="streams")
def bad_progress(value: float) -> str:
    ctx = get_context()
    assert ctx is not None
    ctx.progress(value)
    return "unreachable"


@reg.task(queue="streams")
def too_big_chunk(size: int) -> str:
    ctx = get_context()
    assert ctx is not None
    ctx.stream("x" * size)
    return "unreachable"

"""Tasks for the stuck-task tests (``run-worker stuck_app:reg``): some hang without a word to
Branchwork, some keep calling into their context while they work."""

from __future__ import annotations

import asyncio
import time

from branchwork import Registry, get_context

reg = Registry()


@reg.task(queue="stuck")
def hang(seconds: float, only_first_attempt: bool = False) -> str:
    """Sleeps without touching its context (a hung call); later attempts may return at once."""
    ctx = get_context()
    if only_first_attempt and ctx is not None and ctx.attempt_number > 1:
        return f"attempt {ctx.attempt_number} done"
    time.sleep(seconds)
    return "woke up"


@reg.task(queue="stuck")
async def hang_async(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "woke up"


@reg.task(queue="stuck")
def busy(seconds: float) -> int:
    """Works for ``seconds``, calling into its context between steps: never stuck."""
    steps = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.2)
        get_context()
        steps += 1
    return steps


@reg.task(queue="stuck")
async def busy_async(seconds: float) -> int:
    steps = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        ctx = get_context()
        assert ctx is not None
        ctx.progress()
        steps += 1
    return steps


@reg.task(queue="stuck", stuck_after_seconds=3.0, stuck_action="fail", max_retries=1,
          retry_backoff="fixed", retry_delay_seconds=0.0)
def hang_then_ok(seconds: float) -> str:
    """Its own stuck rule (from the definition): hangs on attempt 1, returns on attempt 2."""
    ctx = get_context()
    if ctx is not None and ctx.attempt_number > 1:
        return f"attempt {ctx.attempt_number} done"
    time.sleep(seconds)
    return "woke up"

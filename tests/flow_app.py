"""Tasks the flow-control tests run in real worker processes (``run-worker flow_app:reg``).

They do next to nothing: the tests read what they need (started_at, status) from the server;
the flow-control options come with each send.
"""

from __future__ import annotations

import time

from branchwork import Registry, get_context

reg = Registry()


@reg.task(queue="rated")
def tick(i: int, customer: str = "") -> int:
    return i


@reg.task(queue="keyed")
def hold(customer: str, seconds: float) -> str:
    time.sleep(seconds)
    return customer


@reg.task(queue="latest")
def edit(doc: str, version: int, seconds: float = 30.0) -> int:
    """Runs until its time is up or it is cancelled (cooperatively)."""
    ctx = get_context()
    assert ctx is not None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ctx.raise_if_cancelled()
        time.sleep(0.05)
    return version

"""Tasks for the hardening tests' real worker processes (``run-worker hardening_app:reg``)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from branchwork import Registry

reg = Registry()


@reg.task(queue="rescue", max_retries=3)
def hang_once(name: str) -> str:
    """Hangs on the first worker that runs it (leaving ``<name>.started``); returns at once
    wherever it runs again, so a test sees the second run start."""
    flag = Path(os.environ["BW_TEST_DIR"]) / f"{name}.started"
    if not flag.exists():
        flag.write_text(str(os.getpid()))
        time.sleep(600)
        return "hung"
    return "ran again"


@reg.task(queue="rescue", max_retries=0)
def hang_once_no_retries(name: str) -> str:
    return hang_once.fn(name)


@reg.task(queue="rescue")
def tick(i: int) -> int:
    time.sleep(0.05)
    return i

"""A worker whose registry declares a queue's retention in code (``tests/test_retention.py``)."""

from __future__ import annotations

from branchwork import Queue, Registry

reg = Registry()


@reg.task(queue=Queue("brief", retention={"succeeded": 60, "failed": None}))
def note(text: str) -> str:
    return text

"""Tasks the send-window and "why" tests run in real worker processes
(``run-worker flow_windows_app:reg``). Each run appends its args to a trace file under
``$BW_TEST_DIR``, so a test counts runs independently of what the worker reports."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from branchwork import Registry

reg = Registry()


def runs(directory: Path, name: str) -> list[dict[str, Any]]:
    """The args of every run of ``name`` so far, in order."""
    path = directory / f"{name}.runs"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _trace(name: str, args: dict[str, Any]) -> None:
    with open(Path(os.environ["BW_TEST_DIR"]) / f"{name}.runs", "a") as f:
        f.write(json.dumps(args) + "\n")


@reg.task(queue="windows")
def reindex(doc: str, version: int) -> int:
    """A debounced task: the trace shows how often it ran, and with which version."""
    _trace("reindex", {"doc": doc, "version": version})
    return version


@reg.task(queue="windows")
def hold(seconds: float, label: str) -> str:
    """Runs for a while, so that a while-active key stays held."""
    _trace("hold", {"label": label})
    time.sleep(seconds)
    return label

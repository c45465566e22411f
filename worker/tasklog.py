"""The worker's own lines about tasks: a start-up banner and one line per finished attempt.

Kept apart from ``runtime`` so what an operator reads is decided in one place. Lines go to
the ``branchwork.worker`` logger: INFO for successes and cancellations, WARNING for failures
(so ``--log-level warning`` shows only what went wrong).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

log = logging.getLogger("branchwork.worker")


def banner(*, worker_id: str, url: str, spec: str, task_names: Sequence[str],
           queues: Sequence[str], concurrency: int, isolation: str) -> None:
    names = ", ".join(sorted(task_names))
    log.info("worker %s ready\n"
             "  server       %s (studio: %s/studio)\n"
             "  registry     %s: %d task(s): %s\n"
             "  queues       %s\n"
             "  concurrency  %d, %s isolation",
             worker_id, url, url, spec, len(task_names), names, ", ".join(queues),
             concurrency, isolation)


def finished(task: dict[str, Any], attempt: int, outcome: dict[str, Any],
             seconds: float) -> None:
    """One line for an attempt that ended: name, id, outcome, duration, attempt."""
    what = outcome.get("outcome", "?")
    level = logging.WARNING if what == "failed" else logging.INFO
    if not log.isEnabledFor(level):
        return  # on the hot path: build nothing that will not be printed
    tries = int(task.get("max_retries") or 0) + 1
    line = (f"task {task['id']} {task['name']} {what} in {_duration(seconds)} "
            f"(attempt {attempt} of {tries})")
    if level == logging.WARNING:
        error = outcome.get("error") or {}
        retry = " (it will be retried)" if attempt < tries else ""
        line = f"{line}: {error.get('type')}: {_one_line(error.get('message'))}{retry}"
    _emit(level, line)


def _emit(level: int, line: str) -> None:
    """``log.log(level, line)`` without its caller lookup (a walk up the stack for every
    finished task); the record goes through the logger's filters and handlers as usual."""
    log.handle(log.makeRecord(log.name, level, __file__, 0, line, None, None, "finished"))


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _one_line(text: Any, limit: int = 300) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"

"""Per-attempt output capture: ``print`` and ``logging`` inside a task land in that attempt's
bounded buffer, which is sent with the report as ``logs``.

One process runs many tasks at once (async tasks on the loop, sync tasks in threads), so the
buffer is found through a ContextVar rather than by swapping ``sys.stdout`` per task: each
asyncio task and each executor call carries its own context. Output written outside any task
goes where it always went.
"""

from __future__ import annotations

import io
import logging
import sys
from contextvars import ContextVar
from typing import TextIO

DEFAULT_LIMIT = 65_536
TRUNCATED = "[earlier output truncated]\n"


class OutputBuffer:
    """Keeps the last ``limit`` characters written: the end of a log says most about a failure."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._parts: list[str] = []
        self._size = 0
        self.truncated = False
        self.writes = 0  # changes when something was written: cheap "anything new?" check

    def write(self, text: str) -> None:
        if not text:
            return
        self._parts.append(text)
        self._size += len(text)
        self.writes += 1
        if self._size > 2 * self.limit:
            self._compact()

    def _compact(self) -> None:
        joined = "".join(self._parts)
        if len(joined) > self.limit:
            joined = joined[-self.limit:]
            self.truncated = True
        self._parts = [joined]
        self._size = len(joined)

    def snapshot(self) -> str:
        """The text so far, without touching the buffer: safe from another thread."""
        text = "".join(list(self._parts))
        truncated = self.truncated or len(text) > self.limit
        text = text[-self.limit:]
        return (TRUNCATED + text) if truncated else text

    def getvalue(self) -> str | None:
        """The captured text, or None when the attempt printed nothing."""
        self._compact()
        text = self._parts[0] if self._parts else ""
        if not text and not self.truncated:
            return None
        return (TRUNCATED + text) if self.truncated else text


current_output: ContextVar[OutputBuffer | None] = ContextVar("branchwork_output", default=None)


class _Redirect(io.TextIOBase):
    """Stands in for sys.stdout/sys.stderr: task output to the task's buffer, the rest through."""

    def __init__(self, original: TextIO) -> None:
        self.original = original

    def write(self, text: str) -> int:
        buffer = current_output.get()
        if buffer is None:
            return self.original.write(text)
        buffer.write(text)
        return len(text)

    def flush(self) -> None:
        if current_output.get() is None:
            self.original.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.original.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.original, "encoding", "utf-8")


# The client's own loggers: a task that sends tasks or uses KV makes HTTP requests, and
# their lines are the worker's business, not the task's output.
CLIENT_LOGGERS = ("httpx", "httpcore")


class _TaskLogHandler(logging.Handler):
    """Copies log records emitted inside a task into its buffer (the task's own records:
    not those of the HTTP client it uses)."""

    def handle(self, record: logging.LogRecord) -> bool:
        # Outside a task (every line of the worker's own, one per finished task) there is
        # nothing to copy: skip the handler's lock and filters.
        if current_output.get() is None:
            return False
        return super().handle(record)

    def emit(self, record: logging.LogRecord) -> None:
        buffer = current_output.get()
        if buffer is None or record.name.partition(".")[0] in CLIENT_LOGGERS:
            return
        try:
            buffer.write(self.format(record) + "\n")
        except Exception:  # a broken record must not fail the task
            self.handleError(record)


_installed = False


def install() -> None:
    """Route stdout, stderr and logging of tasks into their buffers (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    sys.stdout = _Redirect(sys.stdout)  # type: ignore[assignment]
    sys.stderr = _Redirect(sys.stderr)  # type: ignore[assignment]
    handler = _TaskLogHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for existing in root.handlers:
        keep_task_records_out_of(existing)
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)


class _QuietWhileTask(logging.Filter):
    """Keeps task records out of the worker's own log stream (they go to the task's logs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return current_output.get() is None


def keep_task_records_out_of(handler: logging.Handler) -> None:
    handler.addFilter(_QuietWhileTask())

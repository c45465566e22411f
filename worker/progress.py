"""The progress board: where running attempts mark that they are alive, in shared memory.

The heartbeat runs in its own process, so it keeps a lease alive even while the task hangs.
To tell a hung attempt from a busy one, every call a task makes into Branchwork (its
context, a send, the KV store, ``ctx.progress()``) stamps the attempt's slot here with
``time.monotonic()``: one 8-byte write, no system call, no lock. The heartbeat process reads
the board and sends each lease's ``idle_seconds``; the server turns that into
``last_progress_at`` and shows (or fails) attempts idle past their ``stuck_after``.

The board is an unlinked temporary file mapped by the worker, its heartbeat process and its
task processes (passed by file descriptor), so nothing is left behind after a ``kill -9``.
``CLOCK_MONOTONIC`` is one clock for all processes of a machine.
"""

from __future__ import annotations

import mmap
import os
import struct
import tempfile
import time

SLOT = struct.Struct("=qd")  # task id (0: free), monotonic time of the last activity
STAMP = struct.Struct("=d")
SLOTS = 4096  # attempts one worker tracks at once; more run untracked (never shown stuck)
SIZE = SLOT.size * SLOTS


class ProgressBoard:
    """One per worker. The worker process takes and frees slots; anyone holding the file
    descriptor may :meth:`mark`; the heartbeat process reads :meth:`idle`."""

    def __init__(self, fd: int | None = None) -> None:
        if fd is None:
            self._file = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the board)
            self._file.truncate(SIZE)
            fd = self._file.fileno()
        self.fd = fd
        self.map = mmap.mmap(fd, SIZE)
        self._free = list(range(SLOTS - 1, -1, -1))

    def take(self, task_id: int) -> int | None:
        """A slot for an attempt starting now (None when all are in use)."""
        if not self._free:
            return None
        slot = self._free.pop()
        SLOT.pack_into(self.map, slot * SLOT.size, task_id, time.monotonic())
        return slot

    def free(self, slot: int | None) -> None:
        if slot is not None:
            SLOT.pack_into(self.map, slot * SLOT.size, 0, 0.0)
            self._free.append(slot)

    def mark(self, slot: int) -> None:
        """The attempt in ``slot`` showed progress now."""
        STAMP.pack_into(self.map, slot * SLOT.size + 8, time.monotonic())

    def idle(self) -> dict[int, float]:
        """Task id -> seconds since its attempt last showed progress."""
        now = time.monotonic()
        return {task_id: max(0.0, now - stamp)
                for task_id, stamp in SLOT.iter_unpack(self.map) if task_id}

    def close(self) -> None:
        self.map.close()
        file = getattr(self, "_file", None)
        if file is not None:
            file.close()


def inherited(fd: int | None) -> ProgressBoard | None:
    """The board of the worker that started this process, if it passed one."""
    if fd is None:
        return None
    try:
        os.fstat(fd)
    except OSError:
        return None
    return ProgressBoard(fd)

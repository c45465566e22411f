"""Child processes for sync tasks: started on demand, reused, killed and replaced at will.

Why processes: a sync task that ignores its timeout or a cancellation can only be stopped
for sure by killing what runs it, and a thread cannot be killed. A task holding the GIL in C
code also cannot slow the worker's event loop from another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger("branchwork.worker")


class ChildDied(Exception):
    """The child running the task exited (killed on purpose, or crashed)."""

    def __init__(self, exitcode: int | None) -> None:
        super().__init__(f"the process running the task exited (exit code {exitcode})")
        self.exitcode = exitcode


class Child:
    def __init__(self, process: subprocess.Popen[bytes], conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.result: asyncio.Future[dict[str, Any]] | None = None
        self.task_id: int | None = None
        self.dead = False


class ProcessPool:
    def __init__(self, spec: str, size: int, progress_fd: int | None = None) -> None:
        self.spec = spec
        self.progress_fd = progress_fd  # the worker's progress board, shared with children
        self.size = size
        self._children: list[Child] = []
        self._idle: deque[Child] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._loop = asyncio.get_running_loop()
        # Children whose task waits on its children (branchwork.waiting()): not counted
        # against ``size``, so the tasks waited for can get a process. The worker sets the
        # callback to lend the task's slot as well.
        self.waiting: set[Child] = set()
        self.on_waiting: Callable[[int, bool], None] | None = None
        # Output of a running task so far (see child.stream_output).
        self.on_output: Callable[[int, str], None] | None = None

    def _spawn(self) -> Child:
        # A plain ``python -m branchwork.worker.child`` rather than multiprocessing's spawn:
        # spawn re-imports the parent's __main__, which breaks (or forks forever) when a user
        # starts the worker from a script without an ``if __name__ == "__main__"`` guard.
        ours, theirs = socket.socketpair()
        with ours, theirs:
            board = ([] if self.progress_fd is None
                     else ["--progress-fd", str(self.progress_fd)])
            process = subprocess.Popen(
                [sys.executable, "-m", "branchwork.worker.child", "--spec", self.spec,
                 "--fd", str(theirs.fileno()), "--parent", str(os.getpid()), *board],
                pass_fds=[theirs.fileno(), *([] if self.progress_fd is None
                                             else [self.progress_fd])])
            conn = Connection(ours.detach())
        child = Child(process, conn)
        self._children.append(child)
        # EOF on the socket is how we learn that the child exited, whatever the reason.
        self._loop.add_reader(conn.fileno(), self._readable, child)
        return child

    def warm(self, n: int = 1) -> None:
        """Start children ahead of the first sync task, so it does not wait for an import."""
        for _ in range(max(0, min(n, self.size) - len(self._children))):
            self._idle.append(self._spawn())

    def _readable(self, child: Child) -> None:
        try:
            while child.conn.poll():
                message = child.conn.recv()
                if message[0] == "ready" and not child.ready.done():
                    child.ready.set_result(None)
                elif message[0] == "done" and child.result and not child.result.done():
                    self.waiting.discard(child)
                    child.result.set_result(message[2])
                elif message[0] == "output" and child.task_id == message[1]:
                    if self.on_output is not None:
                        self.on_output(message[1], message[2])
                elif message[0] == "waiting" and child.task_id == message[1]:
                    (self.waiting.add if message[2] else self.waiting.discard)(child)
                    if message[2]:
                        self._wake_one()
                    if self.on_waiting is not None:
                        self.on_waiting(message[1], message[2])
        except (EOFError, OSError):
            self._exited(child)

    def _exited(self, child: Child) -> None:
        if child.dead:
            return
        child.dead = True
        self.waiting.discard(child)
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(child.conn.fileno())
        try:
            exitcode = child.process.wait(0.5)
        except subprocess.TimeoutExpired:
            exitcode = None
        error = ChildDied(exitcode)
        if not child.ready.done():
            child.ready.set_exception(error)
            child.ready.exception()  # retrieved: nobody may be waiting on it
        if child.result and not child.result.done():
            child.result.set_exception(error)
        with contextlib.suppress(ValueError):
            self._children.remove(child)
        with contextlib.suppress(ValueError):
            self._idle.remove(child)
        with contextlib.suppress(OSError):
            child.conn.close()
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def acquire(self) -> Child:
        """A started, idle child; waits when all ``size`` are busy."""
        while True:
            while self._idle:
                child = self._idle.popleft()
                if not child.dead:
                    try:
                        await child.ready
                    except ChildDied:
                        continue
                    return child
            if len(self._children) - len(self.waiting) < self.size:
                child = self._spawn()
                try:
                    await child.ready
                except ChildDied as exc:
                    log.error("a task process failed to start (%s); is the registry "
                              "importable in a fresh interpreter?", exc)
                    await asyncio.sleep(1.0)
                    continue
                return child
            waiter = self._loop.create_future()
            self._waiters.append(waiter)
            await waiter

    def put_back(self, child: Child) -> None:
        child.task_id = None
        child.result = None
        self.waiting.discard(child)
        if not child.dead and len(self._children) - len(self.waiting) > self.size:
            self.kill(child)  # one started while a task waited: no longer needed
            return
        if not child.dead:
            self._idle.append(child)
            self._wake_one()

    async def run(self, child: Child, job: dict[str, Any]) -> dict[str, Any]:
        child.task_id = job["task"]["id"]
        child.result = self._loop.create_future()
        child.conn.send(("run", job))
        return await child.result

    def cancel(self, child: Child, task_id: int) -> None:
        if not child.dead and child.task_id == task_id:
            with contextlib.suppress(OSError):
                child.conn.send(("cancel", task_id))

    def kill(self, child: Child) -> None:
        if not child.dead:
            with contextlib.suppress(ProcessLookupError, AttributeError):
                child.process.kill()
            self._exited(child)

    def close(self) -> None:
        for child in list(self._children):
            self.kill(child)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()

"""A child process that runs sync tasks one at a time, so it can be killed and replaced.

The worker sends ``("run", job)`` and ``("cancel", task_id)`` over a pipe and gets back
``("ready", pid)`` once and ``("done", task_id, outcome)`` per task. A listener thread reads
the pipe so a cancellation reaches the task's context while it runs. The child dies with
the worker: on Linux through PR_SET_PDEATHSIG, everywhere when the pipe closes.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import queue
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

PR_SET_PDEATHSIG = 1
OUTPUT_EVERY = 0.5


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description="branchwork task process")
    parser.add_argument("--spec", required=True)
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--progress-fd", type=int, default=None)
    args = parser.parse_args()
    child_main(args.spec, Connection(args.fd), args.parent, args.progress_fd)


def child_main(spec: str, conn: Connection, parent_pid: int,
               progress_fd: int | None = None) -> None:
    # Stopping is the worker's decision: a Ctrl-C or SIGTERM sent to the whole process group
    # must not kill a task the worker means to let finish within its grace period.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()
    if os.getppid() != parent_pid:
        os._exit(0)

    from branchwork.worker_api import TaskContext

    from . import capture
    from .attempt import run_sync
    from .loading import load_registry
    from .progress import inherited

    board = inherited(progress_fd)

    capture.install()
    registry = load_registry(spec)
    jobs: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
    cancelled: set[int] = set()
    current: dict[str, TaskContext | None] = {"ctx": None}
    lock = threading.Lock()

    def listen() -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                os._exit(0)  # the worker is gone
            if message[0] == "run":
                jobs.put(message[1])
            elif message[0] == "cancel":
                with lock:
                    cancelled.add(message[1])
                    ctx = current["ctx"]
                    if ctx is not None and ctx.task_id == message[1]:
                        ctx.cancel_requested.set()

    threading.Thread(target=listen, daemon=True, name="branchwork-child-listener").start()
    send_lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with send_lock:
            conn.send(message)

    running: dict[str, Any] = {"task_id": None, "buffer": None}

    def stream_output() -> None:
        """Every half second, the output so far goes to the worker, so an attempt killed
        for its timeout or an ignored cancellation still has its logs."""
        seen: tuple[int | None, int] = (None, 0)
        while True:
            time.sleep(OUTPUT_EVERY)
            with lock:
                task_id, buffer = running["task_id"], running["buffer"]
            if task_id is None or buffer is None or (task_id, buffer.writes) == seen:
                continue
            seen = (task_id, buffer.writes)
            with contextlib.suppress(OSError):
                send(("output", task_id, buffer.snapshot()))

    threading.Thread(target=stream_output, daemon=True, name="branchwork-child-output").start()
    tasks = registry.tasks

    conn.send(("ready", os.getpid()))
    while True:
        job = jobs.get()
        ctx = TaskContext.from_claim(job["task"], job["worker_id"])
        # branchwork.waiting() tells the worker, which lends this task's slot meanwhile.
        ctx.on_waiting = lambda flag, task_id=ctx.task_id: send(("waiting", task_id, flag))
        slot = job.get("progress_slot")
        if board is not None and slot is not None:
            ctx.on_progress = lambda slot=slot: board.mark(slot)
            ctx.progress()  # starting counts: the wait for a free process is not the task's
        with lock:
            current["ctx"] = ctx
            if ctx.task_id in cancelled:
                ctx.cancel_requested.set()
        definition = tasks.get(ctx.task_name) or registry.tasks.get(ctx.task_name)
        buffer = capture.OutputBuffer(job["log_limit"])
        with lock:
            running.update(task_id=ctx.task_id, buffer=buffer)
        outcome = run_sync(definition, ctx, job["task"].get("args"), buffer)
        with lock:
            current["ctx"] = None
            running.update(task_id=None, buffer=None)
            cancelled.discard(ctx.task_id)
        try:
            send(("done", ctx.task_id, outcome))
        except Exception as exc:  # e.g. a result pickle could not carry
            send(("done", ctx.task_id, {
                "outcome": "failed", "logs": outcome.get("logs"),
                "error": {"type": type(exc).__name__, "message": str(exc), "traceback": None}}))


if __name__ == "__main__":
    main()

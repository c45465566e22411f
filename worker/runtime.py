"""The worker: claims tasks in batches, runs them, reports outcomes, stops gracefully.

Parts, one job each (see docs/worker.md for the picture):

- producer (here): long-polls ``/v1/claim`` for up to ``batch_size`` tasks whenever slots
  are free; async tasks run on this event loop, sync tasks in child processes
  (``procpool``) or, with ``isolation="thread"``, in a thread pool;
- lease keeper (``leases`` + ``heartbeat``): a separate process heartbeats every held lease
  and tells us about cancellations and lost leases;
- completer (``completer``): batches outcomes into ``/v1/tasks/report``;
- registration at start (``registering``), with the options of ``options``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from branchwork.worker_api import (
    AsyncClient,
    BranchworkError,
    RunnableTask,
    TaskContext,
    task_context,
)

from . import capture, handback, tasklog, transport
from .attempt import cancelled, error_info, failed, is_async, run_async, run_sync, timeout_error
from .completer import Completer
from .leases import LeaseKeeper
from .options import WorkerOptions, make_worker_id
from .procpool import Child, ChildDied, ProcessPool
from .progress import ProgressBoard
from .registering import register
from .running import Running, UnknownTask

__all__ = ["Worker", "WorkerOptions", "run"]

log = logging.getLogger("branchwork.worker")

# Extra threads (thread isolation) for tasks that wait on children: the depth of waiting
# parents a thread-isolated worker supports beyond its concurrency.
WAITING_HEADROOM = 256


class Worker:
    def __init__(self, registry: Any, options: WorkerOptions) -> None:
        self.registry = registry
        self.options = options
        self.worker_id = make_worker_id()
        self.definitions: dict[str, RunnableTask] = dict(registry.tasks)
        workflow_queues: set[str] = set()
        for wf in getattr(registry, "workflows", {}).values():
            workflow_queues |= wf.queues()
        self.queues = options.queues or sorted(
            {d.queue.name for d in self.definitions.values()} | workflow_queues)
        # Tasks inside branchwork.waiting() (a parent waiting on its children): they lend
        # their slot, so they do not count against the concurrency (see _set_waiting).
        self.waiting: set[int] = set()
        self.running: dict[int, Running] = {}
        self.handles: set[asyncio.Task[None]] = set()
        self.stopping = False
        self.has_sync = any(not is_async(d) for d in self.definitions.values())
        self.started_at: float | None = None
        self.claimed = 0
        self.exit_code = 0

    # -- life cycle -----------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        capture.install()
        self.stop_requested = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        # The worker's own requests (claim, report...) over a lean HTTP/1.1 transport.
        self.client = AsyncClient(url=self.options.url, transport=transport.make(self.options.url))
        if not await self._register():
            await self.client.aclose()
            return self.exit_code
        self.slot_freed = asyncio.Event()
        self.board = ProgressBoard()  # where attempts mark progress (stuck detection)
        self.leases = LeaseKeeper(self.options.url, self.worker_id, on_cancel=self._on_cancel,
                                  on_lost=self._on_lost, progress_fd=self.board.fd)
        await self.leases.start()
        self.completer = Completer(self.client, self.worker_id, on_reported=self.leases.remove,
                                   max_batch=self.options.report_batch,
                                   interval=self.options.report_interval)
        self.completer.start()
        self.pool: ProcessPool | None = None
        self.threads: ThreadPoolExecutor | None = None
        if self.has_sync and self.options.isolation == "process":
            self.pool = ProcessPool(self.options.spec,
                                    self.options.processes or self.options.concurrency,
                                    progress_fd=self.board.fd)
            self.pool.on_waiting = self._set_waiting
            self.pool.on_output = self._on_output
            self.pool.warm(1)
        elif self.has_sync:
            # Threads start only when needed; the slots limit what runs. A task waiting on
            # its children lends its slot but keeps its thread, hence the headroom.
            self.threads = ThreadPoolExecutor(self.options.concurrency + WAITING_HEADROOM,
                                              thread_name_prefix="branchwork-task")
        producer = asyncio.create_task(self._produce(), name="branchwork-producer")
        await self.stop_requested.wait()
        await self._shutdown(producer)
        return 0

    async def _register(self) -> bool:
        code = await register(self.client, self.registry, self.worker_id, self.queues,
                              self.options, self.stop_requested)
        if code is not None:
            self.exit_code = code
            return False
        tasklog.banner(worker_id=self.worker_id, url=self.options.url, spec=self.options.spec,
                       task_names=list(self.definitions), queues=self.queues,
                       concurrency=self.options.concurrency, isolation=self.options.isolation)
        return True

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.stopping or self.stop_requested.is_set():
            log.warning("%s again: exiting now", sig.name)
            self._exit_now(release=True)
        log.info("%s: no more claims; waiting up to %.1f s for %d running task(s)", sig.name,
                 self.options.grace_seconds, len(self.running))
        self.stop_requested.set()

    def _exit_now(self, release: bool = False) -> None:
        with contextlib.suppress(Exception):
            if getattr(self, "pool", None) is not None:
                self.pool.close()
            if getattr(self, "leases", None) is not None:
                self.leases.kill()
        if release:
            self._release_held()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)

    def _release_held(self) -> None:
        held = [r.task for r in self.running.values() if not r.lost]
        handback.release_before_exit(self.options.url, self.worker_id, handback.lease_refs(held))

    async def _shutdown(self, producer: asyncio.Task[None]) -> None:
        self.stopping = True
        producer.cancel()  # an in-flight long-poll is dropped; the server hands its tasks back
        with contextlib.suppress(asyncio.CancelledError):
            await producer
        if self.handles:
            await asyncio.wait(set(self.handles), timeout=self.options.grace_seconds)
        left = [r for r in self.running.values()]
        for r in left:
            r.releasing = True
            if r.handle is not None:
                r.handle.cancel()
        if self.handles:
            await asyncio.wait(set(self.handles), timeout=5)
        if left:
            await handback.release_all(self.client, self.worker_id,
                                       handback.lease_refs([r.task for r in left]))
            self.leases.remove(r.task["id"] for r in left)
        if not await self.completer.close(within=30):
            log.error("some outcomes could not be reported; those tasks run again")
        await self.leases.stop()
        if self.pool is not None:
            self.pool.close()
        if self.threads is not None:
            self.threads.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(BranchworkError):
            await self.client.stop_worker(self.worker_id)
        await self.client.aclose()
        log.info("worker %s stopped: %s", self.worker_id, self.completer.counts)

    # -- producer ---------------------------------------------------------------------------
    async def _produce(self) -> None:
        """Claim whenever slots are free. One claim at a time long-polls; while claims come
        back full (a backlog), up to ``parallel_claims`` go out at once without waiting, so
        that a claim's round trip does not bound how fast a backlog drains."""
        concurrency = self.options.concurrency
        batch = self.options.batch_size
        threshold = max(1, min(batch, concurrency) // 2)
        parallel = parallel_claims(concurrency, batch)
        claims = _Claims(sorted(self.definitions))

        def free() -> int:
            return concurrency - len(self.running) + len(self.waiting) - claims.reserved

        async with asyncio.TaskGroup() as group:
            while not self.stopping:
                if 0 < free() < threshold and self.running and not claims.polling:
                    # Let a few more slots free up rather than claim one task at a time.
                    await asyncio.sleep(0.005)
                n = min(batch, free())
                if n > 0 and not claims.polling:
                    polling = True  # the one claim that may wait (long-poll)
                elif n >= threshold and claims.backlog and claims.in_flight < parallel:
                    polling = False  # one more while there is a backlog: no waiting
                else:
                    self.slot_freed.clear()
                    await self.slot_freed.wait()
                    continue
                claims.out(n, polling)  # before the task runs: counted at once
                group.create_task(self._claim(claims, n, polling))

    async def _claim(self, claims: _Claims, limit: int, polling: bool) -> None:
        """One claim of up to ``limit`` tasks, their slots reserved (``claims.out``) while it
        is out; the tasks it brings start at once."""
        try:
            try:
                tasks = await self.client.claim(
                    self.worker_id, queues=self.queues, task_names=claims.names, limit=limit,
                    wait_seconds=self.options.wait_seconds if polling else 0.0)
            except BranchworkError as exc:
                claims.backlog = False
                log.warning("claim failed (%s); retrying in %.1f s", exc, claims.delay)
                await asyncio.sleep(claims.delay)
                claims.delay = min(claims.delay * 2, 10.0)
                return
            claims.delay = 0.5
            claims.backlog = len(tasks) >= limit
            if tasks:
                if self.started_at is None:
                    self.started_at = time.time()
                self.claimed += len(tasks)
                self.leases.add((t["id"], t["lease_token"]) for t in tasks)
                for task in tasks:
                    self._start(task)
        finally:
            claims.back(limit, polling)
            self.slot_freed.set()  # the producer looks again

    def _start(self, task: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        timeout = task.get("timeout_seconds")
        r = Running(task=task, definition=self.definitions.get(task["name"]),
                    ctx=TaskContext.from_claim(task, self.worker_id),
                    deadline=loop.time() + timeout if timeout else None,
                    buffer=capture.OutputBuffer(self.options.log_limit))
        self.running[task["id"]] = r
        r.progress_slot = slot = self.board.take(task["id"])
        if slot is not None:
            r.ctx.on_progress = lambda: self.board.mark(slot)
        r.ctx.on_waiting = lambda flag, task_id=task["id"]: loop.call_soon_threadsafe(
            self._set_waiting, task_id, flag)
        # A fresh context per task: contexts of concurrent tasks never mix.
        r.handle = asyncio.create_task(self._execute(r), context=contextvars.Context())
        self.handles.add(r.handle)
        r.handle.add_done_callback(self.handles.discard)

    # -- running one attempt ----------------------------------------------------------------
    async def _execute(self, r: Running) -> None:
        outcome: dict[str, Any] | None = None
        try:
            if r.definition is None:
                exc = UnknownTask(f"no task named {r.ctx.task_name!r} in {self.options.spec}")
                outcome = {"outcome": "failed", "error": error_info(exc, with_traceback=False)}
            elif is_async(r.definition):
                outcome = await run_async(r.definition, r.ctx, r.task.get("args"), r.buffer,
                                          r.deadline)
            elif self.pool is not None:
                outcome = await self._in_process(r)
            else:
                outcome = await self._in_thread(r)
        except asyncio.CancelledError:
            if not (r.lost or r.releasing) and r.ctx.cancel_requested.is_set():
                outcome = {**cancelled(r.ctx), "logs": r.buffer.getvalue()}
        except Exception as exc:  # a bug of the runtime, not of the task: still report it
            log.exception("task %s: the worker failed to run it", r.ctx.task_id)
            outcome = {"outcome": "failed", "error": error_info(exc)}
        finally:
            for timer in r.timers:
                timer.cancel()
            self.running.pop(r.ctx.task_id, None)
            self.board.free(r.progress_slot)
            self.waiting.discard(r.ctx.task_id)
            self.slot_freed.set()
        if outcome is not None and not (r.lost or r.releasing):
            # Out of the attempt's capture (an async task set it in this asyncio task's
            # context): the line is the worker's, for its own log, not the task's logs.
            capture.current_output.set(None)
            tasklog.finished(r.task, r.ctx.attempt_number, outcome,
                             time.monotonic() - r.started)
            self.completer.add({"id": r.ctx.task_id, "lease_token": r.task["lease_token"],
                                **outcome})

    async def _on_error(self, r: Running, exc: BaseException) -> None:
        """on_error for failures the worker sees from outside (a killed process)."""
        with task_context(r.ctx):
            token = capture.current_output.set(r.buffer)
            try:
                await r.definition.acall_on_error(exc)
            finally:
                capture.current_output.reset(token)

    async def _in_process(self, r: Running) -> dict[str, Any] | None:
        assert self.pool is not None
        child: Child | None = None
        job = {"task": r.task, "worker_id": self.worker_id, "log_limit": self.options.log_limit,
               "progress_slot": r.progress_slot}
        try:
            async with asyncio.timeout_at(r.deadline):  # waiting for a free process counts too
                child = await self.pool.acquire()
                if r.ctx.cancel_requested.is_set():
                    self.pool.put_back(child)
                    return cancelled(r.ctx)
                r.child = child
                outcome = await self.pool.run(child, job)
        except TimeoutError:
            if child is not None:
                self.pool.kill(child)  # it will not stop on its own; a fresh one replaces it
            exc = timeout_error(r.ctx)
            r.buffer.write(f"[the process running the attempt was killed: {exc}]\n")
            await self._on_error(r, exc)
            return {**failed(r.definition, r.ctx, exc), "logs": r.buffer.getvalue()}
        except ChildDied as died:
            if r.ctx.cancel_requested.is_set():
                r.buffer.write("[killed: the task did not stop within the cancel grace "
                               "period]\n")
                return {**cancelled(r.ctx), "logs": r.buffer.getvalue()}
            await self._on_error(r, died)
            return {**failed(r.definition, r.ctx, died), "logs": r.buffer.getvalue()}
        except asyncio.CancelledError:
            if child is not None:
                self.pool.kill(child)  # lost lease or shutdown: stop the work
            raise
        self.pool.put_back(child)
        return outcome

    async def _in_thread(self, r: Running) -> dict[str, Any]:
        assert self.threads is not None
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.threads, contextvars.copy_context().run, run_sync,
                                      r.definition, r.ctx, r.task.get("args"), r.buffer)
        try:
            async with asyncio.timeout_at(r.deadline):
                return await asyncio.shield(future)
        except TimeoutError:
            # A thread cannot be killed: ask it to stop and stop waiting for it.
            r.ctx.cancel_requested.set()
            exc = timeout_error(r.ctx)
            await self._on_error(r, exc)
            return {**failed(r.definition, r.ctx, exc), "logs": r.buffer.getvalue()}

    def _on_output(self, task_id: int, text: str) -> None:
        """Output so far of a sync task in a child process: kept in case the child is killed."""
        r = self.running.get(task_id)
        if r is not None:
            r.buffer = capture.OutputBuffer(self.options.log_limit)
            r.buffer.write(text)

    def _set_waiting(self, task_id: int, flag: bool) -> None:
        """A task entered or left ``branchwork.waiting()``: lend or take back its slot. A
        parent waiting on its children then cannot starve them, even at concurrency 1."""
        if flag and task_id in self.running:
            self.waiting.add(task_id)
            self.slot_freed.set()
        else:
            self.waiting.discard(task_id)

    # -- signals from the heartbeat process -----------------------------------------------
    def _on_cancel(self, ids: list[int]) -> None:
        loop = asyncio.get_running_loop()
        for task_id in ids:
            r = self.running.get(task_id)
            if r is None or r.ctx.cancel_requested.is_set():
                continue
            log.info("task %s: cancellation requested", task_id)
            r.ctx.cancel_requested.set()
            if r.definition is None or is_async(r.definition):
                if r.handle is not None:
                    r.handle.cancel()
                continue
            if r.child is not None and self.pool is not None:
                self.pool.cancel(r.child, task_id)
            r.timers.append(loop.call_later(self.options.cancel_grace_seconds,
                                            self._force_cancel, r))

    def _force_cancel(self, r: Running) -> None:
        """The sync task ignored the request: kill its process (or stop waiting for its
        thread); the attempt is reported as cancelled."""
        if self.running.get(r.ctx.task_id) is not r:
            return
        if r.child is not None and self.pool is not None:
            self.pool.kill(r.child)  # _in_process sees ChildDied and reports cancelled
        elif r.handle is not None:
            r.handle.cancel()

    def _on_lost(self, ids: list[int]) -> None:
        for task_id in ids:
            r = self.running.get(task_id)
            if r is None:
                continue
            log.warning("task %s: lease lost (expired or timed out on the server); "
                        "stopping it without a report", task_id)
            r.lost = True
            if r.handle is not None:
                r.handle.cancel()


def run(registry: Any, options: WorkerOptions) -> int:
    code = asyncio.run(Worker(registry, options).run())
    if any(t.is_alive() and not t.daemon for t in threading.enumerate()
           if t is not threading.main_thread()):
        # Threads of abandoned sync tasks (thread isolation, past their timeout or grace):
        # they cannot be stopped, and the interpreter would wait for them at exit.
        log.warning("exiting with task threads still running (thread isolation)")
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


# At most this many claims out at once (a backlog is drained by several claims in flight).
MAX_PARALLEL_CLAIMS = 4


def parallel_claims(concurrency: int, batch_size: int) -> int:
    """How many claims may be out at once: as many batches as the slots hold, at most
    ``MAX_PARALLEL_CLAIMS``."""
    return max(1, min(MAX_PARALLEL_CLAIMS, -(-concurrency // max(1, batch_size))))


class _Claims:
    """The producer's claims in flight: the slots they reserve, whether one long-polls,
    whether the last came back full (a backlog), the retry delay after a failure."""

    __slots__ = ("backlog", "delay", "in_flight", "names", "polling", "reserved")

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.reserved = 0
        self.in_flight = 0
        self.polling = False
        self.backlog = False
        self.delay = 0.5

    def out(self, limit: int, polling: bool) -> None:
        self.reserved += limit
        self.in_flight += 1
        self.polling = self.polling or polling

    def back(self, limit: int, polling: bool) -> None:
        self.reserved -= limit
        self.in_flight -= 1
        if polling:
            self.polling = False

"""The worker's side of the heartbeat process (see ``heartbeat.py`` for why it is a process)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any

import orjson

log = logging.getLogger("branchwork.worker")


class LeaseKeeper:
    """Starts the heartbeat process, tells it which leases to extend, and relays what it hears.

    If the process dies it is started again with every lease still held.
    """

    def __init__(self, url: str, worker_id: str, *, on_cancel: Callable[[list[int]], None],
                 on_lost: Callable[[list[int]], None], env: dict[str, str] | None = None,
                 progress_fd: int | None = None) -> None:
        self.url = url
        self.worker_id = worker_id
        self.on_cancel = on_cancel
        self.on_lost = on_lost
        self.env = env
        self.progress_fd = progress_fd
        self.held: dict[int, str] = {}
        self.lease_seconds: float | None = None
        self.ready = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        self._supervisor = asyncio.create_task(self._supervise(), name="branchwork-heartbeat")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(15):
                await self.ready.wait()  # first heartbeat answered: the server is reachable

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def _supervise(self) -> None:
        while not self._stopping:
            board = ([] if self.progress_fd is None
                     else ["--progress-fd", str(self.progress_fd)])
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "branchwork.worker.heartbeat",
                "--url", self.url, "--worker-id", self.worker_id, *board,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=self.env,
                pass_fds=[] if self.progress_fd is None else [self.progress_fd])
            if self.held:
                self._write({"add": [[i, t] for i, t in self.held.items()]})
            assert self._proc.stdout is not None
            async for line in self._proc.stdout:
                self._handle(orjson.loads(line))
            await self._proc.wait()
            if not self._stopping:
                log.warning("heartbeat process exited with %s; starting it again",
                            self._proc.returncode)
                await asyncio.sleep(0.5)

    def _handle(self, message: dict[str, Any]) -> None:
        if "lease_seconds" in message:
            self.lease_seconds = float(message["lease_seconds"])
            self.ready.set()
        if message.get("lost"):
            ids = [i for i in message["lost"] if self.held.pop(i, None) is not None]
            if ids:
                self.on_lost(ids)
        if message.get("cancel"):
            ids = [i for i in message["cancel"] if i in self.held]
            if ids:
                self.on_cancel(ids)

    def _write(self, message: dict[str, Any]) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.returncode is not None:
            return  # the supervisor hands every held lease to the next process
        with contextlib.suppress(ConnectionError, RuntimeError):
            proc.stdin.write(orjson.dumps(message, option=orjson.OPT_APPEND_NEWLINE))

    def add(self, leases: Iterable[tuple[int, str]]) -> None:
        items = [(int(i), str(t)) for i, t in leases]
        if items:
            self.held.update(items)
            self._write({"add": items})

    def remove(self, ids: Iterable[int]) -> None:
        gone = [i for i in ids if self.held.pop(i, None) is not None]
        if gone:
            self._write({"remove": gone})

    async def stop(self) -> None:
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            self._write({"stop": True})
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                async with asyncio.timeout(5):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor

    def kill(self) -> None:
        """For an immediate exit: no more heartbeats from this worker."""
        self._stopping = True
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()

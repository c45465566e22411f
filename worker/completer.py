"""Reports outcomes in batches, River-style: one request every few milliseconds or every
``max_batch`` outcomes, instead of one per task.

A report is safe to repeat (outcomes are fenced by lease token; a repeat answers
``already_recorded``), so a batch that fails on the network or with a 5xx is sent again
until it lands or the worker gives up at shutdown. Only when the server has answered is a
lease dropped from the heartbeat: until then the task must stay leased to this worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from branchwork.protocol import RECORDED_VERDICTS
from branchwork.worker_api import ApiError, BranchworkError, InvalidValue, ServerError

log = logging.getLogger("branchwork.worker")
REFUSED = "[captured output refused:"


class Completer:
    def __init__(self, client: Any, worker_id: str, *, on_reported: Callable[[list[int]], None],
                 max_batch: int = 500, interval: float = 0.005, max_in_flight: int = 2) -> None:
        self.client = client
        self.worker_id = worker_id
        self.on_reported = on_reported
        self.max_batch = max_batch
        self.interval = interval
        self._pending: dict[int, dict[str, Any]] = {}  # by task id: one outcome per attempt
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        self.counts: dict[str, int] = {}

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name="branchwork-completer")

    def add(self, item: dict[str, Any]) -> None:
        self._pending[item["id"]] = item
        if len(self._pending) >= self.max_batch or len(self._pending) == 1:
            self._wake.set()

    async def _run(self) -> None:
        while not (self._closing and not self._pending):
            await self._wake.wait()
            self._wake.clear()
            if len(self._pending) < self.max_batch and not self._closing:
                await asyncio.sleep(self.interval)  # let a batch gather
            while self._pending:
                await self._slots.acquire()
                ids = list(self._pending)[: self.max_batch]
                batch = [self._pending.pop(i) for i in ids]
                task = asyncio.create_task(self._send(batch))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)

    async def _send(self, batch: list[dict[str, Any]]) -> None:
        try:
            verdicts = await self._deliver(batch)
            for verdict in verdicts:
                outcome = verdict.get("outcome", "?")
                self.counts[outcome] = self.counts.get(outcome, 0) + 1
                if outcome not in RECORDED_VERDICTS:
                    log.warning("task %s: outcome not recorded (%s)", verdict.get("id"), outcome)
        finally:
            self._slots.release()
            self.on_reported([item["id"] for item in batch])

    async def _deliver(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send until the server answers. A refused batch (one result too large, say) is split,
        so one bad outcome cannot hold back the others; a refused outcome is sent again with
        less in it (see ``_lesser``) until one is accepted."""
        delay = 0.2
        while True:
            try:
                return await self.client.report(self.worker_id, batch)
            except (ApiError, InvalidValue) as exc:
                # InvalidValue: the client's own check refused the body before sending it
                # (NUL in captured output, NaN in a result): refused, as a 4xx would be.
                if isinstance(exc, ServerError):
                    pass
                elif len(batch) > 1:
                    verdicts = []
                    for item in batch:
                        verdicts += await self._deliver([item])
                    return verdicts
                else:
                    lesser = _lesser(batch[0], str(exc)[:10_000])
                    if lesser is None:
                        log.error("task %s: report refused: %s", batch[0]["id"], exc)
                        return []
                    log.error("task %s: report refused (%s); sending it with less in it",
                              batch[0]["id"], exc)
                    batch = [lesser]
                    continue
            except BranchworkError as exc:
                log.warning("report failed (%s); sending it again in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def close(self, within: float) -> bool:
        """Send everything pending; True when it all went out within ``within`` seconds."""
        self._closing = True
        self._wake.set()
        try:
            async with asyncio.timeout(within):
                if self._runner is not None:
                    await self._runner
                while self._in_flight:
                    await asyncio.gather(*self._in_flight, return_exceptions=True)
            return True
        except TimeoutError:
            for task in list(self._in_flight):
                task.cancel()
            if self._runner is not None:
                self._runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._runner
            return False


def _lesser(item: dict[str, Any], why: str) -> dict[str, Any] | None:
    """A refused outcome with its likeliest culprit replaced, one step at a time: the captured
    output, then the result (reported as a failure), then the error; None when nothing is
    left to take out."""
    if item.get("logs") and not item["logs"].startswith(REFUSED):
        return {**item, "logs": f"{REFUSED} {why}]"}
    if item.get("outcome") == "succeeded":
        return {**item, "outcome": "failed", "result": None,
                "error": {"type": "ResultRefused", "message": why}}
    if (item.get("error") or {}).get("type") not in (None, "ResultRefused", "ReportRefused"):
        return {**item, "error": {"type": "ReportRefused", "message": why}}
    return None

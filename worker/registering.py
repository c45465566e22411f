"""Registering with the server at start, until it works or cannot work.

What is registered (the worker and its tasks, queue limits, workflows, schedules) is the
client's flow (``branchwork.worker_api.aregister_worker``); this is the worker's patience.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from branchwork.worker_api import ApiError, AsyncClient, BranchworkError, aregister_worker

from .options import WorkerOptions

log = logging.getLogger("branchwork.worker")


async def register(client: AsyncClient, registry: Any, worker_id: str, queues: Sequence[str],
                   options: WorkerOptions, stop: asyncio.Event) -> int | None:
    """None once registered; otherwise the exit code: 2 when the server refuses, 0 when
    ``stop`` is set first. An unreachable server is asked again, backing off."""
    info = options.info()
    delay = 0.5
    while not stop.is_set():
        try:
            await aregister_worker(client, registry, worker_id, queues=queues, info=info)
            return None
        except BranchworkError as exc:
            if isinstance(exc, ApiError) and exc.status < 500 and exc.status not in (408, 429):
                # A refusal (wrong token, a definition the server rejects) will not go
                # away by asking again: say so and stop, rather than retry forever.
                log.error("the server at %s refused this worker: %s", options.url, exc)
                return 2
            log.warning("cannot register with %s (%s); retrying in %.0f s",
                        options.url, exc, delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()
            delay = min(delay * 2, 10.0)
    return 0

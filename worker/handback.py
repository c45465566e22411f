"""Handing unfinished attempts back to the server, so they run again at once, elsewhere,
without spending an attempt: at a graceful stop, and on a second Ctrl-C just before exiting."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from branchwork.worker_api import AsyncClient, BranchworkError, Client

log = logging.getLogger("branchwork.worker")

# The most leases one release call carries.
CHUNK = 1000
# A second Ctrl-C hands held tasks back within this many seconds, or gives up and exits.
RELEASE_TIMEOUT = 2.0

LeaseRef = dict[str, Any]


def lease_refs(tasks: Sequence[dict[str, Any]]) -> list[LeaseRef]:
    return [{"id": t["id"], "lease_token": t["lease_token"]} for t in tasks]


async def release_all(client: AsyncClient, worker_id: str, refs: Sequence[LeaseRef]) -> None:
    """The graceful stop's release; a failure leaves them to run again after their lease."""
    released: list[Any] = []
    try:
        for start in range(0, len(refs), CHUNK):
            released += await client.release(worker_id, list(refs[start:start + CHUNK]))
        log.info("released %d unfinished task(s) to the queue", len(released))
    except BranchworkError as exc:
        log.error("release failed (%s); the tasks run again after their lease", exc)


def release_before_exit(url: str, worker_id: str, refs: Sequence[LeaseRef]) -> None:
    """The hard exit's release: one short call, no retries; whatever happens, say what it
    means for the tasks."""
    if not refs:
        return
    try:
        with Client(url=url, timeout=RELEASE_TIMEOUT, retries=0) as client:
            released = client.release(worker_id, list(refs[:CHUNK]))
        log.warning("released %d held task(s); they run again at once", len(released))
    except Exception as exc:  # exiting anyway
        log.warning("could not release %d held task(s) (%s); they run again after "
                    "their lease", len(refs), exc)

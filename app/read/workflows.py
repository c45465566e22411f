"""Workflow definitions, runs (with their nodes and channel) and the wait for a run, as the
API's GET routes and the studio's pages read them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..engine.errors import NotFound
from ..store import handlers as handler_store
from ..store import workflow_nodes as node_store
from ..store import workflows as store
from ..store.workflows import ChannelEntry, DefinitionRow, RunRow
from .paging import Db, Page, connection, fetch, found, page_of

WAIT_POLL_SECONDS = 0.2
CHANNEL_LIMIT = 10_000


async def list_definitions(db: Db, limit: int | None = None) -> list[DefinitionRow]:
    return await fetch(db, store.list_definitions, limit)


async def get_definition(db: Db, name: str) -> DefinitionRow:
    return found(await fetch(db, store.get_definition, name), "workflow", name)


async def list_runs(db: Db, *, workflow: str | None = None, status: str | None = None,
                    cursor: int | None = None, limit: int = 100) -> Page[RunRow]:
    """Runs newest first, optionally of one workflow or in one status."""
    async with connection(db) as conn:
        rows = await store.list_runs(conn, workflow_name=workflow, status=status,
                                     before_id=cursor, limit=limit)
    return page_of(rows, limit, lambda r: r["id"])


async def find_run(db: Db, run_id: int,
                   channel_limit: int = CHANNEL_LIMIT) -> dict[str, Any] | None:
    """A run with its ``nodes`` (each with its current task's status and result) and its
    ``channel``; None when there is no such run."""
    async with connection(db) as conn:
        run = await store.get_run(conn, run_id)
        if run is None:
            return None
        nodes = await node_store.views(conn, run_id)
        channel = await store.channel_list(conn, run_id, channel_limit)
        handler = await handler_store.of_run(conn, run_id)
    return {**run, "nodes": nodes, "channel": channel, "handler": handler}


async def get_run(db: Db, run_id: int) -> dict[str, Any]:
    return found(await find_run(db, run_id), "workflow run", run_id)


async def wait_run(db: Db, run_id: int, timeout_seconds: float) -> dict[str, Any]:
    """Poll until the run has finished or the timeout passes; the run as :func:`get_run`
    with ``finished``."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        async with connection(db) as conn:
            run = found(await store.get_run(conn, run_id), "workflow run", run_id)
        if run["status"] != "running" or time.monotonic() >= deadline:
            break
        await asyncio.sleep(min(WAIT_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
    view = await get_run(db, run_id)
    view["finished"] = view["status"] != "running"
    return view


async def channel_list(db: Db, run_id: int) -> list[ChannelEntry]:
    async with connection(db) as conn:
        if not await store.run_exists(conn, run_id):
            raise NotFound.of("workflow run", run_id)
        return await store.channel_list(conn, run_id, CHANNEL_LIMIT)


async def channel_get(db: Db, run_id: int, key: str) -> ChannelEntry:
    async with connection(db) as conn:
        if not await store.run_exists(conn, run_id):
            raise NotFound.of("workflow run", run_id)
        row = await store.channel_get(conn, run_id, key)
    if row is None:
        raise NotFound(f"channel key {key!r} is not set in run {run_id}",
                       {"run_id": run_id, "key": key})
    return row

"""Task trees: read a whole tree from any of its tasks, list roots, cancel, wait."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query

from ..store import trees as store
from .deps import Pool, SettingsDep
from .schemas import TaskId

router = APIRouter(prefix="/v1/trees", tags=["trees"])

MAX_TREE_NODES = 10_000
WAIT_POLL_SECONDS = 0.2


def _finished(rollup: dict[str, int]) -> bool:
    return rollup["queued"] == 0 and rollup["running"] == 0


@router.get("", summary="Root tasks, newest first, each with its tree's counts by status")
async def list_roots(
    pool: Pool,
    with_children: bool = False,
    cursor: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    async with pool.connection() as conn:
        roots = await store.list_roots(conn, before_id=cursor, limit=limit,
                                       with_children=with_children)
        counts = await store.rollups(conn, [r["id"] for r in roots])
    for root in roots:
        root["rollup"] = counts[root["id"]]
        root["total"] = sum(root["rollup"].values())
    next_cursor = roots[-1]["id"] if len(roots) == limit else None
    return {"roots": roots, "next_cursor": next_cursor}


@router.get("/{task_id}", summary="The whole tree a task belongs to, nested, with a rollup")
async def get_tree(
    task_id: TaskId, pool: Pool,
    limit: Annotated[int, Query(ge=1, le=MAX_TREE_NODES)] = MAX_TREE_NODES,
) -> dict[str, Any]:
    async with pool.connection() as conn:
        root_id = await store.root_of(conn, task_id)
        rows = await store.nodes(conn, root_id, limit)
        rollup = (await store.rollups(conn, [root_id]))[root_id]
    total = sum(rollup.values())
    return {"root_id": root_id, "rollup": rollup, "total": total, "finished": _finished(rollup),
            "truncated": total > len(rows), "tree": store.nest(rows, root_id)}


@router.post("/{task_id}/cancel",
             summary="Cancel a task and its descendants (queued now, running asked to stop)")
async def cancel_tree(task_id: TaskId, pool: Pool) -> dict[str, Any]:
    async with pool.connection() as conn:
        rows = await store.cancel_subtree(conn, task_id)
    return {
        "id": task_id,
        "cancelled": sorted(r["id"] for r in rows if r["status"] == "cancelled"),
        "cancel_requested": sorted(r["id"] for r in rows if r["status"] == "running"),
    }


@router.get("/{task_id}/wait",
            summary="Long-poll until no task of the tree is queued or running")
async def wait_tree(
    task_id: TaskId, pool: Pool, settings: SettingsDep,
    timeout_seconds: Annotated[float, Query(ge=0, le=3600)] = 30.0,
) -> dict[str, Any]:
    deadline = time.monotonic() + min(timeout_seconds, settings.max_wait_seconds)
    async with pool.connection() as conn:
        root_id = await store.root_of(conn, task_id)
    while True:
        async with pool.connection() as conn:
            rollup = (await store.rollups(conn, [root_id]))[root_id]
        if _finished(rollup) or time.monotonic() >= deadline:
            return {"root_id": root_id, "finished": _finished(rollup), "rollup": rollup}
        await asyncio.sleep(min(WAIT_POLL_SECONDS, max(0.0, deadline - time.monotonic())))

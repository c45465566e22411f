"""Task trees: read a whole tree from any of its tasks, list roots, cancel, wait."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from ...protocol import MAX_TASK_ID, MAX_TREE_NODES
from ..engine import trees as engine
from ..jsonutil import StrictJsonRoute
from ..read import trees as read
from .answers import RootsOut, TreeCancelledOut, TreeOut, TreeWaitOut
from .deps import Server, WaitTimeout
from .schemas import TaskId

router = APIRouter(prefix="/v1/trees", tags=["trees"], route_class=StrictJsonRoute)


@router.get("", response_model=RootsOut,
            summary="Root tasks, newest first, each with its tree's counts by status")
async def list_tree_roots(
    server: Server,
    with_children: bool = False,
    cursor: Annotated[int | None, Query(ge=1, le=MAX_TASK_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Tasks sent by no other task, newest first, each with its tree's size and counts."""
    page = await read.list_roots(server.pool, with_children=with_children, cursor=cursor,
                                 limit=limit)
    return {"roots": page.items, "next_cursor": page.next_cursor}


@router.get("/{task_id}", response_model=TreeOut,
            summary="The whole tree a task belongs to, nested, with a rollup")
async def get_tree(
    task_id: TaskId, server: Server,
    limit: Annotated[int, Query(ge=1, le=MAX_TREE_NODES)] = MAX_TREE_NODES,
) -> dict[str, Any]:
    """The tree of any of its tasks, from its root, nested, up to limit tasks."""
    return await read.get_tree(server.pool, task_id, limit)


@router.post("/{task_id}/cancel", response_model=TreeCancelledOut,
             summary="Cancel a task and its descendants (queued now, running asked to stop)")
async def cancel_tree(task_id: TaskId, server: Server) -> dict[str, Any]:
    """Cancel a task and every task below it: queued now, running asked to stop."""
    return await engine.cancel_subtree(server, task_id)


@router.get("/{task_id}/wait", response_model=TreeWaitOut,
            summary="Long-poll until no task of the tree is queued or running")
async def wait_tree(task_id: TaskId, server: Server,
                    timeout_seconds: WaitTimeout) -> dict[str, Any]:
    """Wait up to timeout_seconds for the tree to finish; answers its counts either way."""
    return await read.wait_tree(server.pool, task_id, timeout_seconds)

"""Task trees as readers see them: the roots list, a whole tree nested, a tree partly
expanded (the studio), and the wait until a tree has finished.

The API's GET routes and the studio's pages both read here, so the two show the same roots
in the same order (newest first) with the same paging rule.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection

from ...protocol import TASK_STATUSES
from ..store import trees as store
from ..store.trees import NodeRow
from .paging import Db, Page, connection, found, page_of

WAIT_POLL_SECONDS = 0.2


def finished(rollup: dict[str, int]) -> bool:
    return rollup["queued"] == 0 and rollup["running"] == 0


async def rollups(conn: AsyncConnection, root_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Counts by status per tree; every status is present so readers need no defaults."""
    out = {r: {s: 0 for s in TASK_STATUSES} for r in root_ids}
    if root_ids:
        for row in await store.rollups(conn, root_ids):
            out[row["root_id"]][row["status"]] = row["n"]
    return out


async def list_roots(db: Db, *, with_children: bool = False, cursor: int | None = None,
                     limit: int = 100) -> Page[dict[str, Any]]:
    """Root tasks, newest first, each with its tree's counts by status (``rollup``) and
    ``total``; ``with_children`` keeps only roots that sent tasks."""
    async with connection(db) as conn:
        rows = await store.list_roots(conn, before_id=cursor, limit=limit,
                                      with_children=with_children)
        counts = await rollups(conn, [r["id"] for r in rows])
    roots: list[dict[str, Any]] = []
    for row in rows:
        rollup = counts[row["id"]]
        roots.append({**row, "rollup": rollup, "total": sum(rollup.values())})
    return page_of(roots, limit, lambda r: r["id"])


def nest(rows: Sequence[NodeRow], root_id: int) -> dict[str, Any] | None:
    """Turn the flat id-ordered rows into one nested tree under the root."""
    by_id: dict[int, dict[str, Any]] = {}
    for row in rows:
        by_id[row["id"]] = {**row, "children": []}
    for node in by_id.values():
        parent = by_id.get(node["parent_id"]) if node["parent_id"] is not None else None
        if parent is not None:
            parent["children"].append(node)
    return by_id.get(root_id)


async def get_tree(db: Db, task_id: int, limit: int) -> dict[str, Any]:
    """The whole tree ``task_id`` belongs to (at most ``limit`` nodes), nested, with a rollup."""
    async with connection(db) as conn:
        root_id = found(await store.root_of(conn, task_id), "task", task_id)
        rows = await store.nodes(conn, root_id, limit)
        rollup = (await rollups(conn, [root_id]))[root_id]
    total = sum(rollup.values())
    return {"root_id": root_id, "rollup": rollup, "total": total, "finished": finished(rollup),
            "truncated": total > len(rows), "tree": nest(rows, root_id)}


async def wait_tree(db: Db, task_id: int, timeout_seconds: float) -> dict[str, Any]:
    """Poll until no task of the tree is queued or running, or the timeout passes."""
    deadline = time.monotonic() + timeout_seconds
    async with connection(db) as conn:
        root_id = found(await store.root_of(conn, task_id), "task", task_id)
    while True:
        async with connection(db) as conn:
            rollup = (await rollups(conn, [root_id]))[root_id]
        if finished(rollup) or time.monotonic() >= deadline:
            return {"root_id": root_id, "finished": finished(rollup), "rollup": rollup}
        await asyncio.sleep(min(WAIT_POLL_SECONDS, max(0.0, deadline - time.monotonic())))


# --- a tree partly expanded (large trees stay usable) ----------------------------------------

@dataclass
class TreeNode:
    row: dict[str, Any]  # the root's and focus's NodeRow, brief columns for the others
    child_counts: dict[str, int] = field(default_factory=dict)
    children: list[TreeNode] = field(default_factory=list)
    open: bool = False
    limit: int = 0

    @property
    def id(self) -> int:
        return int(self.row["id"])

    @property
    def child_total(self) -> int:
        return sum(self.child_counts.values())


@dataclass
class PartialTree:
    root: TreeNode
    focus_id: int
    open: dict[int, int]  # the open nodes actually shown, each with its page of children
    rollup: dict[str, int]
    by_depth: list[tuple[int, dict[str, int]]]
    total: int
    rendered: int


async def partial_tree(db: Db, task_id: int, open_nodes: dict[int, int] | None,
                       page: int) -> PartialTree | None:
    """The tree of ``task_id`` with only ``open_nodes`` expanded, each to its first ``limit``
    children; None (first visit): the root and the way down to ``task_id``, ``page`` each.
    A rollup for the whole tree, by status and by depth, comes with it."""
    async with connection(db) as conn:
        focus = await store.node(conn, task_id)
        if focus is None:
            return None
        root_id = int(focus["root_id"])
        root_row = focus if root_id == task_id else await store.node(conn, root_id)
        if root_row is None:
            return None
        state = dict(open_nodes or {})
        if open_nodes is None:
            state = {root_id: page}
            for ancestor in await store.ancestors(conn, task_id):
                state.setdefault(ancestor, page)
        root = TreeNode(dict(root_row), limit=page)
        nodes: dict[int, TreeNode] = {root_id: root}
        # Open levels are fetched top-down so that a node is only expanded once reachable.
        pending = dict(state)
        frontier = [root_id]
        rendered = 1
        while frontier:
            limits = {i: pending.pop(i) for i in frontier if i in pending}
            frontier = []
            for row in await store.children(conn, limits):
                child = TreeNode(row, limit=page)
                nodes[int(row["parent_id"])].children.append(child)
                nodes[child.id] = child
                rendered += 1
                if child.id in pending:
                    frontier.append(child.id)
            for i, limit in limits.items():
                nodes[i].open = True
                nodes[i].limit = limit
        for row in await store.child_counts(conn, list(nodes)):
            nodes[row["parent_id"]].child_counts[row["status"]] = row["n"]
        by_depth: dict[int, dict[str, int]] = {}
        rollup: dict[str, int] = {}
        for row in await store.rollup_by_depth(conn, root_id):
            rollup[row["status"]] = rollup.get(row["status"], 0) + row["n"]
            by_depth.setdefault(row["depth"], {})[row["status"]] = row["n"]
    visible = {i: v for i, v in state.items() if i in nodes and nodes[i].open}
    return PartialTree(root=root, focus_id=task_id, open=visible, rollup=rollup,
                       by_depth=sorted(by_depth.items()), total=sum(rollup.values()),
                       rendered=rendered)

"""A task tree as the studio shows it: a rollup for the whole tree, and only the open nodes
expanded, each with its first ``limit`` children, so trees of thousands of nodes stay usable.

Which nodes are open travels in the URL (``open=12,34:300`` = node 12 with the default page
of children, node 34 with 300), so a live refresh re-renders exactly what the user sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection

from . import queries

PAGE = 50
MAX_PAGE = 5000
MAX_OPEN = 200


@dataclass
class Node:
    row: dict[str, Any]
    child_counts: dict[str, int] = field(default_factory=dict)
    children: list[Node] = field(default_factory=list)
    open: bool = False
    limit: int = PAGE

    @property
    def id(self) -> int:
        return int(self.row["id"])

    @property
    def child_total(self) -> int:
        return sum(self.child_counts.values())


@dataclass
class TreeView:
    root: Node
    focus_id: int
    open: dict[int, int]
    rollup: dict[str, int]
    by_depth: list[tuple[int, dict[str, int]]]
    total: int
    rendered: int

    def open_param(self, change: dict[int, int | None]) -> str:
        """The ``open`` value with some nodes opened (a limit) or closed (None)."""
        state = dict(self.open)
        for node_id, limit in change.items():
            if limit is None:
                state.pop(node_id, None)
            else:
                state[node_id] = limit
        return format_open(state)


def parse_open(text: str | None) -> dict[int, int]:
    out: dict[int, int] = {}
    for part in (text or "").split(",")[:MAX_OPEN]:
        ident, _, limit = part.strip().partition(":")
        if not ident.isdigit() or len(ident) > 18:
            continue
        n = int(limit) if limit.isdigit() and len(limit) < 6 else PAGE
        out[int(ident)] = max(1, min(n, MAX_PAGE))
    return out


def format_open(state: dict[int, int]) -> str:
    return ",".join(str(k) if v == PAGE else f"{k}:{v}" for k, v in state.items())


ANCESTORS_SQL = """
WITH RECURSIVE up(id, parent_id, n) AS (
    SELECT id, parent_id, 0 FROM tasks WHERE id = %s
    UNION ALL
    SELECT t.id, t.parent_id, up.n + 1 FROM tasks t JOIN up ON t.id = up.parent_id
    WHERE up.n < 100
)
SELECT id FROM up WHERE id <> %s
"""


async def ancestors(conn: AsyncConnection, task_id: int) -> list[int]:
    async with conn.cursor() as cur:
        await cur.execute(ANCESTORS_SQL, (task_id, task_id))
        return [r["id"] for r in await cur.fetchall()]


async def load(conn: AsyncConnection, task_id: int, open_text: str | None) -> TreeView | None:
    focus = await queries.tree_node(conn, task_id)
    if focus is None:
        return None
    root_id = int(focus["root_id"])
    root_row = focus if root_id == task_id else await queries.tree_node(conn, root_id)
    if root_row is None:
        return None
    state = parse_open(open_text)
    if open_text is None:  # first visit: the root and the way down to the focused task
        state = {root_id: PAGE}
        for ancestor in await ancestors(conn, task_id):
            state.setdefault(ancestor, PAGE)
    root = Node(root_row)
    nodes: dict[int, Node] = {root_id: root}
    # Open levels are fetched top-down so that a node is only expanded once it is reachable.
    pending = {k: v for k, v in state.items()}
    frontier = [root_id]
    rendered = 1
    while frontier:
        limits = {i: pending.pop(i) for i in frontier if i in pending}
        frontier = []
        for row in await queries.tree_children(conn, limits):
            parent = nodes[int(row["parent_id"])]
            child = Node(row)
            parent.children.append(child)
            nodes[child.id] = child
            rendered += 1
            if child.id in pending:
                frontier.append(child.id)
        for i, limit in limits.items():
            nodes[i].open = True
            nodes[i].limit = limit
    counts = await queries.child_status_counts(conn, list(nodes))
    for node_id, node in nodes.items():
        node.child_counts = counts.get(node_id, {})
    rollup: dict[str, int] = {}
    depth_map: dict[int, dict[str, int]] = {}
    for r in await queries.tree_rollup(conn, root_id):
        rollup[r["status"]] = rollup.get(r["status"], 0) + r["n"]
        depth_map.setdefault(r["depth"], {})[r["status"]] = r["n"]
    visible = {i: v for i, v in state.items() if i in nodes and nodes[i].open}
    return TreeView(root=root, focus_id=task_id, open=visible, rollup=rollup,
                    by_depth=sorted(depth_map.items()), total=sum(rollup.values()),
                    rendered=rendered)

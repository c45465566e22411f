"""A task tree as the studio shows it: a rollup for the whole tree, and only the open nodes
expanded, each with its first ``limit`` children, so trees of thousands of nodes stay usable
(read by ``app/read/trees.partial_tree``).

Which nodes are open travels in the URL (``open=12,34:300`` = node 12 with the default page
of children, node 34 with 300), so a live refresh re-renders exactly what the user sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

from ..app.read.paging import Db
from ..app.read.trees import PartialTree, TreeNode, partial_tree

PAGE = 50
MAX_PAGE = 5000
MAX_OPEN = 200


@dataclass
class TreeView(PartialTree):
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


async def load(db: Db, task_id: int, open_text: str | None) -> TreeView | None:
    """``open_text`` None (a first visit): the root and the way down to ``task_id`` open."""
    tree = await partial_tree(db, task_id, None if open_text is None else parse_open(open_text),
                              PAGE)
    if tree is None:
        return None
    return TreeView(**{f.name: getattr(tree, f.name) for f in fields(tree)})


def walk(node: TreeNode) -> Iterator[TreeNode]:
    """Every node shown, the given one first."""
    yield node
    for child in node.children:
        yield from walk(child)

"""Task trees in SQL (statements only): a tree is every task sharing a ``root_id`` (indexed
by ``tasks_root_idx``); a node's children are found through ``tasks_parent_idx``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypedDict

from psycopg import AsyncConnection

# Always read from ``tasks t``.
NODE_COLUMNS = """t.id, t.name, t.queue, t.status, t.parent_id, t.root_id, t.depth, t.spawn_key,
    t.attempts, t.max_retries, t.workflow_run_id, t.workflow_node, t.error, t.created_at,
    t.started_at, t.finished_at, EXTRACT(EPOCH FROM (t.finished_at - t.started_at))
    AS duration_seconds"""


class NodeRow(TypedDict):
    id: int
    name: str
    queue: str
    status: str
    parent_id: int | None
    root_id: int
    depth: int
    spawn_key: str | None
    attempts: int
    max_retries: int
    workflow_run_id: int | None
    workflow_node: str | None
    error: Any
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None


SUBTREE_SQL = """
WITH RECURSIVE sub AS (
    SELECT id FROM tasks WHERE id = %(id)s
    UNION ALL
    SELECT t.id FROM tasks t JOIN sub ON t.parent_id = sub.id
)
SELECT id FROM sub
"""

ANCESTORS_SQL = """
WITH RECURSIVE up(id, parent_id, n) AS (
    SELECT id, parent_id, 0 FROM tasks WHERE id = %s
    UNION ALL
    SELECT t.id, t.parent_id, up.n + 1 FROM tasks t JOIN up ON t.id = up.parent_id
    WHERE up.n < 100
)
SELECT id FROM up WHERE id <> %s
"""

ROOTS_SQL = f"""
SELECT {NODE_COLUMNS} FROM tasks t WHERE t.parent_id IS NULL AND t.id < %(before)s
ORDER BY t.id DESC LIMIT %(limit)s
"""

# Roots that have children, newest first. A loose index scan over tasks_parent_idx visits
# each distinct parent once (not every child), newest first, and stops once ``limit`` of
# them were roots; the final ORDER BY then sorts only that short list.
ROOTS_WITH_CHILDREN_SQL = f"""
WITH RECURSIVE parents(id, found) AS (
    (SELECT parent_id, 0 FROM tasks WHERE parent_id < %(before)s
     ORDER BY parent_id DESC LIMIT 1)
    UNION ALL
    SELECT (SELECT t.parent_id FROM tasks t WHERE t.parent_id < p.id
            ORDER BY t.parent_id DESC LIMIT 1),
           p.found + (SELECT count(*)::int FROM tasks r WHERE r.id = p.id
                      AND r.parent_id IS NULL)
    FROM parents p WHERE p.id IS NOT NULL AND p.found < %(limit)s
)
SELECT {NODE_COLUMNS}
FROM parents p JOIN tasks t ON t.id = p.id
WHERE p.id IS NOT NULL AND t.parent_id IS NULL
ORDER BY t.id DESC LIMIT %(limit)s
"""

# The partly expanded tree may show thousands of nodes: only what a node line shows.
BRIEF_COLUMNS = """t.id, t.name, t.queue, t.status, t.parent_id, t.root_id, t.depth, t.attempts,
    t.created_at, t.started_at, t.finished_at"""

CHILDREN_SQL = f"""
SELECT o.ord, c.* FROM unnest(%(ids)s::bigint[], %(lims)s::int[]) WITH ORDINALITY
    AS o(id, lim, ord)
CROSS JOIN LATERAL (
    SELECT {BRIEF_COLUMNS} FROM tasks t WHERE t.parent_id = o.id ORDER BY t.id LIMIT o.lim
) c
ORDER BY o.ord, c.id
"""


async def node(conn: AsyncConnection, task_id: int) -> NodeRow | None:
    async with conn.cursor() as cur:
        await cur.execute(f"SELECT {NODE_COLUMNS} FROM tasks t WHERE t.id = %s", (task_id,))
        return await cur.fetchone()  # type: ignore[return-value]


async def root_of(conn: AsyncConnection, task_id: int) -> int | None:
    async with conn.cursor() as cur:
        await cur.execute("SELECT root_id FROM tasks WHERE id = %s", (task_id,))
        row = await cur.fetchone()
    return None if row is None else int(row["root_id"])


async def nodes(conn: AsyncConnection, root_id: int, limit: int) -> list[NodeRow]:
    """Up to ``limit`` tasks of the tree in id order (parents before their children)."""
    async with conn.cursor() as cur:
        await cur.execute(
            f"SELECT {NODE_COLUMNS} FROM tasks t WHERE t.root_id = %s ORDER BY t.id LIMIT %s",
            (root_id, limit))
        return await cur.fetchall()  # type: ignore[return-value]


async def rollups(conn: AsyncConnection, root_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Counts by status per tree (``root_id``, ``status``, ``n``)."""
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT root_id, status, count(*) AS n FROM tasks WHERE root_id = ANY(%s) "
            "GROUP BY root_id, status", (list(root_ids),))
        return await cur.fetchall()


async def rollup_by_depth(conn: AsyncConnection, root_id: int) -> list[dict[str, Any]]:
    """Counts by depth and status for a whole tree (one index range on tasks_root_idx)."""
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT depth, status, count(*) AS n FROM tasks WHERE root_id = %s "
            "GROUP BY depth, status ORDER BY depth", (root_id,))
        return await cur.fetchall()


async def list_roots(conn: AsyncConnection, *, before_id: int | None, limit: int,
                     with_children: bool) -> list[NodeRow]:
    """Root tasks newest first; ``with_children`` keeps only roots that sent tasks."""
    async with conn.cursor() as cur:
        await cur.execute(ROOTS_WITH_CHILDREN_SQL if with_children else ROOTS_SQL,
                          {"before": before_id or 2**63 - 1, "limit": limit})
        return await cur.fetchall()  # type: ignore[return-value]


async def subtree_ids(conn: AsyncConnection, task_id: int) -> list[int]:
    async with conn.cursor() as cur:
        await cur.execute(SUBTREE_SQL, {"id": task_id})
        return [r["id"] for r in await cur.fetchall()]


async def ancestors(conn: AsyncConnection, task_id: int) -> list[int]:
    """The ids above a task, up to 100 levels."""
    async with conn.cursor() as cur:
        await cur.execute(ANCESTORS_SQL, (task_id, task_id))
        return [r["id"] for r in await cur.fetchall()]


async def children(conn: AsyncConnection, limits: dict[int, int]) -> list[dict[str, Any]]:
    """The first ``limit`` children of each given node (tasks_parent_idx, one range each),
    grouped by parent in the given order, each group in id order (``BRIEF_COLUMNS``)."""
    if not limits:
        return []
    ids = list(limits)
    async with conn.cursor() as cur:
        await cur.execute(CHILDREN_SQL, {"ids": ids, "lims": [limits[i] for i in ids]})
        return await cur.fetchall()


async def child_counts(conn: AsyncConnection, parent_ids: list[int]) -> list[dict[str, Any]]:
    """Direct children of each node counted by status (``parent_id``, ``status``, ``n``)."""
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT parent_id, status, count(*) AS n FROM tasks WHERE parent_id = ANY(%s) "
            "GROUP BY parent_id, status", (parent_ids,))
        return await cur.fetchall()

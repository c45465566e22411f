"""Task trees in SQL: a tree is every task sharing a ``root_id`` (indexed by ``tasks_root_idx``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection

from ..errors import not_found
from . import tasks as task_store

NODE_COLUMNS = """id, name, queue, status, parent_id, root_id, depth, spawn_key, attempts,
    max_retries, workflow_run_id, workflow_node, error, created_at, started_at, finished_at,
    EXTRACT(EPOCH FROM (finished_at - started_at)) AS duration_seconds"""

SUBTREE_SQL = """
WITH RECURSIVE sub AS (
    SELECT id FROM tasks WHERE id = %(id)s
    UNION ALL
    SELECT t.id FROM tasks t JOIN sub ON t.parent_id = sub.id
)
SELECT id FROM sub
"""


async def root_of(conn: AsyncConnection, task_id: int) -> int:
    async with conn.cursor() as cur:
        await cur.execute("SELECT root_id FROM tasks WHERE id = %s", (task_id,))
        row = await cur.fetchone()
    if row is None:
        raise not_found("task", task_id)
    return row["root_id"]


async def nodes(conn: AsyncConnection, root_id: int, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` tasks of the tree in id order (parents before their children)."""
    async with conn.cursor() as cur:
        await cur.execute(
            f"SELECT {NODE_COLUMNS} FROM tasks WHERE root_id = %s ORDER BY id LIMIT %s",
            (root_id, limit))
        return await cur.fetchall()


async def rollups(conn: AsyncConnection, root_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Counts by status per tree; every status is present so readers need no defaults."""
    out = {r: {s: 0 for s in ("queued", "running", "succeeded", "failed", "cancelled")}
           for r in root_ids}
    if not root_ids:
        return out
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT root_id, status, count(*) AS n FROM tasks WHERE root_id = ANY(%s) "
            "GROUP BY root_id, status", (list(root_ids),))
        for row in await cur.fetchall():
            out[row["root_id"]][row["status"]] = row["n"]
    return out


async def list_roots(conn: AsyncConnection, *, before_id: int | None, limit: int,
                     with_children: bool) -> list[dict[str, Any]]:
    """Root tasks newest first; ``with_children`` keeps only roots that sent tasks."""
    where = ["parent_id IS NULL"]
    if before_id is not None:
        where.append("id < %(before)s")
    if with_children:
        where.append("EXISTS (SELECT 1 FROM tasks c WHERE c.parent_id = tasks.id)")
    async with conn.cursor() as cur:
        await cur.execute(
            f"SELECT {NODE_COLUMNS} FROM tasks WHERE {' AND '.join(where)} "
            "ORDER BY id DESC LIMIT %(limit)s", {"before": before_id, "limit": limit})
        return await cur.fetchall()


async def subtree_ids(conn: AsyncConnection, task_id: int) -> list[int]:
    async with conn.cursor() as cur:
        await cur.execute(SUBTREE_SQL, {"id": task_id})
        return [r["id"] for r in await cur.fetchall()]


async def cancel_subtree(conn: AsyncConnection, task_id: int) -> list[dict[str, Any]]:
    """Cancel a task and every descendant: queued ones now, running ones are asked to stop."""
    ids = await subtree_ids(conn, task_id)
    if not ids:
        raise not_found("task", task_id)
    return await task_store.cancel(conn, ids)


def nest(rows: Sequence[dict[str, Any]], root_id: int) -> dict[str, Any] | None:
    """Turn the flat id-ordered rows into one nested tree under the root."""
    by_id: dict[int, dict[str, Any]] = {}
    for row in rows:
        node = dict(row)
        node["children"] = []
        by_id[node["id"]] = node
    for node in by_id.values():
        parent = by_id.get(node["parent_id"]) if node["parent_id"] is not None else None
        if parent is not None:
            parent["children"].append(node)
    return by_id.get(root_id)

"""The nodes of workflow runs in SQL (statements only): one row per node and run.

Every statement here reads or writes the rows of one run by primary key (or the task index),
so advancing a run costs the size of the run, never of the task table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TypedDict

from psycopg import AsyncConnection, AsyncCursor

from .sql import dumps


class NodeState(TypedDict):
    """A node as the advance path sees it."""

    node: str
    status: str
    task: dict[str, Any]
    upstream: list[str]
    dynamic: bool
    max_cycles: int | None
    runs: int
    task_id: int | None
    directive: Any
    directive_task_id: int | None
    directive_attempt: int | None


class NodeView(TypedDict):
    """A node as readers see it: with its current task's status and outcome."""

    node: str
    status: str
    upstream: list[str]
    dynamic: bool
    runs: int
    max_cycles: int | None
    task_id: int | None
    task_name: str | None
    task_status: str | None
    attempts: int | None
    result: Any
    error: Any
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


async def insert_nodes(cur: AsyncCursor, run_id: int, nodes: Sequence[dict[str, Any]]) -> None:
    """``nodes``: ``node``, ``task`` (its spec), ``upstream``, ``max_cycles``; all pending."""
    await cur.execute(
        """INSERT INTO workflow_nodes (run_id, node, status, task, upstream, max_cycles)
           SELECT %(run)s, x.node, 'pending', x.task, ARRAY(SELECT jsonb_array_elements_text(
               x.upstream)), x.max_cycles
           FROM jsonb_to_recordset(%(nodes)s::jsonb)
               AS x(node text, task jsonb, upstream jsonb, max_cycles int)""",
        {"run": run_id, "nodes": dumps(nodes)})


async def insert_dynamic(cur: AsyncCursor, run_id: int, name: str, spec: dict[str, Any],
                         after: str) -> None:
    """A node added at run time (a directive's next task), pending after ``after``."""
    await cur.execute(
        "INSERT INTO workflow_nodes (run_id, node, status, task, upstream, dynamic, max_cycles) "
        "VALUES (%s, %s, 'pending', %s::jsonb, %s, true, 1)",
        (run_id, name, dumps(spec), [after]))


async def mark_queued(cur: AsyncCursor, run_id: int, rows: Sequence[dict[str, Any]]) -> None:
    """``rows``: ``node``, ``task_id`` (the task just sent), ``task`` (its spec)."""
    await cur.execute(
        """UPDATE workflow_nodes n SET status = 'queued', task_id = x.task_id,
               task = x.task, runs = n.runs + 1, directive = NULL, directive_task_id = NULL,
               directive_attempt = NULL, updated_at = now()
           FROM jsonb_to_recordset(%(rows)s::jsonb) AS x(node text, task_id bigint, task jsonb)
           WHERE n.run_id = %(run)s AND n.node = x.node""",
        {"run": run_id, "rows": dumps(rows)})


async def states(cur: AsyncCursor, run_id: int) -> dict[str, NodeState]:
    await cur.execute(
        "SELECT node, status, task, upstream, dynamic, max_cycles, runs, task_id, directive, "
        "directive_task_id, directive_attempt FROM workflow_nodes WHERE run_id = %s", (run_id,))
    return {r["node"]: r for r in await cur.fetchall()}  # type: ignore[misc]


async def set_status(cur: AsyncCursor, run_id: int, names: Iterable[str], status: str) -> None:
    names = sorted(set(names))
    if names:
        await cur.execute(
            "UPDATE workflow_nodes SET status = %s, updated_at = now() "
            "WHERE run_id = %s AND node = ANY(%s)", (status, run_id, names))


async def close_unfinished(cur: AsyncCursor, run_id: int, keep_task: int | None) -> None:
    """A run ended: pending nodes are skipped, queued ones (but ``keep_task``'s) cancelled."""
    await cur.execute(
        "UPDATE workflow_nodes SET status = 'skipped', updated_at = now() "
        "WHERE run_id = %s AND status = 'pending'", (run_id,))
    await cur.execute(
        "UPDATE workflow_nodes SET status = 'cancelled', updated_at = now() "
        "WHERE run_id = %s AND status = 'queued' AND task_id IS DISTINCT FROM %s",
        (run_id, keep_task))


NODE_OF_TASK_SQL = """
SELECT n.*, t.attempts, t.error AS task_error FROM workflow_nodes n
JOIN tasks t ON t.id = n.task_id WHERE n.task_id = %s AND n.run_id = %s AND n.status = 'queued'
"""


async def queued_node_of_task(cur: AsyncCursor, run_id: int,
                              task_id: int) -> dict[str, Any] | None:
    """The queued node whose current task is ``task_id``, with the task's attempts and error;
    None when that node has moved on (a stale or repeated finish)."""
    await cur.execute(NODE_OF_TASK_SQL, (task_id, run_id))
    return await cur.fetchone()


RECONCILE_SQL = """
SELECT n.run_id, n.task_id AS id, t.status
FROM workflow_nodes n JOIN tasks t ON t.id = n.task_id
WHERE n.status = 'queued' AND t.status IN ('succeeded', 'failed', 'cancelled')
ORDER BY n.run_id LIMIT %s
"""


async def finished_unapplied(conn: AsyncConnection, limit: int) -> list[dict[str, Any]]:
    """Queued nodes whose task has finished (``run_id``, ``id``, ``status``)."""
    async with conn.cursor() as cur:
        await cur.execute(RECONCILE_SQL, (limit,))
        return await cur.fetchall()


async def directive_state(cur: AsyncCursor, task_id: int,
                          lease_token: str) -> dict[str, Any] | None:
    """The node a task runs for, if it runs under ``lease_token``: its recorded directive."""
    await cur.execute(
        "SELECT t.attempts, n.node, n.directive, n.directive_task_id, n.directive_attempt, "
        "n.runs, n.max_cycles FROM tasks t JOIN workflow_nodes n ON n.task_id = t.id "
        "WHERE t.id = %s AND t.lease_token = %s::uuid AND t.status = 'running'",
        (task_id, lease_token))
    return await cur.fetchone()


async def save_directive(cur: AsyncCursor, run_id: int, node: str, directive: dict[str, Any],
                         task_id: int, attempt: int) -> None:
    await cur.execute(
        "UPDATE workflow_nodes SET directive = %s::jsonb, directive_task_id = %s, "
        "directive_attempt = %s WHERE run_id = %s AND node = %s",
        (dumps(directive), task_id, attempt, run_id, node))


async def views(conn: AsyncConnection, run_id: int) -> list[NodeView]:
    """The run's nodes with their current task's status and result (joined by primary key)."""
    async with conn.cursor() as cur:
        await cur.execute(
            """SELECT n.node, n.status, n.upstream, n.dynamic, n.runs, n.max_cycles, n.task_id,
                   n.task->>'name' AS task_name, t.status AS task_status, t.attempts,
                   t.result, t.error, t.started_at, t.finished_at, n.updated_at
               FROM workflow_nodes n LEFT JOIN tasks t ON t.id = n.task_id
               WHERE n.run_id = %s ORDER BY n.node""", (run_id,))
        return await cur.fetchall()  # type: ignore[return-value]


async def reset_for_rerun(cur: AsyncCursor, run_id: int, names: Iterable[str]) -> None:
    """Nodes that run again (a re-run from a node): pending, their cycle count and directive
    cleared; the task of their last run stays as history."""
    names = sorted(set(names))
    if names:
        await cur.execute(
            "UPDATE workflow_nodes SET status = 'pending', runs = 0, directive = NULL, "
            "directive_task_id = NULL, directive_attempt = NULL, updated_at = now() "
            "WHERE run_id = %s AND node = ANY(%s)", (run_id, names))


async def delete_nodes(cur: AsyncCursor, run_id: int, names: Iterable[str]) -> None:
    """Drop nodes of a run (dynamic ones a re-run makes again if their directive says so)."""
    names = sorted(set(names))
    if names:
        await cur.execute("DELETE FROM workflow_nodes WHERE run_id = %s AND node = ANY(%s)",
                          (run_id, names))

"""Workflow definitions, runs, node state and the run's channel, in SQL.

Advancing a run (what happens when a node's task finishes) lives in ``workflow_engine``.
Lock order everywhere: the run row first (``FOR UPDATE``), then task rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import jsonschema_rs
import orjson
from psycopg import AsyncConnection, AsyncCursor

from ..errors import ApiError, not_found
from ..jsonutil import dumps

RUN_COLUMNS = """id, workflow_name, status, args, queue, priority, timeout_seconds, deadline_at,
    idempotency_key, reason, error, created_at, finished_at"""

TASK_DEFAULTS: dict[str, Any] = {
    "priority": 5, "max_retries": 0, "retry_delay_seconds": 1.0,
    "retry_backoff": "exponential", "retry_max_delay_seconds": 3600.0, "timeout_seconds": None,
}


async def ensure_queues(cur: AsyncCursor, names: Iterable[str]) -> None:
    """Queue rows in the caller's transaction (glob claims and the studio list need them)."""
    await cur.execute("INSERT INTO queues (name) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
                      (sorted(set(names)),))


# --- args schema ------------------------------------------------------------------------------

MAX_ARG_ERRORS = 20


def _no_remote_refs(uri: str) -> Any:
    # A server must not fetch URLs named by whoever registers a workflow.
    raise ValueError(f"remote $ref {uri!r} is not fetched; keep the schema self-contained")


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    return jsonschema_rs.validator_for(orjson.loads(schema_json), retriever=_no_remote_refs)


def check_args_schema(schema: Any) -> None:
    """Refuse (422) an ``args_schema`` that is no JSON schema, so that runs never meet it."""
    if schema is None:
        return
    try:
        _validator(dumps(schema))
    except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as exc:
        raise ApiError(422, "invalid_args_schema",
                       f"args_schema is not a usable JSON schema: {str(exc).splitlines()[0]}"
                       ) from exc


def check_args(workflow: str, schema: Any, args: Any) -> None:
    """Every start of a run (API, cron, any language) meets the stored ``args_schema``."""
    if schema is None:
        return
    check_args_schema(schema)
    errors = [{"path": list(e.instance_path), "message": e.message}
              for _, e in zip(range(MAX_ARG_ERRORS), _validator(dumps(schema)).iter_errors(args),
                              strict=False)]
    if errors:
        raise ApiError(422, "invalid_args", f"the args of workflow {workflow!r} do not match "
                       f"its args_schema: {errors[0]['message']}", {"errors": errors})


# --- definitions ------------------------------------------------------------------------------

async def upsert_definition(conn: AsyncConnection, body: dict[str, Any]) -> None:
    definition = {"nodes": body["nodes"], "edges": body["edges"]}
    async with conn.cursor() as cur:
        await ensure_queues(cur, [body["queue"]] + [n["queue"] for n in body["nodes"].values()
                                                    if n.get("queue")])
        await cur.execute(
            """INSERT INTO workflows (name, queue, definition, args_schema, timeout_seconds,
                   priority)
               VALUES (%(name)s, %(queue)s, %(definition)s::jsonb, %(args_schema)s::jsonb,
                   %(timeout_seconds)s, %(priority)s)
               ON CONFLICT (name) DO UPDATE SET queue = EXCLUDED.queue,
                   definition = EXCLUDED.definition, args_schema = EXCLUDED.args_schema,
                   timeout_seconds = EXCLUDED.timeout_seconds, priority = EXCLUDED.priority,
                   updated_at = now()""",
            {"name": body["name"], "queue": body["queue"], "definition": dumps(definition),
             "args_schema": dumps(body.get("args_schema")),
             "timeout_seconds": body.get("timeout_seconds"), "priority": body["priority"]})


async def get_definition(conn: AsyncConnection, name: str) -> dict[str, Any]:
    async with conn.cursor() as cur:
        await cur.execute("SELECT * FROM workflows WHERE name = %s", (name,))
        row = await cur.fetchone()
    if row is None:
        raise not_found("workflow", name)
    return row


async def list_definitions(conn: AsyncConnection) -> list[dict[str, Any]]:
    async with conn.cursor() as cur:
        await cur.execute("SELECT * FROM workflows ORDER BY name")
        return await cur.fetchall()


# --- runs -------------------------------------------------------------------------------------

def node_spec(node: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """What a node's task is sent with: node config over the run's queue and priority."""
    spec: dict[str, Any] = {"name": node["task"], "queue": node.get("queue") or run["queue"]}
    for key, default in TASK_DEFAULTS.items():
        value = node.get(key)
        spec[key] = value if value is not None else default
    if node.get("priority") is None:
        spec["priority"] = run["priority"]
    if "args" in node and node["args"] is not None:
        spec["args"] = node["args"]
    return spec


def upstream_map(definition: dict[str, Any]) -> dict[str, list[str]]:
    ups: dict[str, list[str]] = {name: [] for name in definition["nodes"]}
    for src, dst in definition["edges"]:
        ups[dst].append(src)
    return ups


async def create_run(conn: AsyncConnection, name: str, args: Any, *, queue: str | None,
                     priority: int | None, timeout_seconds: float | None,
                     idempotency_key: str | None) -> tuple[int, bool]:
    """Insert the run and its nodes and queue the entry nodes, all in one transaction."""
    from . import workflow_engine

    wf = await get_definition(conn, name)
    check_args(name, wf["args_schema"], args)
    run_queue = queue or wf["queue"]
    run_priority = priority if priority is not None else wf["priority"]
    timeout = timeout_seconds if timeout_seconds is not None else wf["timeout_seconds"]
    async with conn.cursor() as cur:
        await cur.execute(
            """INSERT INTO workflow_runs (workflow_name, status, args, definition, queue,
                   priority, timeout_seconds, deadline_at, idempotency_key)
               VALUES (%(name)s, 'running', %(args)s::jsonb, %(definition)s::jsonb, %(queue)s,
                   %(priority)s, %(timeout)s,
                   now() + make_interval(secs => %(timeout)s), %(key)s)
               ON CONFLICT (workflow_name, idempotency_key) WHERE idempotency_key IS NOT NULL
               DO NOTHING RETURNING id""",
            {"name": name, "args": dumps(args), "definition": dumps(wf["definition"]),
             "queue": run_queue, "priority": run_priority, "timeout": timeout,
             "key": idempotency_key})
        row = await cur.fetchone()
        if row is None:
            await cur.execute("SELECT id FROM workflow_runs WHERE workflow_name = %s "
                              "AND idempotency_key = %s", (name, idempotency_key))
            existing = await cur.fetchone()
            assert existing is not None
            return existing["id"], True
        run_id = row["id"]
        run = {"id": run_id, "queue": run_queue, "priority": run_priority, "args": args}
        definition = wf["definition"]
        ups = upstream_map(definition)
        nodes = [
            {"node": n, "task": node_spec(cfg, run), "upstream": ups[n],
             "max_cycles": cfg.get("max_cycles") or 1}
            for n, cfg in definition["nodes"].items()
        ]
        await ensure_queues(cur, [n["task"]["queue"] for n in nodes])
        await cur.execute(
            """INSERT INTO workflow_nodes (run_id, node, status, task, upstream, max_cycles)
               SELECT %(run)s, x.node, 'pending', x.task, ARRAY(SELECT jsonb_array_elements_text(
                   x.upstream)), x.max_cycles
               FROM jsonb_to_recordset(%(nodes)s::jsonb)
                   AS x(node text, task jsonb, upstream jsonb, max_cycles int)""",
            {"run": run_id, "nodes": dumps(nodes)})
        await workflow_engine.queue_nodes(
            cur, run, [(n["node"], n["task"]) for n in nodes if not n["upstream"]])
    return run_id, False


async def get_run(conn: AsyncConnection, run_id: int) -> dict[str, Any]:
    async with conn.cursor() as cur:
        await cur.execute(f"SELECT {RUN_COLUMNS} FROM workflow_runs WHERE id = %s", (run_id,))
        row = await cur.fetchone()
    if row is None:
        raise not_found("workflow run", run_id)
    return row


async def run_nodes(conn: AsyncConnection, run_id: int) -> list[dict[str, Any]]:
    """The run's nodes with their current task's status and result (joined by primary key)."""
    async with conn.cursor() as cur:
        await cur.execute(
            """SELECT n.node, n.status, n.upstream, n.dynamic, n.runs, n.max_cycles, n.task_id,
                   n.task->>'name' AS task_name, t.status AS task_status, t.attempts,
                   t.result, t.error, t.started_at, t.finished_at, n.updated_at
               FROM workflow_nodes n LEFT JOIN tasks t ON t.id = n.task_id
               WHERE n.run_id = %s ORDER BY n.node""", (run_id,))
        return await cur.fetchall()


async def list_runs(conn: AsyncConnection, *, workflow_name: str | None, status: str | None,
                    before_id: int | None, limit: int) -> list[dict[str, Any]]:
    where, params = [], {"limit": limit, "name": workflow_name, "status": status,
                         "before": before_id}
    if workflow_name is not None:
        where.append("workflow_name = %(name)s")
    if status is not None:
        where.append("status = %(status)s")
    if before_id is not None:
        where.append("id < %(before)s")
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    async with conn.cursor() as cur:
        await cur.execute(f"SELECT {RUN_COLUMNS} FROM workflow_runs {clause} "
                          "ORDER BY id DESC LIMIT %(limit)s", params)
        return await cur.fetchall()


async def lock_run(cur: AsyncCursor, run_id: int) -> dict[str, Any]:
    await cur.execute(
        "SELECT id, status, args, queue, priority, definition FROM workflow_runs "
        "WHERE id = %s FOR UPDATE", (run_id,))
    row = await cur.fetchone()
    if row is None:
        raise not_found("workflow run", run_id)
    return row


async def lock_runs_of_tasks(cur: AsyncCursor, task_ids: Sequence[int]) -> list[int]:
    """Lock, in id order, the runs the given tasks belong to: callers do this before they
    update those tasks, so the report path and the advancer take locks in the same order."""
    await cur.execute(
        # No "workflow_run_id IS NOT NULL" here: it can tempt the planner into the partial
        # run index (all workflow tasks) instead of the primary key (only these tasks).
        "SELECT r.id FROM workflow_runs r WHERE r.id IN (SELECT t.workflow_run_id FROM tasks t "
        "WHERE t.id = ANY(%s)) ORDER BY r.id FOR UPDATE OF r",
        (list(task_ids),))
    return [r["id"] for r in await cur.fetchall()]


# --- channel ----------------------------------------------------------------------------------

async def _check_run(cur: AsyncCursor, run_id: int) -> None:
    await cur.execute("SELECT 1 FROM workflow_runs WHERE id = %s", (run_id,))
    if await cur.fetchone() is None:
        raise not_found("workflow run", run_id)


async def channel_get(conn: AsyncConnection, run_id: int, key: str) -> dict[str, Any]:
    async with conn.cursor() as cur:
        await _check_run(cur, run_id)
        await cur.execute("SELECT key, value, updated_at FROM workflow_channel "
                          "WHERE run_id = %s AND key = %s", (run_id, key))
        row = await cur.fetchone()
    if row is None:
        raise ApiError(404, "not_found", f"channel key {key!r} is not set in run {run_id}",
                       {"run_id": run_id, "key": key})
    return row


async def channel_list(conn: AsyncConnection, run_id: int) -> list[dict[str, Any]]:
    async with conn.cursor() as cur:
        await _check_run(cur, run_id)
        await cur.execute("SELECT key, value, updated_at FROM workflow_channel "
                          "WHERE run_id = %s ORDER BY key LIMIT 10000", (run_id,))
        return await cur.fetchall()


async def channel_set(conn: AsyncConnection, run_id: int, key: str, value: Any) -> None:
    async with conn.cursor() as cur:
        await _check_run(cur, run_id)
        await cur.execute(
            "INSERT INTO workflow_channel (run_id, key, value) VALUES (%s, %s, %s::jsonb) "
            "ON CONFLICT (run_id, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
            (run_id, key, dumps(value)))


async def channel_increment(conn: AsyncConnection, run_id: int, key: str, by: int) -> int:
    """Atomic add to an integer value (absent counts as 0)."""
    async with conn.cursor() as cur:
        await _check_run(cur, run_id)
        await cur.execute(
            """INSERT INTO workflow_channel (run_id, key, value)
               VALUES (%(run)s, %(key)s, to_jsonb(%(by)s::bigint))
               ON CONFLICT (run_id, key) DO UPDATE
                 SET value = to_jsonb((workflow_channel.value::text)::numeric + %(by)s),
                     updated_at = now()
                 WHERE jsonb_typeof(workflow_channel.value) = 'number'
                   AND workflow_channel.value::text ~ '^-?[0-9]+$'
               RETURNING value""", {"run": run_id, "key": key, "by": by})
        row = await cur.fetchone()
    if row is None:
        raise ApiError(409, "not_an_integer",
                       f"channel key {key!r} of run {run_id} does not hold an integer",
                       {"run_id": run_id, "key": key})
    return int(row["value"])

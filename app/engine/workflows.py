"""Registering workflow definitions, and the ``args_schema`` check every run start meets.

The definition is data (nodes, edges, node config); its DAG shape is checked where it is
parsed (``branchwork.protocol.dag_problem``, in the API schema), its args schema here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import jsonschema_rs
import orjson

from ..store import handlers as handler_store
from ..store import queues as queue_store
from ..store import triggers as store_triggers
from ..store import workflows as store
from ..store.sql import dumps
from .errors import InvalidInput
from .payload import check_size
from .tx import transaction

if TYPE_CHECKING:
    from ..state import ServerState

MAX_ARG_ERRORS = 20

# What a node's (or a directive's) task is sent with when neither it nor the run says.
TASK_DEFAULTS: dict[str, Any] = {
    "priority": 5, "max_retries": 0, "retry_delay_seconds": 1.0,
    "retry_backoff": "exponential", "retry_max_delay_seconds": 3600.0, "timeout_seconds": None,
}


def _no_remote_refs(uri: str) -> Any:
    # A server must not fetch URLs named by whoever registers a workflow.
    raise ValueError(f"remote $ref {uri!r} is not fetched; keep the schema self-contained")


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    return jsonschema_rs.validator_for(orjson.loads(schema_json), retriever=_no_remote_refs)


def check_args_schema(schema: Any) -> None:
    """Refuse an ``args_schema`` that is no JSON schema, so that runs never meet it."""
    if schema is None:
        return
    try:
        _validator(dumps(schema))
    except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as exc:
        raise InvalidInput(
            f"args_schema is not a usable JSON schema: {str(exc).splitlines()[0]}",
            code="invalid_args_schema") from exc


def check_args(workflow: str, schema: Any, args: Any) -> None:
    """Every start of a run (API, cron, any language) meets the stored ``args_schema``."""
    if schema is None:
        return
    check_args_schema(schema)
    errors = [{"path": list(e.instance_path), "message": e.message}
              for _, e in zip(range(MAX_ARG_ERRORS), _validator(dumps(schema)).iter_errors(args),
                              strict=False)]
    if errors:
        raise InvalidInput(f"the args of workflow {workflow!r} do not match its args_schema: "
                           f"{errors[0]['message']}", {"errors": errors}, code="invalid_args")


def task_spec(options: dict[str, Any], name: str, queue: str | None) -> dict[str, Any]:
    """A task spec with every unset option filled from :data:`TASK_DEFAULTS`."""
    spec: dict[str, Any] = {"name": name, "queue": queue}
    for key, default in TASK_DEFAULTS.items():
        value = options.get(key)
        spec[key] = value if value is not None else default
    return spec


async def register(state: ServerState, name: str, *, queue: str, priority: int,
                   timeout_seconds: float | None, args_schema: Any,
                   nodes: dict[str, dict[str, Any]], edges: list[list[str]],
                   handlers: dict[str, dict[str, Any]] | None = None,
                   on_events: list[str] | None = None) -> None:
    """Create or replace a definition; ``nodes`` maps each node name to its config (the
    DAG shape was checked where it was parsed). ``on_events``: the event keys that start a
    run (``triggers.py``), replacing the earlier ones. ``handlers``: the ``on_failure`` /
    ``on_success`` task specs (``handlers.py``), whose tasks must be known."""
    for node, cfg in nodes.items():
        check_size(cfg.get("args"), state.settings.max_payload_bytes, f"args of node {node}")
    check_args_schema(args_schema)
    handlers = handlers or {}
    queues = [queue] + [n["queue"] for n in [*nodes.values(), *handlers.values()]
                        if n.get("queue")]
    definition: dict[str, Any] = {"nodes": nodes, "edges": edges}
    if handlers:
        definition["handlers"] = handlers
    async with transaction(state.pool) as cur:
        await check_handlers(cur, name, nodes, handlers)
        await queue_store.ensure(cur, queues)
        await store.upsert_definition(cur, name, queue, definition, args_schema,
                                      timeout_seconds, priority)
        await store_triggers.replace(cur, "workflow", {name: on_events or []})


async def check_handlers(cur: Any, name: str, nodes: dict[str, dict[str, Any]],
                         handlers: dict[str, dict[str, Any]]) -> None:
    """A handler names a task a node of this workflow runs, or one a worker registered:
    anything else would only fail at 3 a.m., when a run ends."""
    wanted = {h["task"] for h in handlers.values()} - {n["task"] for n in nodes.values()}
    unknown = sorted(wanted - await handler_store.known_tasks(cur, sorted(wanted)))
    if unknown:
        kinds = [k for k, h in handlers.items() if h["task"] in unknown]
        raise InvalidInput(f"workflow {name!r}: {' and '.join(kinds)} names the unknown "
                           f"task {unknown[0]!r} (neither a node's task nor one a worker "
                           "registered)", {"tasks": unknown}, code="unknown_task")

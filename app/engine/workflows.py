"""Registering workflow definitions, and the ``args_schema`` check every run start meets.

The definition is data (nodes, edges, node config); its DAG shape is checked where it is
parsed (``branchwork.protocol.dag_problem``, in the API schema), its args schema here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import jsonschema_rs
import orjson

from ..store import queues as queue_store
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
                   nodes: dict[str, dict[str, Any]], edges: list[list[str]]) -> None:
    """Create or replace a definition; ``nodes`` maps each node name to its config (the
    DAG shape was checked where it was parsed)."""
    for node, cfg in nodes.items():
        check_size(cfg.get("args"), state.settings.max_payload_bytes, f"args of node {node}")
    check_args_schema(args_schema)
    queues = [queue] + [n["queue"] for n in nodes.values() if n.get("queue")]
    async with transaction(state.pool) as cur:
        await queue_store.ensure(cur, queues)
        await store.upsert_definition(cur, name, queue, {"nodes": nodes, "edges": edges},
                                      args_schema, timeout_seconds, priority)

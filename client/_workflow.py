"""DAG workflow definitions: what ``@reg.workflow`` returns, and how it starts a run.

The definition is sent to the server as data (``PUT /v1/workflows/{name}``, once per client)
before the first run; the server advances runs. Nothing here decides what runs next. The DSL
is ``_dsl.py``, the run handle ``_workflow_run.py``, the node's view ``_workflow_context.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

from . import _calls as calls
from . import protocol
from ._dsl import collect, handler_spec
from ._exceptions import DefinitionError, InvalidArgs
from ._flow import Flow, Once
from ._http import AsyncClient, Client
from ._options import check_cron, check_event_keys, check_options
from ._origin import Origin
from ._workflow_run import WorkflowRun

RUN_OPTIONS = frozenset({"queue", "priority", "timeout_seconds", "idempotency_key"})

# Workflows declared in this process, by name: a node reads its run's args as the declared
# model through it (``get_workflow_context().workflow_args``).
DECLARED: dict[str, Workflow] = {}


def _check_run_options(options: Mapping[str, Any], error: Callable[[str], Exception]) -> None:
    unknown = set(options) - RUN_OPTIONS
    if unknown:
        raise error(f"unknown workflow options {sorted(unknown)}; known: {sorted(RUN_OPTIONS)}")
    q = options.get("queue")
    if q is not None and not protocol.is_queue_name(q):
        raise error(f"invalid queue name {q!r}")
    check_options({k: v for k, v in options.items() if k != "queue"}, error)


class _RunSender:
    workflow: Workflow
    options: dict[str, Any]

    def _body(self, args: Any, fields: Mapping[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"args": self.workflow.dump_args(args, fields)}
        body.update({k: v for k, v in self.options.items() if v is not None})
        return body

    def _starting(self, body: Mapping[str, Any]) -> Flow[Mapping[str, Any]]:
        yield from self.workflow.registering()
        return (yield calls.start_run(self.workflow.name, body))

    def _handle(self, out: Mapping[str, Any], origin: Origin) -> WorkflowRun:
        return WorkflowRun(out["id"], workflow_name=self.workflow.name,
                           duplicate=out["duplicate"], client=origin.client,
                           async_client=origin.async_client)

    def send(self, args: Any = None, /, **fields: Any) -> WorkflowRun:
        """Start a run (registering the definition first, once per process and client)."""
        origin = Origin()
        return self._handle(origin.run(self._starting(self._body(args, fields))), origin)

    async def asend(self, args: Any = None, /, **fields: Any) -> WorkflowRun:
        origin = Origin()
        return self._handle(await origin.arun(self._starting(self._body(args, fields))), origin)


class Workflow(_RunSender):
    """What ``@registry.workflow`` returns. ``send(args)`` starts a run; ``with_config``
    overrides queue, priority, timeout_seconds or idempotency_key for one send."""

    def __init__(self, fn: Callable[[], Any], *, registry: Any, name: str | None = None,
                 queue: str = protocol.DEFAULT_QUEUE, priority: int = protocol.DEFAULT_PRIORITY,
                 timeout_seconds: float | None = None,
                 args_schema: type[BaseModel] | None = None, cron: str | None = None,
                 workflow_arg_schema: type[BaseModel] | None = None,
                 on_failure: Any = None, on_success: Any = None,
                 on_events: list[str] | None = None) -> None:
        self.fn = fn
        self.registry = registry  # the Registry that defined it
        self.name = name or fn.__name__
        if workflow_arg_schema is not None:  # Hyrex's name for it
            if args_schema is not None and args_schema is not workflow_arg_schema:
                raise DefinitionError(f"workflow {self.name!r}: give args_schema or "
                                      "workflow_arg_schema, not both")
            args_schema = workflow_arg_schema
        if not protocol.is_task_name(self.name):
            raise DefinitionError(f"invalid workflow name {self.name!r}")
        _check_run_options({"queue": queue, "priority": priority,
                            "timeout_seconds": timeout_seconds}, DefinitionError)
        if args_schema is not None and not (isinstance(args_schema, type)
                                            and issubclass(args_schema, BaseModel)):
            raise DefinitionError(f"workflow {self.name!r}: args_schema must be a pydantic "
                                  "model class")
        self.queue = queue
        self.priority = priority
        self.timeout_seconds = timeout_seconds
        self.args_schema = args_schema
        self.cron = cron
        if cron is not None:
            check_cron(cron, f"workflow {self.name!r}")
            if args_schema is not None and any(f.is_required()
                                               for f in args_schema.model_fields.values()):
                raise DefinitionError(f"workflow {self.name!r}: a cron workflow is started "
                                      "without arguments, so every field of args_schema "
                                      "needs a default")
        # Event keys that start a run, with the event's payload as its args.
        self.on_events = check_event_keys(on_events, f"workflow {self.name!r}")
        self.workflow = self
        self.options: dict[str, Any] = {}
        # Tasks queued once when a run ends: failed (a node, the timeout, a cancel) or
        # succeeded; each gets the run's outcome as its args (``RunOutcome``).
        self.handlers = {kind: spec for kind, spec in (
            ("on_failure", handler_spec(on_failure, "on_failure", self.name)),
            ("on_success", handler_spec(on_success, "on_success", self.name)))
            if spec is not None}
        graph = collect(self.name, fn)
        self.nodes = graph.nodes
        self.edges = graph.edges
        DECLARED[self.name] = self
        self.__doc__ = fn.__doc__

    def __repr__(self) -> str:
        return f"<Workflow {self.name} nodes={list(self.nodes)}>"

    def with_config(self, **options: Any) -> ConfiguredWorkflow:
        _check_run_options(options, lambda m: InvalidArgs(self.name, m))
        return ConfiguredWorkflow(self, options)

    def dump_args(self, args: Any, fields: Mapping[str, Any]) -> Any:
        if self.args_schema is None:
            if fields:
                if args is not None:
                    raise InvalidArgs(self.name, "give args or keyword fields, not both")
                return dict(fields)
            return args
        try:
            if isinstance(args, self.args_schema) and not fields:
                model = args
            elif args is None:
                model = self.args_schema.model_validate(dict(fields))
            else:
                model = self.args_schema.model_validate(args)
        except Exception as exc:
            errors = getattr(exc, "errors", None)
            raise InvalidArgs(self.name, errors() if callable(errors) else str(exc)) from exc
        return model.model_dump(mode="json")

    def definition(self) -> dict[str, Any]:
        """The body of ``PUT /v1/workflows/{name}``."""
        nodes = [{"name": n, **cfg} for n, cfg in self.nodes.items()]
        body: dict[str, Any] = {"name": self.name, "queue": self.queue,
                                "priority": self.priority, "nodes": nodes,
                                "edges": [list(e) for e in self.edges]}
        if self.timeout_seconds is not None:
            body["timeout_seconds"] = self.timeout_seconds
        if self.args_schema is not None:
            body["args_schema"] = self.args_schema.model_json_schema()
        body.update(self.handlers)
        if self.on_events:
            body["on_events"] = list(self.on_events)
        return body

    def schedule(self) -> dict[str, Any] | None:
        if self.cron is None:
            return None
        return {"name": f"workflow:{self.name}", "kind": "workflow", "target": self.name,
                "cron": self.cron, "args": self.dump_args(None, {}) if self.args_schema
                else None}

    def registering(self) -> Flow[None]:
        """Write the definition to the server, once per client."""
        yield Once(("workflow", self.name),
                   lambda: calls.put_workflow(self.name, self.definition()))

    def ensure_registered(self, client: Client) -> None:
        client.run(self.registering())

    async def aensure_registered(self, client: AsyncClient) -> None:
        await client.run(self.registering())

    def queues(self) -> set[str]:
        """Every queue a node of this workflow may run on (for the worker to listen on)."""
        return {self.queue} | {cfg["queue"] for cfg in [*self.nodes.values(),
                                                        *self.handlers.values()]
                               if "queue" in cfg}


class ConfiguredWorkflow(_RunSender):
    def __init__(self, workflow: Workflow, options: dict[str, Any]) -> None:
        self.workflow = workflow
        self.options = options

    def with_config(self, **options: Any) -> ConfiguredWorkflow:
        return self.workflow.with_config(**{**self.options, **options})

"""DAG workflows in the client: ``@reg.workflow`` and ``a >> [b, c] >> d``, the run handle,
and ``get_workflow_context()`` with which a node task changes the run's course.

The definition is sent to the server as data (``PUT /v1/workflows/{name}``); the server
advances runs. Nothing here decides what runs next.

Exceptions (subclasses of ``BranchworkError``)::

    WorkflowError           .run_id .run (the run as last read)
    ├── WorkflowFailed      a node failed for good: .node .task_id .error
    └── WorkflowCancelled   cancelled (API, cancel_workflow(), or its timeout: .reason)
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from pydantic import BaseModel

from ._calls import Call, _segment
from ._config import default_async_client, default_client
from ._context import TaskContext, get_context
from ._exceptions import BranchworkError, DefinitionError, InvalidArgs, WaitTimeout
from ._task import QUEUE_NAME, TASK_NAME, ConfiguredTask, TaskDefinition, check_options
from ._trees import awaiting, waiting

if TYPE_CHECKING:
    from ._http import AsyncClient, Client
    from ._registry import Registry

NODE_OPTIONS = frozenset({"queue", "priority", "max_retries", "timeout_seconds"})
RUN_OPTIONS = frozenset({"queue", "priority", "timeout_seconds", "idempotency_key"})
TERMINAL_RUN = frozenset({"succeeded", "failed", "cancelled"})
MAX_NODES = 1000


class WorkflowError(BranchworkError):
    def __init__(self, message: str, run_id: int, run: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.run = run or {}
        self.reason: str | None = self.run.get("reason")


class WorkflowFailed(WorkflowError):
    """A node failed for good; its downstream nodes were skipped."""

    def __init__(self, run_id: int, run: dict[str, Any] | None = None) -> None:
        error = (run or {}).get("error") or {}
        self.node: str | None = error.get("node")
        self.task_id: int | None = error.get("task_id")
        self.error: dict[str, Any] = error.get("error") or {}
        super().__init__(f"workflow run {run_id} failed at node {self.node}: "
                         f"{self.error.get('type')}: {self.error.get('message')}", run_id, run)


class WorkflowCancelled(WorkflowError):
    """The run was cancelled: through the API, by ``cancel_workflow()`` or by its timeout."""

    def __init__(self, run_id: int, run: dict[str, Any] | None = None,
                 message: str | None = None) -> None:
        reason = (run or {}).get("reason")
        super().__init__(message or f"workflow run {run_id} was cancelled ({reason})",
                         run_id, run)


# -- building the graph ------------------------------------------------------------------------

@dataclass
class _Graph:
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    sources: dict[str, Any] = field(default_factory=dict)


_building: ContextVar[_Graph | None] = ContextVar("branchwork_workflow_graph", default=None)


class Node:
    """A task as a workflow node with node-only options: ``node(loop_task, max_cycles=5)``.
    ``max_cycles`` is how many times the node may run in one run (``next_iteration`` and
    ``next_task(..., goto=True)`` into it are refused past it)."""

    def __init__(self, task: TaskDefinition | ConfiguredTask, *, max_cycles: int = 1,
                 name: str | None = None) -> None:
        if not isinstance(task, TaskDefinition | ConfiguredTask):
            raise DefinitionError(f"a workflow node is a task, not {task!r}")
        if isinstance(max_cycles, bool) or not isinstance(max_cycles, int) \
                or not 1 <= max_cycles <= 100_000:
            raise DefinitionError(f"max_cycles must be an int from 1 to 100000, not "
                                  f"{max_cycles!r}")
        self.task = task
        self.max_cycles = max_cycles
        self.name = name or task.definition.name
        if not TASK_NAME.match(self.name) or len(self.name) > 200:
            raise DefinitionError(f"invalid node name {self.name!r}")

    def __rshift__(self, other: Any) -> _Chain:
        return chain(self, other)

    def __rrshift__(self, other: Any) -> _Chain:
        return chain(other, self)

    def __repr__(self) -> str:
        return f"<Node {self.name} max_cycles={self.max_cycles}>"


def node(task: TaskDefinition | ConfiguredTask, *, max_cycles: int = 1,
         name: str | None = None) -> Node:
    """Wrap a task to give it node options (``max_cycles``, a node ``name``)."""
    return Node(task, max_cycles=max_cycles, name=name)


@dataclass
class _Chain:
    heads: list[Node]
    tails: list[Node]

    def __rshift__(self, other: Any) -> _Chain:
        return chain(self, other)

    def __rrshift__(self, other: Any) -> _Chain:
        return chain(other, self)


def _as_nodes(item: Any) -> tuple[list[Node], list[Node]]:
    if isinstance(item, _Chain):
        return item.heads, item.tails
    if isinstance(item, Node):
        return [item], [item]
    if isinstance(item, TaskDefinition | ConfiguredTask):
        n = Node(item)
        return [n], [n]
    if isinstance(item, list | tuple) and item:
        heads: list[Node] = []
        tails: list[Node] = []
        for sub in item:
            h, t = _as_nodes(sub)
            heads += h
            tails += t
        return heads, tails
    raise DefinitionError(f"cannot chain {item!r} with >>: use tasks, node(...) or lists")


def _node_config(n: Node, graph: _Graph) -> None:
    task = n.task
    options = dict(task.options) if isinstance(task, ConfiguredTask) else {}
    unknown = set(options) - NODE_OPTIONS
    if unknown:
        raise DefinitionError(f"node {n.name}: {sorted(unknown)} cannot be set on a workflow "
                              f"node (only {sorted(NODE_OPTIONS)})")
    d = task.definition
    cfg: dict[str, Any] = {"task": d.name, "max_cycles": n.max_cycles,
                           "max_retries": options.get("max_retries", d.max_retries)}
    for key in ("queue", "priority"):
        if options.get(key) is not None:
            cfg[key] = options[key]
    timeout = options.get("timeout_seconds", d.timeout_seconds)
    if timeout is not None:
        cfg["timeout_seconds"] = timeout
    for key in ("retry_backoff", "retry_delay_seconds", "retry_max_delay_seconds"):
        if getattr(d, key, None) is not None:
            cfg[key] = getattr(d, key)
    if not d.spec.signature.parameters:
        cfg["args"] = {}  # a task without parameters: the run's args would not fit it
    previous = graph.nodes.get(n.name)
    if previous is not None and graph.sources[n.name] is not task and previous != cfg:
        raise DefinitionError(f"node {n.name!r} appears twice with different settings; give "
                              "one a name with node(task, name=...)")
    graph.nodes[n.name] = cfg
    graph.sources[n.name] = task


def chain(left: Any, right: Any) -> _Chain:
    """``left >> right``: every tail of ``left`` feeds every head of ``right``."""
    graph = _building.get()
    if graph is None:
        raise DefinitionError("`>>` declares workflow edges: use it inside a function "
                              "decorated with @registry.workflow")
    l_heads, l_tails = _as_nodes(left)
    r_heads, r_tails = _as_nodes(right)
    for n in l_heads + l_tails + r_heads + r_tails:
        _node_config(n, graph)
    for src in l_tails:
        for dst in r_heads:
            if src.name == dst.name:
                raise DefinitionError(f"node {src.name!r} cannot follow itself; use "
                                      "next_iteration() for loops")
            if (src.name, dst.name) not in graph.edges:
                graph.edges.append((src.name, dst.name))
    return _Chain(l_heads, r_tails)


def _check_acyclic(name: str, graph: _Graph) -> None:
    down: dict[str, list[str]] = {n: [] for n in graph.nodes}
    indegree = dict.fromkeys(graph.nodes, 0)
    for src, dst in graph.edges:
        down[src].append(dst)
        indegree[dst] += 1
    ready = [n for n, d in indegree.items() if d == 0]
    seen = 0
    while ready:
        n = ready.pop()
        seen += 1
        for nxt in down[n]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
    if seen != len(graph.nodes):
        raise DefinitionError(f"workflow {name!r}: its edges form a cycle")


# -- the workflow definition ---------------------------------------------------------------

_registered: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


class _RunSender:
    workflow: Workflow
    options: dict[str, Any]

    def _body(self, args: Any, fields: Mapping[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"args": self.workflow.dump_args(args, fields)}
        body.update({k: v for k, v in self.options.items() if v is not None})
        return body

    def send(self, args: Any = None, /, **fields: Any) -> WorkflowRun:
        """Start a run (registering the definition first, once per process and client)."""
        body = self._body(args, fields)
        client = default_client()
        self.workflow.ensure_registered(client)
        out = client.execute(Call("POST", f"/v1/workflows/{self.workflow.name}/runs",
                                  json=body, safe=bool(body.get("idempotency_key"))))
        return WorkflowRun(out["id"], workflow_name=self.workflow.name,
                           duplicate=out["duplicate"])

    async def asend(self, args: Any = None, /, **fields: Any) -> WorkflowRun:
        body = self._body(args, fields)
        client = default_async_client()
        await self.workflow.aensure_registered(client)
        out = await client.execute(Call("POST", f"/v1/workflows/{self.workflow.name}/runs",
                                        json=body, safe=bool(body.get("idempotency_key"))))
        return WorkflowRun(out["id"], workflow_name=self.workflow.name,
                           duplicate=out["duplicate"])


def _check_run_options(options: Mapping[str, Any], error: Callable[[str], Exception]) -> None:
    unknown = set(options) - RUN_OPTIONS
    if unknown:
        raise error(f"unknown workflow options {sorted(unknown)}; known: {sorted(RUN_OPTIONS)}")
    q = options.get("queue")
    if q is not None and (not isinstance(q, str) or not QUEUE_NAME.match(q) or len(q) > 100):
        raise error(f"invalid queue name {q!r}")
    check_options({k: v for k, v in options.items() if k != "queue"}, error)  # type: ignore[arg-type]


class Workflow(_RunSender):
    """What ``@registry.workflow`` returns. ``send(args)`` starts a run; ``with_config``
    overrides queue, priority, timeout_seconds or idempotency_key for one send."""

    def __init__(self, fn: Callable[[], Any], *, registry: Registry, name: str | None = None,
                 queue: str = "default", priority: int = 5,
                 timeout_seconds: float | None = None,
                 args_schema: type[BaseModel] | None = None, cron: str | None = None) -> None:
        self.fn = fn
        self.registry = registry
        self.name = name or fn.__name__
        if not isinstance(self.name, str) or not TASK_NAME.match(self.name) \
                or len(self.name) > 200:
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
            from croniter import croniter

            if not isinstance(cron, str) or not croniter.is_valid(cron):
                raise DefinitionError(f"workflow {self.name!r}: invalid cron expression "
                                      f"{cron!r}")
            if args_schema is not None and any(f.is_required()
                                               for f in args_schema.model_fields.values()):
                raise DefinitionError(f"workflow {self.name!r}: a cron workflow is started "
                                      "without arguments, so every field of args_schema "
                                      "needs a default")
        self.workflow = self
        self.options: dict[str, Any] = {}
        graph = _Graph()
        token = _building.set(graph)
        try:
            returned = fn()
        finally:
            _building.reset(token)
        if returned is not None:
            for n in _as_nodes(returned)[0] + _as_nodes(returned)[1]:
                _node_config(n, graph)
        if not graph.nodes:
            raise DefinitionError(f"workflow {self.name!r} has no nodes: chain tasks with >> "
                                  "(or return a task) in its body")
        if len(graph.nodes) > MAX_NODES:
            raise DefinitionError(f"workflow {self.name!r} has {len(graph.nodes)} nodes; the "
                                  f"server takes at most {MAX_NODES}")
        _check_acyclic(self.name, graph)
        self.nodes = graph.nodes
        self.edges = graph.edges
        self.__doc__ = fn.__doc__

    def __repr__(self) -> str:
        return f"<Workflow {self.name} nodes={list(self.nodes)}>"

    def with_config(self, **options: Any) -> ConfiguredWorkflow:
        _check_run_options(options, lambda m: InvalidArgs(self.name, m))  # type: ignore[arg-type]
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
        return body

    def schedule(self) -> dict[str, Any] | None:
        if self.cron is None:
            return None
        return {"name": f"workflow:{self.name}", "kind": "workflow", "target": self.name,
                "cron": self.cron, "args": self.dump_args(None, {}) if self.args_schema
                else None}

    def _register_call(self) -> Call:
        return Call("PUT", f"/v1/workflows/{self.name}", json=self.definition(), safe=True)

    def ensure_registered(self, client: Client) -> None:
        done = _registered.setdefault(client, set())
        if self.name not in done:
            client.execute(self._register_call())
            done.add(self.name)

    async def aensure_registered(self, client: AsyncClient) -> None:
        done = _registered.setdefault(client, set())
        if self.name not in done:
            await client.execute(self._register_call())
            done.add(self.name)

    def queues(self) -> set[str]:
        """Every queue a node of this workflow may run on (for the worker to listen on)."""
        return {self.queue} | {cfg["queue"] for cfg in self.nodes.values() if "queue" in cfg}


class ConfiguredWorkflow(_RunSender):
    def __init__(self, workflow: Workflow, options: dict[str, Any]) -> None:
        self.workflow = workflow
        self.options = options

    def with_config(self, **options: Any) -> ConfiguredWorkflow:
        return self.workflow.with_config(**{**self.options, **options})


def define_workflow(registry: Registry, fn: Callable[[], Any],
                    options: dict[str, Any]) -> Workflow:
    return Workflow(fn, registry=registry, **options)


# -- the run handle --------------------------------------------------------------------------

class WorkflowRun:
    """A started run. ``result()`` waits and returns ``{node: result}`` of succeeded nodes,
    or raises ``WorkflowFailed`` / ``WorkflowCancelled`` / ``WaitTimeout``."""

    def __init__(self, run_id: int, *, workflow_name: str | None = None,
                 duplicate: bool = False) -> None:
        self.id = int(run_id)
        self.workflow_name = workflow_name
        self.duplicate = duplicate
        self.run: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"<WorkflowRun {self.id} {self.workflow_name or ''} {self.status or '?'}>"

    @property
    def status(self) -> str | None:
        return (self.run or {}).get("status")

    def _update(self, run: dict[str, Any]) -> WorkflowRun:
        self.run = run
        self.workflow_name = run.get("workflow_name", self.workflow_name)
        return self

    def refresh(self) -> WorkflowRun:
        return self._update(default_client().execute(
            Call("GET", f"/v1/workflow-runs/{self.id}", safe=True)))

    async def arefresh(self) -> WorkflowRun:
        return self._update(await default_async_client().execute(
            Call("GET", f"/v1/workflow-runs/{self.id}", safe=True)))

    def _wait_call(self, seconds: float) -> Call:
        return Call("GET", f"/v1/workflow-runs/{self.id}/wait",
                    params={"timeout_seconds": seconds}, safe=True, extra_timeout=seconds)

    def _outcome(self) -> dict[str, Any]:
        run = self.run or {}
        if run.get("status") == "succeeded":
            return {n["node"]: n["result"] for n in run.get("nodes", [])
                    if n["status"] == "succeeded"}
        if run.get("status") == "failed":
            raise WorkflowFailed(self.id, run)
        raise WorkflowCancelled(self.id, run)

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        with waiting():
            while True:
                left = 30.0 if deadline is None else max(0.0, deadline - time.monotonic())
                self._update(default_client().execute(self._wait_call(min(left, 30.0))))
                if self.status in TERMINAL_RUN:
                    return self._outcome()
                if deadline is not None and time.monotonic() >= deadline:
                    raise WaitTimeout(self.id, timeout or 0.0, self.status, self.run)

    wait = result

    async def aresult(self, timeout: float | None = None) -> dict[str, Any]:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        async with awaiting():
            while True:
                left = 30.0 if deadline is None else max(0.0, deadline - loop.time())
                self._update(await default_async_client().execute(
                    self._wait_call(min(left, 30.0))))
                if self.status in TERMINAL_RUN:
                    return self._outcome()
                if deadline is not None and loop.time() >= deadline:
                    raise WaitTimeout(self.id, timeout or 0.0, self.status, self.run)

    def cancel(self) -> dict[str, Any]:
        return default_client().execute(Call("POST", f"/v1/workflow-runs/{self.id}/cancel"))

    async def acancel(self) -> dict[str, Any]:
        return await default_async_client().execute(
            Call("POST", f"/v1/workflow-runs/{self.id}/cancel"))

    @property
    def channel(self) -> Channel:
        return Channel(self.id)


# -- inside a node task ----------------------------------------------------------------------

class Channel:
    """Key-value state of one run (any JSON value), stored in PostgreSQL."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id

    def _path(self, key: str) -> str:
        if not isinstance(key, str) or not key:
            raise TypeError("channel keys are non-empty strings")
        return f"/v1/workflow-runs/{self.run_id}/channel/{_segment(key)}"

    def get(self, key: str, default: Any = None) -> Any:
        body = default_client().execute(Call("GET", self._path(key), safe=True,
                                             none_on_404=True))
        return default if body is None else body["value"]

    def set(self, key: str, value: Any) -> None:
        default_client().execute(Call("PUT", self._path(key), json={"value": value}, safe=True))

    def increment(self, key: str, by: int = 1) -> int:
        return default_client().execute(
            Call("POST", self._path(key) + "/increment", json={"by": by}))["value"]

    def all(self) -> dict[str, Any]:
        body = default_client().execute(
            Call("GET", f"/v1/workflow-runs/{self.run_id}/channel", safe=True))
        return {e["key"]: e["value"] for e in body["entries"]}

    async def aget(self, key: str, default: Any = None) -> Any:
        body = await default_async_client().execute(Call("GET", self._path(key), safe=True,
                                                         none_on_404=True))
        return default if body is None else body["value"]

    async def aset(self, key: str, value: Any) -> None:
        await default_async_client().execute(Call("PUT", self._path(key), json={"value": value},
                                                  safe=True))

    async def aincrement(self, key: str, by: int = 1) -> int:
        return (await default_async_client().execute(
            Call("POST", self._path(key) + "/increment", json={"by": by})))["value"]


_UNSET: Any = object()


class WorkflowContext:
    """What a node task knows about its run, and how it changes the run's course.

    Course changes (``next_task``, ``next_iteration``, ``terminate_workflow``) take effect
    when this attempt succeeds; a failed attempt's are forgotten. ``cancel_workflow`` acts at
    once and stops this task."""

    def __init__(self, task: TaskContext) -> None:
        assert task.workflow_run_id is not None
        self.task = task
        self.run_id: int = task.workflow_run_id
        self.node: str | None = task.workflow_node
        self.channel = Channel(self.run_id)
        self._run: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"<WorkflowContext run={self.run_id} node={self.node}>"

    def refresh(self) -> dict[str, Any]:
        self._run = default_client().execute(
            Call("GET", f"/v1/workflow-runs/{self.run_id}", safe=True))
        return self._run

    async def arefresh(self) -> dict[str, Any]:
        self._run = await default_async_client().execute(
            Call("GET", f"/v1/workflow-runs/{self.run_id}", safe=True))
        return self._run

    @property
    def args(self) -> Any:
        """The run's args (as JSON; read once)."""
        return (self._run or self.refresh())["args"]

    @property
    def results(self) -> dict[str, Any]:
        """Results of the run's nodes that have succeeded so far (read fresh)."""
        return {n["node"]: n["result"] for n in self.refresh()["nodes"]
                if n["status"] == "succeeded"}

    def result(self, node_name: str) -> Any:
        """One node's result; ``KeyError`` if that node has not succeeded."""
        return self.results[node_name]

    # -- directives --------------------------------------------------------------------------
    def _directive(self, action: str, **fields: Any) -> dict[str, Any]:
        return {"task_id": self.task.task_id, "lease_token": self.task.lease_token,
                "action": action, **fields}

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        return default_client().execute(
            Call("POST", f"/v1/workflow-runs/{self.run_id}/directives", json=body, safe=True))

    async def _apost(self, body: dict[str, Any]) -> dict[str, Any]:
        return await default_async_client().execute(
            Call("POST", f"/v1/workflow-runs/{self.run_id}/directives", json=body, safe=True))

    def _task_body(self, task: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                   goto: bool, name: str | None) -> dict[str, Any]:
        if isinstance(task, Node):
            name = name or task.name
            task = task.task
        if not isinstance(task, TaskDefinition | ConfiguredTask):
            raise InvalidArgs(str(task), "next_task takes a task (or task.with_config(...))")
        options = dict(task.options)
        spec: dict[str, Any] = {"name": task.definition.name,
                                "queue": options.get("queue") or self.task.queue}
        for key in ("priority", "max_retries", "timeout_seconds"):
            value = options.get(key, getattr(task.definition, key, None))
            if value is not None:
                spec[key] = value
        if args or kwargs or not task.definition.spec.signature.parameters:
            spec["args"] = task.prepare(*args, **kwargs).body["args"]
        body = self._directive("next_task", task=spec, goto=goto)
        if name is not None:
            body["node"] = name
        return body

    def next_task(self, task: Any, *args: Any, goto: bool = False, node: str | None = None,
                  **kwargs: Any) -> bool:
        """Queue ``task`` in this run when this task succeeds. ``goto=False``: as well as the
        successors. ``goto=True``: instead of them; if ``task`` (or ``node``) names a node of
        the graph, the run jumps there. Without arguments a graph node keeps its own."""
        return self._post(self._task_body(task, args, kwargs, goto, node))["accepted"]

    async def anext_task(self, task: Any, *args: Any, goto: bool = False,
                         node: str | None = None, **kwargs: Any) -> bool:
        return (await self._apost(self._task_body(task, args, kwargs, goto, node)))["accepted"]

    def _iteration(self, args: Any) -> dict[str, Any]:
        body = self._directive("next_iteration")
        if args is not _UNSET:
            body["args"] = args.model_dump(mode="json") if isinstance(args, BaseModel) else args
        return body

    def next_iteration(self, args: Any = _UNSET) -> bool:
        """Run this node again when this task succeeds (with ``args`` if given). False when
        the node's ``max_cycles`` is reached: the run then goes on to the successors."""
        return self._post(self._iteration(args))["accepted"]

    async def anext_iteration(self, args: Any = _UNSET) -> bool:
        return (await self._apost(self._iteration(args)))["accepted"]

    def terminate_workflow(self, reason: str | None = None) -> None:
        """When this task returns, the run ends succeeded; nothing after it runs."""
        self._post(self._directive("terminate", reason=reason))

    async def aterminate_workflow(self, reason: str | None = None) -> None:
        await self._apost(self._directive("terminate", reason=reason))

    def _cancelled(self, reason: str | None) -> NoReturn:
        self.task.cancel_requested.set()  # the attempt is reported as cancelled
        raise WorkflowCancelled(self.run_id, {"reason": reason},
                                f"workflow run {self.run_id} cancelled by node {self.node}: "
                                f"{reason}")

    def cancel_workflow(self, reason: str | None = None) -> NoReturn:
        """Cancel the run now; this task stops (raises ``WorkflowCancelled``)."""
        self._post(self._directive("cancel", reason=reason))
        self._cancelled(reason)

    async def acancel_workflow(self, reason: str | None = None) -> NoReturn:
        await self._apost(self._directive("cancel", reason=reason))
        self._cancelled(reason)


def get_workflow_context() -> WorkflowContext | None:
    """The workflow side of the running task's context; None outside a workflow node."""
    ctx = get_context()
    if ctx is None or ctx.workflow_run_id is None:
        return None
    cached = getattr(ctx, "_workflow_context", None)
    if cached is None:
        cached = WorkflowContext(ctx)
        ctx._workflow_context = cached  # type: ignore[attr-defined]
    return cached


@contextmanager
def building() -> Iterator[_Graph]:
    """For tests of the DSL: collect edges without a registry."""
    graph = _Graph()
    token = _building.set(graph)
    try:
        yield graph
    finally:
        _building.reset(token)


# -- what the worker registers at start ------------------------------------------------------

def schedules(registry: Registry) -> list[dict[str, Any]]:
    """The registry's cron tasks and cron workflows as ``POST /v1/schedules/register`` items.
    A schedule is named ``task:<name>`` or ``workflow:<name>``."""
    out = []
    for d in registry.tasks.values():
        if d.cron is None:
            continue
        options: dict[str, Any] = {"queue": d.queue.name, "priority": d.priority,
                                   "max_retries": d.max_retries}
        if d.timeout_seconds is not None:
            options["timeout_seconds"] = d.timeout_seconds
        for key in ("retry_backoff", "retry_delay_seconds", "retry_max_delay_seconds"):
            if getattr(d, key, None) is not None:
                options[key] = getattr(d, key)
        out.append({"name": f"task:{d.name}", "kind": "task", "target": d.name, "cron": d.cron,
                    "args": d.spec.to_json((), {}), "options": options})
    for wf in registry.workflows.values():
        item = wf.schedule()
        if item is not None:
            out.append(item)
    return out


async def aregister_with_server(registry: Registry, client: AsyncClient) -> None:
    """Register the registry's workflows and schedules (the worker calls this at start)."""
    for wf in registry.workflows.values():
        await wf.aensure_registered(client)
    items = schedules(registry)
    if items:
        await client.execute(Call("POST", "/v1/schedules/register", json={"schedules": items},
                                  safe=True))


def register_with_server(registry: Registry, client: Client) -> None:
    for wf in registry.workflows.values():
        wf.ensure_registered(client)
    items = schedules(registry)
    if items:
        client.execute(Call("POST", "/v1/schedules/register", json={"schedules": items},
                            safe=True))

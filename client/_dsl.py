"""The workflow DSL: ``a >> [b, c] >> d`` inside a ``@registry.workflow`` function builds a
graph of nodes and edges. Only the shape is decided here; ``_workflow.py`` makes it a
definition and the server runs it.

Tasks take part through ``Chainable`` (their ``>>``) and ``NodeTask`` (what a node needs of a
task: ``definition`` and ``options``), so this module does not import the task modules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from . import protocol
from ._exceptions import DefinitionError

NODE_OPTIONS = frozenset({"queue", "priority", "max_retries", "timeout_seconds"})


@dataclass
class Graph:
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    sources: dict[str, Any] = field(default_factory=dict)


_building: ContextVar[Graph | None] = ContextVar("branchwork_workflow_graph", default=None)


class Chainable:
    """Anything ``>>`` chains: tasks, nodes and chains."""

    def __rshift__(self, other: Any) -> _Chain:
        return chain(self, other)

    def __rrshift__(self, other: Any) -> _Chain:
        return chain(other, self)


class NodeTask(Chainable):
    """A task as a node sees it (``TaskDefinition`` and ``ConfiguredTask`` are ones)."""

    definition: Any
    options: dict[str, Any]


class Node(Chainable):
    """A task as a workflow node with node-only options: ``node(loop_task, max_cycles=5)``.
    ``max_cycles`` is how many times the node may run in one run (``next_iteration`` and
    ``next_task(..., goto=True)`` into it are refused past it)."""

    def __init__(self, task: NodeTask, *, max_cycles: int = 1, name: str | None = None) -> None:
        if not isinstance(task, NodeTask):
            raise DefinitionError(f"a workflow node is a task, not {task!r}")
        if isinstance(max_cycles, bool) or not isinstance(max_cycles, int) \
                or not 1 <= max_cycles <= protocol.MAX_NODE_CYCLES:
            raise DefinitionError(f"max_cycles must be an int from 1 to "
                                  f"{protocol.MAX_NODE_CYCLES}, not {max_cycles!r}")
        self.task = task
        self.max_cycles = max_cycles
        self.name = name or task.definition.name
        if not protocol.is_task_name(self.name):
            raise DefinitionError(f"invalid node name {self.name!r}")

    def __repr__(self) -> str:
        return f"<Node {self.name} max_cycles={self.max_cycles}>"


def node(task: NodeTask, *, max_cycles: int = 1, name: str | None = None) -> Node:
    """Wrap a task to give it node options (``max_cycles``, a node ``name``)."""
    return Node(task, max_cycles=max_cycles, name=name)


@dataclass
class _Chain(Chainable):
    heads: list[Node]
    tails: list[Node]


def as_nodes(item: Any) -> tuple[list[Node], list[Node]]:
    """The heads and tails of a chain, node, task or list of them."""
    if isinstance(item, _Chain):
        return item.heads, item.tails
    if isinstance(item, Node):
        return [item], [item]
    if isinstance(item, NodeTask):
        n = Node(item)
        return [n], [n]
    if isinstance(item, list | tuple) and item:
        heads: list[Node] = []
        tails: list[Node] = []
        for sub in item:
            h, t = as_nodes(sub)
            heads += h
            tails += t
        return heads, tails
    raise DefinitionError(f"cannot chain {item!r} with >>: use tasks, node(...) or lists")


def task_config(task: NodeTask, where: str) -> dict[str, Any]:
    """A task's settings as a node (or a workflow handler) runs it."""
    options = dict(task.options)
    unknown = set(options) - NODE_OPTIONS
    if unknown:
        raise DefinitionError(f"{where}: {sorted(unknown)} cannot be set on a workflow "
                              f"node (only {sorted(NODE_OPTIONS)})")
    d = task.definition
    cfg: dict[str, Any] = {"task": d.name,
                           "max_retries": options.get("max_retries", d.max_retries)}
    for key in ("queue", "priority"):
        if options.get(key) is not None:
            cfg[key] = options[key]
    timeout = options.get("timeout_seconds", d.timeout_seconds)
    if timeout is not None:
        cfg["timeout_seconds"] = timeout
    cfg.update(d.backoff_options())
    return cfg


def handler_spec(task: Any, kind: str, workflow: str) -> dict[str, Any] | None:
    """The ``on_failure`` / ``on_success`` of a workflow definition: a task (or a task's
    ``with_config``), queued once when a run ends (docs/workflows.md, "Handlers")."""
    if task is None:
        return None
    if not isinstance(task, NodeTask):
        raise DefinitionError(f"workflow {workflow!r}: {kind} takes a task, not {task!r}")
    return task_config(task, f"workflow {workflow!r}: {kind}")


def add_node(n: Node, graph: Graph) -> None:
    """Record ``n``'s node settings; the same name twice must mean the same settings (a
    bare mention of a task adds none: ``a >> b`` then ``a >> b.with_config(...)`` is one
    node ``b`` with that config, as in Hyrex's README)."""
    task = n.task
    cfg = {**task_config(task, f"node {n.name}"), "max_cycles": n.max_cycles}
    if not task.definition.spec.signature.parameters:
        cfg["args"] = {}  # a task without parameters: the run's args would not fit it
    previous = graph.nodes.get(n.name)
    source = graph.sources.get(n.name)
    if previous is not None and source is not task and previous != cfg:
        bare = [t for t in (source, task) if t is t.definition or not t.options]
        if (source.definition is not task.definition or not bare
                or previous["max_cycles"] != cfg["max_cycles"]):
            raise DefinitionError(f"node {n.name!r} appears twice with different settings; "
                                  "give one a name with node(task, name=...)")
        if bare[0] is task:
            return  # the configured mention already recorded wins
    graph.nodes[n.name] = cfg
    graph.sources[n.name] = task


def chain(left: Any, right: Any) -> _Chain:
    """``left >> right``: every tail of ``left`` feeds every head of ``right``."""
    graph = _building.get()
    if graph is None:
        raise DefinitionError("`>>` declares workflow edges: use it inside a function "
                              "decorated with @registry.workflow")
    l_heads, l_tails = as_nodes(left)
    r_heads, r_tails = as_nodes(right)
    for n in l_heads + l_tails + r_heads + r_tails:
        add_node(n, graph)
    for src in l_tails:
        for dst in r_heads:
            if src.name == dst.name:
                raise DefinitionError(f"node {src.name!r} cannot follow itself; use "
                                      "next_iteration() for loops")
            if (src.name, dst.name) not in graph.edges:
                graph.edges.append((src.name, dst.name))
    return _Chain(l_heads, r_tails)


@contextmanager
def building() -> Iterator[Graph]:
    """Collect the edges that ``>>`` declares in this block (for tests of the DSL, too)."""
    graph = Graph()
    token = _building.set(graph)
    try:
        yield graph
    finally:
        _building.reset(token)


def collect(name: str, fn: Callable[[], Any]) -> Graph:
    """Run a workflow function and check the graph it declares."""
    with building() as graph:
        returned = fn()
    if returned is not None:
        for n in as_nodes(returned)[0] + as_nodes(returned)[1]:
            add_node(n, graph)
    if not graph.nodes:
        raise DefinitionError(f"workflow {name!r} has no nodes: chain tasks with >> "
                              "(or return a task) in its body")
    if len(graph.nodes) > protocol.MAX_WORKFLOW_NODES:
        raise DefinitionError(f"workflow {name!r} has {len(graph.nodes)} nodes; the "
                              f"server takes at most {protocol.MAX_WORKFLOW_NODES}")
    if protocol.find_cycle(list(graph.nodes), graph.edges):
        raise DefinitionError(f"workflow {name!r}: its edges form a cycle")
    return graph

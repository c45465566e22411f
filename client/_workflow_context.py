"""``get_workflow_context()``: what a node task knows about its run, and how it changes the
run's course (directives). Each directive is a body built once and sent by either driver."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn

from pydantic import BaseModel

from . import _calls as calls
from ._context import TaskContext, get_context
from ._dsl import Node, NodeTask
from ._exceptions import DefinitionError, InvalidArgs, WorkflowCancelled
from ._handle import TaskRun
from ._origin import Origin
from ._workflow import DECLARED
from ._workflow_run import Channel

_UNSET: Any = object()


class WorkflowContext:
    """What a node task knows about its run, and how it changes the run's course.

    Course changes (``next_task``, ``next_iteration``, ``terminate_workflow``) take effect
    when this attempt succeeds; a failed attempt's are forgotten. ``cancel_workflow`` acts at
    once and stops this task."""

    def __init__(self, task: TaskContext, origin: Origin | None = None) -> None:
        assert task.workflow_run_id is not None
        self.task = task
        self.run_id: int = task.workflow_run_id
        self.node: str | None = task.workflow_node
        self.origin = origin or Origin()
        self.channel = Channel(self.run_id, client=self.origin.client,
                               async_client=self.origin.async_client)
        self._run: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"<WorkflowContext run={self.run_id} node={self.node}>"

    def refresh(self) -> dict[str, Any]:
        self._run = self.origin.sync().execute(calls.get_run(self.run_id))
        return self._run

    async def arefresh(self) -> dict[str, Any]:
        self._run = await self.origin.async_().execute(calls.get_run(self.run_id))
        return self._run

    @property
    def args(self) -> Any:
        """The run's args (as JSON; read once)."""
        return (self._run or self.refresh())["args"]

    @property
    def workflow_args(self) -> Any:
        """The run's args as the workflow's declared ``args_schema`` (``workflow_arg_schema``)
        model when this process declared the workflow; else as JSON. Hyrex's name."""
        run = self._run or self.refresh()
        declared = DECLARED.get(run.get("workflow_name") or "")
        model = declared.args_schema if declared is not None else None
        return run["args"] if model is None else model.model_validate(run["args"])

    @property
    def durable_runs(self) -> DurableRuns:
        """The run's nodes by name (read fresh): ``durable_runs.get("extract_data")`` is a
        handle to that node's run (``.status``, ``.result``, ``.refresh()``), or None."""
        return DurableRuns(self, self.refresh()["nodes"])

    def get_channel(self) -> Channel:
        """The run's channel (Graflow's name): ``ctx.get_channel().get(key, default=...)``."""
        return self.channel

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
        return self.origin.sync().execute(calls.directive(self.run_id, body))

    async def _apost(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.origin.async_().execute(calls.directive(self.run_id, body))

    def _task_body(self, task: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                   goto: bool, name: str | None) -> dict[str, Any]:
        if isinstance(task, Node):
            name = name or task.name
            task = task.task
        if not isinstance(task, NodeTask):
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


def injecting(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``@reg.task(inject_context=True)`` (Graflow's shape): the function's first parameter
    is the running task's context (its workflow context inside a workflow node), not an
    argument the sender gives."""
    signature = inspect.signature(fn, eval_str=True)
    params = list(signature.parameters.values())
    if not params:
        raise DefinitionError(f"{fn.__qualname__}: inject_context needs a first parameter "
                              "for the context")

    def context() -> Any:
        return get_workflow_context() or get_context()

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            return await fn(context(), *args, **kwargs)
    else:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            return fn(context(), *args, **kwargs)
    wrapper.__signature__ = signature.replace(parameters=params[1:])  # type: ignore[attr-defined]
    return wrapper


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


class NodeRun:
    """One node's run in a workflow run, as ``durable_runs.get(name)`` gives it."""

    def __init__(self, context: WorkflowContext, view: dict[str, Any]) -> None:
        self.context = context
        self._update(view)

    def _update(self, view: dict[str, Any]) -> None:
        self.view = view
        self.node: str = view["node"]
        self.status: str = view["status"]
        self.task_id: int | None = view.get("task_id")
        self.result: Any = view.get("result") if view["status"] == "succeeded" else None
        self.error: Any = view.get("error")

    def __repr__(self) -> str:
        return f"<NodeRun {self.node} {self.status} task={self.task_id}>"

    def _find(self, run: dict[str, Any]) -> None:
        for view in run["nodes"]:
            if view["node"] == self.node:
                self._update(view)

    def refresh(self) -> NodeRun:
        """Read the node's status and result again; returns self."""
        self._find(self.context.refresh())
        return self

    async def arefresh(self) -> NodeRun:
        self._find(await self.context.arefresh())
        return self

    @property
    def task_runs(self) -> list[TaskRun]:
        """The node's current task as a ``TaskRun`` handle (a list, as Hyrex has it)."""
        if self.task_id is None:
            return []
        origin = self.context.origin
        return [TaskRun(self.task_id, task_name=self.view.get("task_name"),
                        status=self.view.get("task_status"), client=origin.client,
                        async_client=origin.async_client)]


class DurableRuns(Mapping[str, NodeRun]):
    """The run's nodes by name, each a :class:`NodeRun`; ``get(name)`` is None for a node
    the run does not have."""

    def __init__(self, context: WorkflowContext, views: list[dict[str, Any]]) -> None:
        self._runs = {v["node"]: NodeRun(context, v) for v in views}

    def __getitem__(self, node: str) -> NodeRun:
        return self._runs[node]

    def __iter__(self) -> Iterator[str]:
        return iter(self._runs)

    def __len__(self) -> int:
        return len(self._runs)


class RunOutcome(BaseModel):
    """What a workflow handler (``on_failure`` / ``on_success``) is given: type its one
    parameter as this model. ``error`` names the failed node, its task and its error."""

    run_id: int
    workflow: str
    status: str
    reason: str | None = None
    error: Any = None
    args: Any = None

    @property
    def failed_node(self) -> str | None:
        return self.error.get("node") if isinstance(self.error, dict) else None


"""Advancing workflow runs: the server, not the worker, decides what runs next.

Every entry point holds the run's row lock (``store.workflows.lock_run`` /
``lock_runs_of_tasks``) before it touches the run's nodes or tasks, so completions of parallel
nodes are applied one after another and a join node is queued exactly once. The work per call
is bounded by the size of the run (its ``workflow_nodes`` rows, read by primary key), never by
the task table. Everything here runs in the caller's transaction (the report's, a run start's,
the advancer's), through one :class:`RunAdvance` per transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from psycopg import AsyncCursor

from ...protocol import TERMINAL_STATUSES
from ..store import queues as queue_store
from ..store import tasks as task_store
from ..store import workflow_nodes as node_store
from ..store import workflows as run_store
from ..store.workflow_nodes import NodeState
from .handlers import queue_handler
from .send import send_in

if TYPE_CHECKING:
    from ..metrics import Metrics

TERMINAL_NODE = ("succeeded", "failed", "skipped", "cancelled")


def descendants(nodes: dict[str, NodeState], start: str) -> set[str]:
    down: dict[str, list[str]] = {}
    for name, node in nodes.items():
        for up in node["upstream"]:
            down.setdefault(up, []).append(name)
    seen: set[str] = set()
    stack = list(down.get(start, []))
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(down.get(name, []))
    return seen


def unique_name(nodes: dict[str, Any], base: str) -> str:
    if base not in nodes:
        return base
    k = 2
    while f"{base}#{k}" in nodes:
        k += 1
    return f"{base}#{k}"


class RunAdvance:
    """The advance of the runs one transaction (``cur``) holds locked."""

    def __init__(self, cur: AsyncCursor, metrics: Metrics | None = None) -> None:
        self.cur = cur
        self.metrics = metrics

    async def queue_nodes(self, run: dict[str, Any],
                          nodes: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Send one task per node (its spec, the run's args unless the spec has its own)."""
        if not nodes:
            return
        items = []
        for node, spec in nodes:
            item = {k: v for k, v in spec.items() if k != "args"}
            item["args"] = spec["args"] if "args" in spec else run["args"]
            item.update(workflow_run_id=run["id"], workflow_node=node)
            items.append(item)
        outs = await send_in(self.cur, items, self.metrics)
        await node_store.mark_queued(self.cur, run["id"], [
            {"node": node, "task_id": out.id, "task": spec}
            for (node, spec), out in zip(nodes, outs, strict=True)])

    async def finish_run(self, run_id: int, status: str, *, reason: str | None = None,
                         error: Any = None, keep_task: int | None = None) -> None:
        """End a run: pending and unfinished nodes are skipped or cancelled, its tasks
        stopped (queued ones cancelled, running ones asked to stop), its handler queued."""
        await run_store.finish_run(self.cur, run_id, status, reason, error)
        await node_store.close_unfinished(self.cur, run_id, keep_task)
        ids = [i for i in await run_store.active_task_ids(self.cur, run_id) if i != keep_task]
        if ids:
            await task_store.cancel(self.cur, ids)
        await queue_handler(self.cur, run_id, self.metrics)

    async def _maybe_complete(self, run_id: int) -> None:
        """With nothing queued, pending nodes can never become ready: skip them and finish."""
        nodes = await node_store.states(self.cur, run_id)
        if not any(n["status"] == "queued" for n in nodes.values()):
            await node_store.set_status(
                self.cur, run_id, [n for n, v in nodes.items() if v["status"] == "pending"],
                "skipped")
            await run_store.succeed_run(self.cur, run_id)
            await queue_handler(self.cur, run_id, self.metrics)

    async def _advance(self, run: dict[str, Any], done: str) -> None:
        """Queue the pending successors of ``done`` whose inputs all succeeded; skip the ones
        that can no longer run (an input skipped), transitively."""
        nodes = await node_store.states(self.cur, run["id"])
        ready: list[tuple[str, dict[str, Any]]] = []
        skipped: set[str] = set()
        frontier = [done]
        while frontier:
            current = frontier.pop()
            for name, node in nodes.items():
                if (current not in node["upstream"] or node["status"] != "pending"
                        or name in skipped):
                    continue
                ups = [nodes[u]["status"] if u not in skipped else "skipped"
                       for u in node["upstream"]]
                if any(s in ("failed", "skipped", "cancelled") for s in ups):
                    skipped.add(name)
                    frontier.append(name)
                elif all(s == "succeeded" for s in ups):
                    ready.append((name, node["task"]))
        await node_store.set_status(self.cur, run["id"], skipped, "skipped")
        await self.queue_nodes(run, ready)

    async def _add_dynamic(self, run: dict[str, Any], after: str, name: str,
                           spec: dict[str, Any]) -> None:
        await queue_store.ensure(self.cur, [spec["queue"]])
        await node_store.insert_dynamic(self.cur, run["id"], name, spec, after)
        await self.queue_nodes(run, [(name, spec)])

    async def _rerun(self, run: dict[str, Any], nodes: dict[str, NodeState], name: str,
                     args: Any, has_args: bool) -> None:
        """Queue a graph node again; its finished descendants go back to pending to follow."""
        spec = dict(nodes[name]["task"])
        if has_args:
            spec["args"] = args
        again = [d for d in descendants(nodes, name)
                 if nodes[d]["status"] in TERMINAL_NODE and d != name]
        await node_store.set_status(self.cur, run["id"], again, "pending")
        await self.queue_nodes(run, [(name, spec)])

    async def _on_success(self, run: dict[str, Any], node: dict[str, Any]) -> None:
        """A node succeeded: apply the directive its attempt recorded, or go on as declared."""
        current = (node["directive_task_id"] == node["task_id"]
                   and node["directive_attempt"] == node["attempts"])
        directive = (node["directive"] if current else None) or {}
        name = node["node"]
        await node_store.set_status(self.cur, run["id"], [name], "succeeded")
        if run["status"] != "running":
            return
        nodes = await node_store.states(self.cur, run["id"])
        for extra in directive.get("extra", []):
            new = unique_name(nodes, extra.get("node") or extra["spec"]["name"])
            await self._add_dynamic(run, name, new, dict(extra["spec"]))
            nodes = await node_store.states(self.cur, run["id"])
        course = directive.get("course")
        action = course["action"] if course else None
        if action == "terminate":
            await self.finish_run(run["id"], "succeeded", reason=course.get("reason"))
        elif action == "next_iteration" and nodes[name]["runs"] < (nodes[name]["max_cycles"]
                                                                   or 1):
            await self._rerun(run, nodes, name, course.get("args"), "args" in course)
        elif action == "goto":
            await self._goto(run, nodes, name, course)
        else:
            await self._advance(run, name)

    async def _goto(self, run: dict[str, Any], nodes: dict[str, NodeState], name: str,
                    course: dict[str, Any]) -> None:
        target: str | None = course.get("node") or course["spec"]["name"]
        existing = nodes.get(target) if target else None
        if existing is not None:
            if existing["status"] == "queued" or existing["runs"] >= (existing["max_cycles"]
                                                                      or 1):
                await self._advance(run, name)  # refused: the run goes on as declared
                return
            await self._rerun(run, nodes, target, course["spec"].get("args"),  # type: ignore[arg-type]
                              "args" in course["spec"])
        else:
            await self._add_dynamic(run, name, unique_name(nodes, target or name),
                                    course["spec"])
            target = None  # a new node: nothing of the graph follows it
        keep = ({target} | descendants(nodes, target)) if target else set()
        skip = {d for d in descendants(nodes, name)
                if d not in keep and nodes[d]["status"] == "pending"}
        await node_store.set_status(self.cur, run["id"], skip, "skipped")

    async def tasks_finished(self, run_id: int, finished: Sequence[dict[str, Any]]) -> None:
        """Apply finished node tasks (``id``, ``status``) of one run the caller locked."""
        run = await run_store.run_state(self.cur, run_id)
        if run is None:
            return
        for item in finished:
            node = await node_store.queued_node_of_task(self.cur, run_id, item["id"])
            if node is None:
                continue  # stale: that node has moved on, or this was already applied
            status = item["status"]
            if status == "succeeded":
                await self._on_success(run, node)
            elif status in ("failed", "cancelled"):
                await node_store.set_status(self.cur, run_id, [node["node"]], status)
                if run["status"] == "running":
                    error = {"node": node["node"], "task_id": item["id"],
                             "error": node["task_error"]}
                    reason = (f"node {node['node']} failed" if status == "failed"
                              else f"the task of node {node['node']} was cancelled")
                    await self.finish_run(run_id, status, reason=reason, error=error)
            else:
                continue
            run["status"] = await run_store.run_status(self.cur, run_id) or run["status"]
        if run["status"] == "running":
            await self._maybe_complete(run_id)


async def after_report(cur: AsyncCursor, rows: Sequence[dict[str, Any]],
                       metrics: Metrics | None = None) -> None:
    """The report path's hook: rows of the report statement (``applied``,
    ``workflow_run_id``, ``new_status``, ``id``), whose runs were locked first (by the
    report statement itself, or ``store.workflows.lock_runs_of_tasks``), in the report's
    transaction."""
    by_run: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        if row["applied"] and row["workflow_run_id"] and row["new_status"] in TERMINAL_STATUSES:
            by_run.setdefault(row["workflow_run_id"], []).append(
                {"id": row["id"], "status": row["new_status"]})
    advance = RunAdvance(cur, metrics)
    for run_id in sorted(by_run):
        await advance.tasks_finished(run_id, by_run[run_id])

"""``branchwork send NAME``: send a task (or start a workflow run) and, with ``--wait``,
watch it live until it finishes: the task, the tree it grows, or the run's nodes."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import click
from rich.console import Group
from rich.live import Live
from rich.text import Text

from .. import _calls as calls
from .._http import Client
from .common import CliState, api_errors, parse_json, pass_state, styled, table

POLL_SECONDS = 0.5
FINISHED = {"succeeded", "failed", "cancelled"}


@click.command("send")
@click.argument("name")
@click.option("--args", "args_json", default=None, metavar="JSON",
              help="the task's arguments as JSON, e.g. '{\"to\": \"a@b.c\"}'")
@click.option("-q", "--queue", default=None,
              help="queue (default: the one a worker registered for NAME, else 'default')")
@click.option("-p", "--priority", type=click.IntRange(0, 10), default=None,
              help="0 (low) to 10 (high); default 5")
@click.option("--max-retries", type=click.IntRange(0), default=None, help="retries after a failure")
@click.option("--idempotency-key", default=None, help="a repeat with this key is not sent twice")
@click.option("--workflow", is_flag=True, help="NAME is a workflow: start a run of it")
@click.option("-w", "--wait", is_flag=True, help="watch it until it finishes")
@click.option("--timeout", type=click.FloatRange(0), default=None, metavar="SECONDS",
              help="with --wait: give up after this long (exit 3)")
@pass_state
def send(state: CliState, name: str, args_json: str | None, queue: str | None,
         priority: int | None, max_retries: int | None, idempotency_key: str | None,
         workflow: bool, wait: bool, timeout: float | None) -> None:
    """Send task NAME (or start workflow NAME with --workflow).

    Options a worker registered for NAME (queue, priority, retries, timeout) apply unless
    given here, as with NAME.send() in Python."""
    body: dict[str, Any] = {}
    if not workflow:
        body["name"] = name
    if args_json is not None:
        body["args"] = parse_json(args_json, "--args")
    for key, value in (("queue", queue), ("priority", priority), ("max_retries", max_retries),
                       ("idempotency_key", idempotency_key)):
        if value is not None:
            body[key] = value
    if workflow and max_retries is not None:
        raise click.BadParameter("not for a workflow run", param_hint="--max-retries")
    client = state.client()
    with api_errors():
        if not workflow:
            body = {**_registered_defaults(client, name), **body}
        if workflow:
            out = client.execute(calls.start_run(name, body))
            what, ident = "workflow run", out["id"]
        else:
            out = client.send_task(body)
            what, ident = "task", out["id"]
    if not wait:
        state.emit(out, lambda: f"sent {what} {ident}"
                   + (" (a duplicate: it was sent before)" if out.get("duplicate") else ""))
        return
    if not state.as_json:
        state.console.print(f"sent {what} {ident}")
    with api_errors():
        final = _watch(state, client, what, ident, timeout)
    status = final["status"]
    if state.as_json:
        state.emit(final, lambda: "")
    elif status == "succeeded":
        state.console.print(Text.assemble((f"{what} {ident} succeeded", "green"),
                                          f": {_result(final)}"))
    elif status in FINISHED:
        state.console.print(Text.assemble((f"{what} {ident} {status}", "red"),
                                          f": {_error(final)}"))
    else:
        state.console.print(Text(f"{what} {ident} still {status} after {timeout} s",
                                 style="yellow"))
    raise SystemExit(0 if status == "succeeded" else 3 if status not in FINISHED else 1)


def _registered_defaults(client: Client, name: str) -> dict[str, Any]:
    """The queue and options a worker registered for task ``name`` (what ``task.send()``
    would use), so ``branchwork send NAME`` sends the same task; flags given win."""
    for definition in client.list_task_definitions():
        if definition["name"] == name:
            return {"queue": definition["queue"], **(definition.get("defaults") or {})}
    return {}


def _watch(state: CliState, client: Client, what: str, ident: int,
           timeout: float | None) -> dict[str, Any]:
    """Poll until finished. On a terminal the display is redrawn in place (rich Live);
    piped, each change of status is one line; with --json nothing is shown until the end."""
    deadline = None if timeout is None else time.monotonic() + timeout
    started = time.monotonic()
    live = Live(console=state.console, auto_refresh=False) if (
        state.console.is_terminal and not state.as_json) else None
    last = ""
    with live or contextlib.nullcontext():
        while True:
            current, view, line = _snapshot(client, what, ident, time.monotonic() - started)
            if live is not None:
                live.update(view, refresh=True)
            elif not state.as_json and line != last:
                state.console.print(line, highlight=False)
                last = line
            if current["status"] in FINISHED and current.get("tree_done", True):
                return current
            if deadline is not None and time.monotonic() >= deadline:
                return current
            time.sleep(POLL_SECONDS)


def _snapshot(client: Client, what: str,
              ident: int, elapsed: float) -> tuple[dict[str, Any], Any, str]:
    """(the current state, its live view, a one-line summary without the clock)."""
    if what == "workflow run":
        run = client.execute(calls.get_run(ident))
        t = table("NODE", "STATUS", "TASK")
        for node in run.get("nodes") or []:
            t.add_row(str(node.get("node")), styled(node.get("status")),
                      str(node.get("task_id") or "-"))
        nodes = run.get("nodes") or []
        done = sum(1 for n in nodes if n.get("status") in FINISHED)
        line = f"workflow run {ident} {run['status']}: {done}/{len(nodes)} nodes finished"
        head = Text.assemble(f"workflow run {ident} ", styled(run["status"]),
                             f"  {done}/{len(nodes)} nodes finished  {elapsed:.1f}s")
        return run, Group(head, t), line
    task = client.get_task(ident)
    tree = client.execute(calls.get_tree(ident, 200))
    task["tree_done"] = bool(tree["finished"])
    line = f"task {ident} {task['name']} {task['status']} (attempt {task['attempts']})"
    head = Text.assemble(f"task {ident} {task['name']} ", styled(task["status"]),
                         f"  attempt {task['attempts']}  {elapsed:.1f}s")
    if tree["total"] <= 1:
        return task, head, line
    rollup = tree["rollup"]
    counts = "  ".join(f"{k} {v}" for k, v in rollup.items() if v)
    done = rollup["succeeded"] + rollup["failed"] + rollup["cancelled"]
    tree_line = f"tree: {done}/{tree['total']} finished ({counts})"
    return task, Group(head, Text(tree_line)), f"{line}; {tree_line}"


def _result(final: dict[str, Any]) -> str:
    """A task's result; a run's results by node (what ``WorkflowRun.result()`` gives)."""
    if "nodes" in final:
        value: Any = {n["node"]: n.get("result") for n in final["nodes"]
                      if n.get("status") == "succeeded"}
    else:
        value = final.get("result")
    return json.dumps(value, default=str)


def _error(final: dict[str, Any]) -> str:
    error = final.get("error") or {}
    if isinstance(error, dict) and error:
        return f"{error.get('type')}: {error.get('message')}"
    return str(final.get("reason") or "-")

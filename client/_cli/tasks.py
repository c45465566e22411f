"""``branchwork tasks ls/show/why/cancel/retry/delete``: find tasks and act on one, or on every
task a filter selects."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click
from rich.console import Group
from rich.text import Text

from ..protocol import TASK_STATUSES
from .common import CliState, ago, api_errors, pass_state, styled, table
from .prune import DURATION


@click.group("tasks")
def tasks() -> None:
    """List, inspect, cancel, retry and delete tasks."""


def _short(value: Any, width: int = 40) -> str:
    text = "-" if value is None else json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _clip(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def task_table(rows: list[dict[str, Any]], title: str | None = None) -> Any:
    t = table("ID", "NAME", "QUEUE", "STATUS", "TRIES", "CREATED", "ERROR", title=title)
    for r in rows:
        error = r.get("error") or {}
        t.add_row(str(r["id"]), r["name"], r["queue"], styled(r["status"]),
                  f"{r.get('attempts', 0)}/{int(r.get('max_retries') or 0) + 1}",
                  ago(r.get("created_at")),
                  _clip(f"{error.get('type')}: {error.get('message')}", 60) if error else "")
    return t if rows else Text("no tasks", style="dim")


@tasks.command("ls")
@click.option("--status", type=click.Choice(TASK_STATUSES), help="only tasks in this status")
@click.option("-q", "--queue", help="only tasks of this queue")
@click.option("-n", "--name", help="only tasks with this name")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="most tasks shown, newest first")
@pass_state
def ls(state: CliState, status: str | None, queue: str | None, name: str | None,
       limit: int) -> None:
    """Tasks, newest first."""
    with api_errors():
        page = state.client().list_tasks(status=status, queue=queue, name=name, limit=limit)
    state.emit(page["tasks"], lambda: task_table(page["tasks"]))


def _detail(task: dict[str, Any]) -> Any:
    t = table("", "")
    t.show_header = False
    fields = [("id", task["id"]), ("name", task["name"]), ("queue", task["queue"]),
              ("status", styled(task["status"])), ("priority", task["priority"]),
              ("attempts", f"{task['attempts']} of {int(task['max_retries']) + 1}"),
              ("args", _short(task.get("args"), 200)), ("result", _short(task.get("result"), 200)),
              ("created", f"{task['created_at']} ({ago(task['created_at'])})"),
              ("finished", task.get("finished_at") or "-"), ("worker", task.get("worker_id") or "-")]
    if task.get("parent_id"):
        fields.append(("parent", task["parent_id"]))
    if task.get("root_id") and task["root_id"] != task["id"]:
        fields.append(("root", task["root_id"]))
    if task.get("workflow_run_id"):
        fields.append(("workflow run", f"{task['workflow_run_id']} node {task['workflow_node']}"))
    error = task.get("error")
    if error:
        fields.append(("error", Text(f"{error.get('type')}: {error.get('message')}",
                                     style="red")))
    for k, v in fields:
        t.add_row(Text(k, style="bold"), v if isinstance(v, Text) else str(v))
    parts: list[Any] = [t]
    history = task.get("history") or []
    if history:
        h = table("WHEN", "ATTEMPT", "EVENT", "STATUS", "WORKER", title="\nhistory")
        for e in history:
            h.add_row(str(e.get("at") or e.get("created_at") or "-"), str(e.get("attempt", "")),
                      str(e.get("event")), styled(e.get("status")), e.get("worker_id") or "")
        parts.append(h)
    for log in task.get("logs") or []:
        parts.append(Text(f"\nlogs of attempt {log.get('attempt')}:", style="bold"))
        parts.append(Text(str(log.get("output") or "").rstrip()))
    return Group(*parts)


@tasks.command("show")
@click.argument("task_id", type=click.IntRange(1))
@pass_state
def show(state: CliState, task_id: int) -> None:
    """One task with its history and logs."""
    with api_errors():
        task = state.client().get_task(task_id)
    state.emit(task, lambda: _detail(task))


def _why(answer: dict[str, Any]) -> Any:
    head = Text(f"task {answer['task_id']} {answer['name']} on {answer['queue']}: ")
    head.append_text(styled(answer["status"]))
    if not answer["reasons"]:
        state = "running" if answer["running"] else "finished"
        return Group(head, Text(f"{state}: nothing holds it back", style="dim"))
    t = table("REASON", "WHY")
    for r in answer["reasons"]:
        t.add_row(r["code"], r["message"])
    return Group(head, t)


@tasks.command("why")
@click.argument("task_id", type=click.IntRange(1))
@pass_state
def why(state: CliState, task_id: int) -> None:
    """Why a task is not running: schedule, back-off, pause, limits, workers, waits."""
    with api_errors():
        answer = state.client().why(task_id)
    state.emit(answer, lambda: _why(answer))


def _each(state: CliState, task_ids: tuple[int, ...], act: Callable[[int], dict[str, Any]],
          say: Callable[[dict[str, Any]], str]) -> None:
    """Act on each task in turn; one that is refused is one line on stderr and the rest go on
    (exit code 1 if any was refused)."""
    done: list[dict[str, Any]] = []
    refused = False
    for task_id in task_ids:
        try:
            with api_errors():
                done.append(answer := act(task_id))
        except SystemExit:
            refused = True
            continue
        if not state.as_json:
            state.console.print(f"task {answer['id']}: {say(answer)}", highlight=False)
    if state.as_json:
        state.emit(done, lambda: "")
    if refused:
        raise SystemExit(1)


def by_filter(command: Callable[..., None]) -> Callable[..., None]:
    """The bulk filter options of ``cancel``, ``retry`` and ``delete`` (docs/cli.md)."""
    options = [
        click.option("-q", "--queue", help="only tasks of this queue"),
        click.option("-n", "--name", help="only tasks with this name"),
        click.option("--status", "statuses", type=click.Choice(TASK_STATUSES), multiple=True,
                     help="only tasks in this status (repeat for several)"),
        click.option("--older-than", "older_than", type=DURATION,
                     help="only tasks created more than this long ago (10m, 2h, 7d)"),
        click.option("--root", "root_id", type=click.IntRange(1),
                     help="only tasks of the tree with this root"),
        click.option("--run", "run_id", type=click.IntRange(1),
                     help="only tasks of this workflow run"),
        click.option("--error-type", help="only tasks whose error has this type"),
        click.option("--all", "every", is_flag=True,
                     help="every task (needed when no other filter is given)"),
        click.option("--dry-run", is_flag=True, help="count what would change; change nothing"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


BULK_DONE = {"cancel": "cancelled (running ones asked to stop)", "retry": "queued again",
             "delete": "deleted"}


def _bulk(state: CliState, action: str, task_ids: tuple[int, ...], *, queue: str | None,
          name: str | None, statuses: tuple[str, ...], older_than: float | None,
          root_id: int | None, run_id: int | None, error_type: str | None, every: bool,
          dry_run: bool) -> None:
    """One bulk call for the filter (or the ids given), and one line saying what it did."""
    filters = {"queue": queue, "name": name, "status": list(statuses) or None,
               "older_than_seconds": older_than, "root_id": root_id,
               "workflow_run_id": run_id, "error_type": error_type,
               "ids": list(task_ids) or None, "all": every}
    with api_errors():
        out = state.client().bulk_tasks(action, dry_run=dry_run, **filters)
    if dry_run:
        line = (f"{out['matched']} task(s) match; {out['changed']} would be "
                f"{BULK_DONE[action]} (dry run: nothing changed)")
    else:
        line = f"{out['matched']} task(s) matched; {out['changed']} {BULK_DONE[action]}"
    state.emit(out, lambda: line)


def _filtered(options: dict[str, Any]) -> bool:
    return any(v not in (None, False, ()) for v in options.values())


@tasks.command("cancel")
@click.argument("task_ids", type=click.IntRange(1), nargs=-1)
@by_filter
@pass_state
def cancel(state: CliState, task_ids: tuple[int, ...], **options: Any) -> None:
    """Cancel queued tasks; ask running ones to stop. By id, or every task a filter selects
    (``--queue``, ``--status``, ``--older-than``…; ``--dry-run`` counts first)."""
    if task_ids and not _filtered(options):
        _each(state, task_ids, state.client().cancel_task,
              lambda o: "cancelled" if o["status"] == "cancelled"
              else "cancel requested (its worker stops it)")
        return
    _bulk(state, "cancel", task_ids, **options)


@tasks.command("retry")
@click.argument("task_ids", type=click.IntRange(1), nargs=-1)
@by_filter
@pass_state
def retry(state: CliState, task_ids: tuple[int, ...], **options: Any) -> None:
    """Queue failed or cancelled tasks again. By id, or every task a filter selects."""
    if task_ids and not _filtered(options):
        _each(state, task_ids, state.client().retry_task, lambda o: "queued again")
        return
    _bulk(state, "retry", task_ids, **options)


@tasks.command("delete")
@click.argument("task_ids", type=click.IntRange(1), nargs=-1)
@by_filter
@pass_state
def delete(state: CliState, task_ids: tuple[int, ...], **options: Any) -> None:
    """Delete finished tasks with their history and logs (queued and running ones, and tasks
    of unfinished trees or of workflow runs, are left alone). By id or by filter."""
    _bulk(state, "delete", task_ids, **options)

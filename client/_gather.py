"""Gathering children inside a durable task without holding a process (docs/durable.md,
"Parents that wait").

In a task defined with ``durable=True``, ``wait_all`` (and so ``child.run``, ``run_many``
and their async twins) does not block: the attempt suspends with a wait of kind
``children`` listing the children's ids, and the worker's slot and process are free. The
server resumes the parent once every child has finished, storing each child's status,
result and error as the wait's result. The parent then runs again from the top: its sends
find the same children (spawn keys) and this wait returns the stored results at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._context import TaskContext
from ._durable import adurable_wait, durable_wait
from ._exceptions import TaskCancelled, TaskFailed
from ._handle import TaskRun

KIND = "children"


def _detail(runs: Sequence[TaskRun]) -> dict[str, Any]:
    return {"ids": [run.id for run in runs]}


def results(value: Any, runs: Sequence[TaskRun]) -> list[Any]:
    """The children's results in order, each handle updated with its child's outcome; the
    first child (in order) that did not succeed raises, as ``wait_all`` does."""
    outcomes = list(value or [])
    for run, outcome in zip(runs, outcomes, strict=False):
        run._update({"id": outcome["id"], "status": outcome["status"],
                     "result": outcome.get("result"), "error": outcome.get("error")})
    for run in runs:
        if run.status == "failed":
            raise TaskFailed(run.id, run.task)
        if run.status != "succeeded":
            raise TaskCancelled(run.id, run.task, message=(
                f"task {run.id} was cancelled" if run.status == "cancelled"
                else f"task {run.id} no longer exists"))
    return [run.task.get("result") if run.task else None for run in runs]


def gather(ctx: TaskContext, runs: Sequence[TaskRun], timeout: float | None = None) -> list[Any]:
    """Suspend until every run has finished (or ``timeout``: ``WaitTimedOut``), then their
    results in order."""
    if not runs:
        return []
    return results(durable_wait(ctx, KIND, KIND, detail=_detail(runs), timeout=timeout), runs)


async def agather(ctx: TaskContext, runs: Sequence[TaskRun],
                  timeout: float | None = None) -> list[Any]:  # noqa: ASYNC109
    """Async twin of ``gather``."""
    if not runs:
        return []
    return results(await adurable_wait(ctx, KIND, KIND, detail=_detail(runs), timeout=timeout),
                   runs)

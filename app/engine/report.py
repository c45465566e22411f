"""Report: record attempts' outcomes (fenced by lease token) and advance their workflows,
in one transaction, so that a finished node queues its successors atomically.

Each outcome gets a verdict: ``applied``, ``already_recorded`` (a repeated report of the
outcome on record), ``stale_lease`` (the attempt was re-leased or ended) or ``unknown_task``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ...protocol import TERMINAL_STATUSES
from ..store import tasks as task_store
from ..store.sql import notify
from ..store.tasks import ReportRow
from ..store.workflows import lock_runs_of_tasks
from . import children
from .advance import after_report
from .errors import InvalidInput, NotFound, StaleLease
from .payload import check_batch, check_size
from .suspend import Wait, lock_keys_of, suspend_in, suspend_item
from .tx import transaction

if TYPE_CHECKING:
    from ..settings import Settings
    from ..state import ServerState

# What a failed attempt records when the worker sent no error.
DEFAULT_ERROR = {"type": "Error", "message": "", "traceback": None}
TRUNCATED = "[earlier output truncated]\n"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One attempt's outcome as the worker reports it."""

    id: int
    lease_token: str
    outcome: Literal["succeeded", "failed", "cancelled", "suspended"]
    result: Any = None
    error: dict[str, Any] | None = None
    retry_delay_seconds: float | None = None
    logs: str | None = None
    wait: Wait | None = None  # what a suspended attempt waits for (docs/durable.md)


def bounded_logs(logs: str | None, settings: Settings) -> str | None:
    """The end of ``logs`` that fits the log limit."""
    if logs is not None and len(logs.encode()) > settings.max_log_bytes:
        logs = TRUNCATED + logs.encode()[-settings.max_log_bytes:].decode(errors="ignore")
    return logs


def _row(item: Outcome, settings: Settings, check: bool) -> dict[str, Any]:
    succeeded = item.outcome == "succeeded"
    if check and succeeded:
        check_size(item.result, settings.max_payload_bytes, f"result of task {item.id}")
    logs = bounded_logs(item.logs, settings)
    # The logs go into the report statement, so that only an applied outcome writes them.
    row = {"id": item.id, "lease_token": item.lease_token, "outcome": item.outcome,
           "result": item.result if succeeded else None,
           "error": None if succeeded else (item.error or DEFAULT_ERROR),
           "retry_delay_seconds": item.retry_delay_seconds, "logs": logs}
    return row


def verdict(row: ReportRow) -> str:
    if row["applied"]:
        return "applied"
    if row["current_status"] is None:
        return "unknown_task"
    if row["same_lease"] and row["current_status"] != "running":
        return "already_recorded"
    return "stale_lease"


async def report(state: ServerState, outcomes: Sequence[Outcome], *,
                 check_sizes: bool = True) -> list[dict[str, Any]]:
    """Apply a batch; the answer has each task's verdict and status. ``check_sizes`` False
    skips the per-result limit when the whole request body was already under it."""
    settings = state.settings
    check_batch(len(outcomes), settings.max_batch, f"over the limit of {settings.max_batch}")
    ids = [o.id for o in outcomes]
    if len(set(ids)) != len(ids):
        dups = sorted(i for i, n in Counter(ids).items() if n > 1)
        raise InvalidInput("a task appears more than once in one report", {"ids": dups},
                           code="duplicate_task")
    rows, suspends = [], []
    for idx, item in enumerate(outcomes):
        if item.wait is not None:  # suspended (app/engine/suspend.py)
            check_size(item.wait.detail, settings.max_payload_bytes,
                       f"wait detail of task {item.id}")
            suspends.append(suspend_item(item.id, item.lease_token, item.wait,
                                         bounded_logs(item.logs, settings), idx))
            continue
        row = _row(item, settings, check_sizes)
        row["idx"] = idx
        rows.append(row)
    # Waiting claims are woken for retries, and for finished tasks only in queues with a
    # concurrency limit, where a slot has just come free: waking every idle worker on each
    # completion would have them all query for nothing.
    limited = await state.caches.queue_settings.limited(state.pool)
    # Pipeline mode: the BEGIN goes out with the first statement and the NOTIFY, if any,
    # with the COMMIT, so a plain report (BEGIN, the report statement, COMMIT) is two round
    # trips; before, it was five statements in five (BEGIN, run lock, report, the children
    # look-up, COMMIT).
    async with transaction(state.pool) as cur, cur.connection.pipeline():
        await lock_keys_of(cur, suspends)  # before any row lock (see suspend.py)
        # Workflow runs are locked before their tasks (the advancer's lock order), and
        # advanced in this same transaction: by the report statement itself, first thing,
        # or on their own when every item suspended.
        if rows:
            applied = await task_store.report(cur, rows, ids, settings.max_log_bytes)
        else:
            applied = []
            await lock_runs_of_tasks(cur, ids)
        suspended = await suspend_in(cur, suspends, settings.max_log_bytes)
        # Durable parents whose last child this report finished resume (children.py).
        await children.after_finished_in(cur, [r["parent_id"] for r in applied
                                               if r["applied"] and r["parent_id"] is not None
                                               and r["new_status"] in TERMINAL_STATUSES])
        await after_report(cur, [*applied, *suspended], state.metrics)
        await notify(cur, ((r["queue"], r["wake_at"]) for r in [*applied, *suspended]
                           if r["applied"] and (r["new_status"] == "queued"
                                                or r["queue"] in limited)))
        await cur.connection.commit()
    state.metrics.reported(applied)
    ordered = sorted([*applied, *suspended], key=lambda r: r["idx"])
    return [{"id": r["id"], "outcome": verdict(r),
             "status": r["new_status"] or r["current_status"]} for r in ordered]


async def report_one(state: ServerState, outcome: Outcome, *,
                     check_sizes: bool = True) -> dict[str, Any]:
    """One outcome (``/complete``, ``/fail``): an unknown task or a stale lease is an error."""
    [out] = await report(state, [outcome], check_sizes=check_sizes)
    if out["outcome"] == "unknown_task":
        raise NotFound.of("task", outcome.id)
    if out["outcome"] == "stale_lease":
        raise StaleLease(f"the lease token of task {outcome.id} is no longer current; "
                         "the outcome was not recorded", {"status": out["status"]})
    return out

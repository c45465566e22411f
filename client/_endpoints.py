"""The v1 API as methods, written once for ``Client`` and ``AsyncClient``.

Each method hands its endpoint's ``Call`` to ``execute``: the sync client's returns the
answer, the async client's returns an awaitable of it, so ``await async_client.get_task(1)``
and ``client.get_task(1)`` are the same line of code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from . import _calls as calls
from ._calls import UNSET, Call


def _iso(when: datetime | str | None) -> str | None:
    return when.isoformat() if isinstance(when, datetime) else when


class Endpoints:
    def execute(self, call: Call) -> Any:
        raise NotImplementedError

    # -- senders and readers -------------------------------------------------------------
    def health(self) -> Any:
        return self.execute(calls.health())

    def send_task(self, body: Mapping[str, Any]) -> Any:
        """POST /v1/tasks with a TaskIn body → ``{"id", "duplicate"}``."""
        return self.execute(calls.send_task(body))

    def send_tasks(self, bodies: Sequence[Mapping[str, Any]]) -> Any:
        """POST /v1/tasks/batch: one transaction → ``[{"id", "duplicate"}, ...]`` in order."""
        return self.execute(calls.send_tasks(bodies))

    def get_task(self, task_id: int) -> Any:
        return self.execute(calls.get_task(task_id))

    def why(self, task_id: int) -> Any:
        """GET /v1/tasks/{id}/why → ``{"task_id", "status", "reasons": [...]}``: why the
        task is not running (docs/flow-control.md, "Why isn't it running?")."""
        return self.execute(calls.why_task(task_id))

    def list_tasks(self, *, status: str | None = None, queue: str | None = None,
                   name: str | None = None, root_id: int | None = None,
                   parent_id: int | None = None, workflow_run_id: int | None = None,
                   cursor: int | None = None, limit: int = 100) -> Any:
        """GET /v1/tasks → ``{"tasks": [...], "next_cursor": id | None}`` newest first."""
        return self.execute(calls.list_tasks(
            status=status, queue=queue, name=name, root_id=root_id, parent_id=parent_id,
            workflow_run_id=workflow_run_id, cursor=cursor, limit=limit))

    def cancel_task(self, task_id: int) -> Any:
        return self.execute(calls.cancel_task(task_id))

    def retry_task(self, task_id: int) -> Any:
        return self.execute(calls.retry_task(task_id))

    # -- people in the loop (docs/durable.md, "Approvals") ---------------------------------
    def list_approvals(self, *, queue: str | None = None, cursor: int | None = None,
                       limit: int = 100) -> Any:
        """GET /v1/approvals → ``{"approvals": [...], "next_cursor": id | None}``: tasks
        waiting for an approval, newest first, each with its ``question``."""
        return self.execute(calls.list_approvals(queue=queue, cursor=cursor, limit=limit))

    def approve(self, task_id: int, comment: str | None = None) -> Any:
        """Approve what the task waits for; it resumes with the decision. ``Conflict``
        (``already_decided``, ``not_waiting_for_approval``) changes nothing."""
        return self.execute(calls.decide_approval(task_id, True, comment))

    def reject(self, task_id: int, comment: str | None = None) -> Any:
        """Reject what the task waits for; it resumes with the decision (see ``approve``)."""
        return self.execute(calls.decide_approval(task_id, False, comment))

    # -- durable tasks (docs/durable.md) -------------------------------------------------
    def send_event(self, key: str, payload: Any = None, *, id: str | None = None) -> Any:
        """POST /v1/events → ``{"event_id", "key", "duplicate", "resumed"}``: every task
        waiting on ``key`` resumes with ``payload``. With ``id``, a repeated post (a retry)
        is recognised and does nothing again (``duplicate`` true)."""
        return self.execute(calls.send_event(key, payload, id))

    def signal_task(self, task_id: int, name: str, payload: Any = None) -> Any:
        """POST /v1/tasks/{id}/signal: resume the task waiting for signal ``name`` with
        ``payload``. ``Conflict`` (code ``not_waiting``) when it is not waiting for it."""
        return self.execute(calls.signal_task(task_id, name, payload))

    def task_steps(self, task_id: int) -> Any:
        """GET /v1/tasks/{id}/steps → the task's stored steps, sleeps and waits, in order."""
        return self.execute(calls.task_steps(task_id))

    def record_step(self, task_id: int, lease_token: str, name: str, fn: str | None,
                    result: Any, duration_seconds: float = 0.0) -> Any:
        """POST /v1/tasks/{id}/steps (a running attempt, under its lease) →
        ``{"name", "recorded", "result"}``: the stored result."""
        return self.execute(calls.record_step(task_id, lease_token, name, fn, result,
                                              duration_seconds))

    # -- key-value store -----------------------------------------------------------------
    def kv_get(self, key: str) -> Any:
        return self.execute(calls.kv_get(key))

    def kv_set(self, key: str, value: str, ttl_seconds: float | None = None) -> Any:
        """Write a value; with ``ttl_seconds`` it expires (reads as absent) that long after."""
        return self.execute(calls.kv_set(key, value, ttl_seconds))

    def kv_delete(self, key: str) -> Any:
        return self.execute(calls.kv_delete(key))

    def kv_set_if_absent(self, key: str, value: str, ttl_seconds: float | None = None) -> Any:
        return self.execute(calls.kv_set_if_absent(key, value, ttl_seconds))

    def kv_increment(self, key: str, by: int = 1) -> Any:
        return self.execute(calls.kv_increment(key, by))

    def kv_list(self, prefix: str = "", after: str | None = None, limit: int = 100) -> Any:
        return self.execute(calls.kv_list(prefix, after, limit))

    # -- queues and workers --------------------------------------------------------------
    def configure_queue(self, name: str, *, concurrency_limit: int | None = UNSET,
                        paused: bool | None = None, stuck_after_seconds: float | None = UNSET,
                        stuck_action: str | None = UNSET,
                        retention: Mapping[str, float | None] | None = None) -> Any:
        """PUT /v1/queues/{name}; ``concurrency_limit=None`` removes a limit, omitted keeps it;
        the same for the queue's stuck rule (``stuck_after_seconds``, ``stuck_action``).
        ``retention`` maps finished statuses to seconds (0: forever, None: the server's),
        e.g. ``{"succeeded": 86400}``; statuses left out keep their setting."""
        return self.execute(calls.configure_queue(name, concurrency_limit=concurrency_limit,
                                                  paused=paused,
                                                  stuck_after_seconds=stuck_after_seconds,
                                                  stuck_action=stuck_action,
                                                  retention=retention))

    # -- rate limits (docs/flow-control.md) --------------------------------------------------
    def put_rate_limit(self, name: str, *, units: int, period_seconds: float,
                       burst: int = 0) -> Any:
        """PUT /v1/rate-limits/{name}: ``units`` per ``period_seconds``, ``burst`` more at once."""
        return self.execute(calls.put_rate_limit(name, units=units,
                                                 period_seconds=period_seconds, burst=burst))

    def list_rate_limits(self) -> Any:
        """GET /v1/rate-limits → ``[{name, units, period_seconds, burst, ...}]``."""
        return self.execute(calls.list_rate_limits())

    def get_rate_limit(self, name: str) -> Any:
        """GET /v1/rate-limits/{name}: the limit and each key's ``full_at``."""
        return self.execute(calls.get_rate_limit(name))

    def delete_rate_limit(self, name: str) -> Any:
        """DELETE /v1/rate-limits/{name}."""
        return self.execute(calls.delete_rate_limit(name))

    def set_queue_rate_limit(self, queue: str, limit: str | None) -> Any:
        """PUT /v1/queues/{queue}/rate-limit: every task of the queue consumes one unit."""
        return self.execute(calls.set_queue_rate_limit(queue, limit))

    def list_queues(self) -> Any:
        return self.execute(calls.list_queues())

    def list_task_definitions(self) -> Any:
        """GET /v1/task-definitions → ``[{name, queue, defaults, args_schema, updated_at}]``."""
        return self.execute(calls.list_task_definitions())

    def queue_throughput(self) -> Any:
        """GET /v1/queues/throughput → ``{"minutes": 60, "queues": {name: {"succeeded": [...],
        "failed": [...]}}}``: finishes per minute of the last hour, oldest minute first."""
        return self.execute(calls.queue_throughput())

    def bulk_tasks(self, action: str, *, queue: str | None = None, name: str | None = None,
                   status: str | Sequence[str] | None = None,
                   created_after: datetime | str | None = None,
                   created_before: datetime | str | None = None,
                   older_than_seconds: float | None = None, root_id: int | None = None,
                   workflow_run_id: int | None = None, error_type: str | None = None,
                   ids: Sequence[int] | None = None, all: bool = False,
                   dry_run: bool = False) -> Any:
        """POST /v1/tasks/bulk: ``action`` ("cancel", "retry", "delete") on every task the
        filter selects → ``{"action", "matched", "changed", "dry_run"}``. A dry run counts
        and changes nothing. An empty filter is refused unless ``all=True``."""
        filters = {"queue": queue, "name": name,
                   "status": [status] if isinstance(status, str) else status,
                   "created_after": _iso(created_after), "created_before": _iso(created_before),
                   "older_than_seconds": older_than_seconds, "root_id": root_id,
                   "workflow_run_id": workflow_run_id, "error_type": error_type,
                   "ids": list(ids) if ids is not None else None, "all": all or None}
        return self.execute(calls.bulk_tasks(action, filters, dry_run))

    def rerun_workflow_run(self, run_id: int, from_node: str) -> Any:
        """POST /v1/workflow-runs/{id}/rerun: ``from_node`` and everything downstream of it
        run again (upstream results kept) → ``{"run_id", "from_node", "nodes", "queued"}``."""
        return self.execute(calls.rerun_run(run_id, from_node))

    def prune(self, older_than_seconds: float | None = None, *, queue: str | None = None,
              dry_run: bool = False) -> Any:
        """POST /v1/prune: delete finished tasks and runs past their retention (or finished
        more than ``older_than_seconds`` ago) and expired KV entries → ``{"tasks", "runs",
        "kv", "dry_run"}``."""
        return self.execute(calls.prune(older_than_seconds, queue, dry_run))

    def purge_queue(self, name: str) -> Any:
        """POST /v1/queues/{name}/purge: cancel its queued tasks → ``{"queue", "purged"}``."""
        return self.execute(calls.purge_queue(name))

    def register_worker(self, worker_id: str, *, queues: Sequence[str] = (),
                        info: Mapping[str, Any] | None = None,
                        tasks: Sequence[Mapping[str, Any]] = ()) -> Any:
        """POST /v1/workers/register; ``tasks`` are ``TaskDefinition.registration()`` dicts."""
        return self.execute(calls.register_worker(worker_id, queues=queues, info=info,
                                                  tasks=tasks))

    def stop_worker(self, worker_id: str) -> Any:
        return self.execute(calls.stop_worker(worker_id))

    def list_workers(self) -> Any:
        return self.execute(calls.list_workers())

    def claim(self, worker_id: str, *, queues: Sequence[str] = ("default",),
              task_names: Sequence[str] | None = None, limit: int = 1,
              wait_seconds: float = 0.0) -> Any:
        """POST /v1/claim (long-polls up to ``wait_seconds``) → the leased tasks."""
        return self.execute(calls.claim(worker_id, queues=queues, task_names=task_names,
                                        limit=limit, wait_seconds=wait_seconds))

    def heartbeat(self, worker_id: str, tasks: Sequence[Mapping[str, Any]]) -> Any:
        """POST /v1/heartbeat with ``[{id, lease_token, idle_seconds?}]`` → ``{tasks, cancel,
        lost, ...}``; ``idle_seconds``: since the attempt last showed progress."""
        return self.execute(calls.heartbeat(worker_id, tasks))

    def report(self, worker_id: str | None, results: Sequence[Mapping[str, Any]]) -> Any:
        """POST /v1/tasks/report → one ``{id, outcome, status}`` verdict per result."""
        return self.execute(calls.report(worker_id, results))

    def release(self, worker_id: str, tasks: Sequence[Mapping[str, Any]]) -> Any:
        return self.execute(calls.release(worker_id, tasks))

    # -- access tokens (admin) -----------------------------------------------------------
    def create_token(self, name: str, role: str, *, queues: Sequence[str] = (),
                     names: Sequence[str] = ()) -> Any:
        """POST /v1/tokens → the token's row with ``token``, its secret (shown only now)."""
        return self.execute(calls.create_token(name, role, queues=queues, names=names))

    def list_tokens(self, include_revoked: bool = False) -> Any:
        """GET /v1/tokens → the tokens (never their secrets), live ones unless asked."""
        return self.execute(calls.list_tokens(include_revoked))

    def revoke_token(self, name: str) -> Any:
        """POST /v1/tokens/{name}/revoke → the revoked token's row."""
        return self.execute(calls.revoke_token(name))

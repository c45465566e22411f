"""The v1 API as methods, written once for ``Client`` and ``AsyncClient``.

Each method hands its endpoint's ``Call`` to ``execute``: the sync client's returns the
answer, the async client's returns an awaitable of it, so ``await async_client.get_task(1)``
and ``client.get_task(1)`` are the same line of code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from . import _calls as calls
from ._calls import UNSET, Call


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

    # -- key-value store -----------------------------------------------------------------
    def kv_get(self, key: str) -> Any:
        return self.execute(calls.kv_get(key))

    def kv_set(self, key: str, value: str) -> Any:
        return self.execute(calls.kv_set(key, value))

    def kv_delete(self, key: str) -> Any:
        return self.execute(calls.kv_delete(key))

    def kv_set_if_absent(self, key: str, value: str) -> Any:
        return self.execute(calls.kv_set_if_absent(key, value))

    def kv_increment(self, key: str, by: int = 1) -> Any:
        return self.execute(calls.kv_increment(key, by))

    def kv_list(self, prefix: str = "", after: str | None = None, limit: int = 100) -> Any:
        return self.execute(calls.kv_list(prefix, after, limit))

    # -- queues and workers --------------------------------------------------------------
    def configure_queue(self, name: str, *, concurrency_limit: int | None = UNSET,
                        paused: bool | None = None, stuck_after_seconds: float | None = UNSET,
                        stuck_action: str | None = UNSET) -> Any:
        """PUT /v1/queues/{name}; ``concurrency_limit=None`` removes a limit, omitted keeps it;
        the same for the queue's stuck rule (``stuck_after_seconds``, ``stuck_action``)."""
        return self.execute(calls.configure_queue(name, concurrency_limit=concurrency_limit,
                                                  paused=paused,
                                                  stuck_after_seconds=stuck_after_seconds,
                                                  stuck_action=stuck_action))

    def list_queues(self) -> Any:
        return self.execute(calls.list_queues())

    def list_task_definitions(self) -> Any:
        """GET /v1/task-definitions → ``[{name, queue, defaults, args_schema, updated_at}]``."""
        return self.execute(calls.list_task_definitions())

    def queue_throughput(self) -> Any:
        """GET /v1/queues/throughput → ``{"minutes": 60, "queues": {name: {"succeeded": [...],
        "failed": [...]}}}``: finishes per minute of the last hour, oldest minute first."""
        return self.execute(calls.queue_throughput())

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

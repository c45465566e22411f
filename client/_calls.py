"""Every v1 endpoint as a ``Call``: a description the sync and async clients both execute.

Keeping the endpoints here once means ``Client`` and ``AsyncClient`` cannot drift apart, and the
retry rule (``Call.safe``) is decided in one place per endpoint. Multi-step operations are
flows over these calls (``_flow.py``); nothing else in the client builds a request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from ._exceptions import InvalidValue
from ._jsoncheck import json_problem
from .protocol import MAX_JSON_DEPTH


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


@dataclass(frozen=True)
class Call:
    """One HTTP request and what to do with its answer.

    ``safe``: the request may be repeated after a failure that happened once it was written
    (read timeout, dropped connection, 502/503/504), because repeating it cannot do anything
    twice. Requests that never left (connection refused, connect timeout) are always retried.
    """

    method: str
    path: str
    json: Any = None
    params: Mapping[str, Any] | None = None
    safe: bool = False
    extra_timeout: float = 0.0
    none_on_404: bool = False
    parse: Callable[[Any], Any] = field(default=lambda body: body)

    def __post_init__(self) -> None:
        # Every body is checked here, before any request: orjson would write NaN as null
        # and the server would refuse what nests too deep.
        if self.json is not None:
            problem = json_problem(self.json, "body", MAX_JSON_DEPTH)
            if problem:
                raise InvalidValue(f"{self.method} {self.path}: {problem}")


def send_is_safe(body: Mapping[str, Any]) -> bool:
    """A send can be repeated when the server will recognise the repeat as a duplicate."""
    return bool(body.get("idempotency_key") or body.get("debounce_seconds")) or bool(
        body.get("parent_id") is not None and body.get("spawn_key"))


def _key(key: str) -> str:
    if not isinstance(key, str) or not key:
        raise TypeError("KV keys are non-empty strings")
    return "/v1/kv/" + _segment(key)


def _segment(text: str) -> str:
    """One URL path segment. Dot segments are resolved by URL normalisation ("/v1/kv/.." is
    "/v1"), so "." and ".." are escaped too."""
    quoted = quote(text, safe="")
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted


def _leases(tasks: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"id": t["id"], "lease_token": str(t["lease_token"]),
             **({"idle_seconds": t["idle_seconds"]} if t.get("idle_seconds") is not None
                else {})} for t in tasks]


def health() -> Call:
    return Call("GET", "/health", safe=True)


def send_task(body: Mapping[str, Any]) -> Call:
    return Call("POST", "/v1/tasks", json=dict(body), safe=send_is_safe(body))


def send_tasks(bodies: Sequence[Mapping[str, Any]]) -> Call:
    return Call("POST", "/v1/tasks/batch", json={"tasks": [dict(b) for b in bodies]},
                safe=all(send_is_safe(b) for b in bodies), parse=lambda body: body["tasks"])


def get_task(task_id: int) -> Call:
    return Call("GET", f"/v1/tasks/{int(task_id)}", safe=True)


def why_task(task_id: int) -> Call:
    """Why a task is not running: the reasons the server computes now."""
    return Call("GET", f"/v1/tasks/{int(task_id)}/why", safe=True)


def list_tasks(**filters: Any) -> Call:
    return Call("GET", "/v1/tasks", params=filters, safe=True)


def cancel_task(task_id: int) -> Call:
    # Not safe: a repeat after the first one landed would answer 409 already_finished.
    return Call("POST", f"/v1/tasks/{int(task_id)}/cancel")


def retry_task(task_id: int) -> Call:
    return Call("POST", f"/v1/tasks/{int(task_id)}/retry")


def list_approvals(*, queue: str | None = None, cursor: int | None = None,
                   limit: int = 100) -> Call:
    params: dict[str, Any] = {"limit": limit}
    if queue is not None:
        params["queue"] = queue
    if cursor is not None:
        params["cursor"] = cursor
    return Call("GET", "/v1/approvals", params=params, safe=True)


def decide_approval(task_id: int, approved: bool, comment: str | None = None) -> Call:
    # Not safe: a repeat after the first one landed would answer 409 already_decided.
    verb = "approve" if approved else "reject"
    return Call("POST", f"/v1/tasks/{int(task_id)}/{verb}",
                json={"comment": comment} if comment is not None else {})


def kv_get(key: str) -> Call:
    return Call("GET", _key(key), safe=True, none_on_404=True,
                parse=lambda body: None if body is None else body["value"])


def _kv_body(value: str, ttl_seconds: float | None) -> dict[str, Any]:
    body: dict[str, Any] = {"value": _value(value)}
    if ttl_seconds is not None:
        body["ttl_seconds"] = float(ttl_seconds)
    return body


def kv_set(key: str, value: str, ttl_seconds: float | None = None) -> Call:
    return Call("PUT", _key(key), json=_kv_body(value, ttl_seconds), safe=True,
                parse=lambda body: None)


def kv_delete(key: str) -> Call:
    return Call("DELETE", _key(key), safe=True, parse=lambda body: bool(body["deleted"]))


def kv_set_if_absent(key: str, value: str, ttl_seconds: float | None = None) -> Call:
    # Not safe: a repeat after the first one landed would answer "not set".
    return Call("POST", _key(key) + "/set-if-absent", json=_kv_body(value, ttl_seconds),
                parse=lambda body: bool(body["set"]))


def kv_increment(key: str, by: int = 1) -> Call:
    if isinstance(by, bool) or not isinstance(by, int):
        raise TypeError("increment takes an integer")
    return Call("POST", _key(key) + "/increment", json={"by": by},
                parse=lambda body: int(body["value"]))


def kv_list(prefix: str = "", after: str | None = None, limit: int = 100) -> Call:
    return Call("GET", "/v1/kv", params={"prefix": prefix, "after": after, "limit": limit},
                safe=True)


def _value(value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"KV values are strings, not {type(value).__name__}; "
                        "encode structured values yourself (e.g. json.dumps)")
    return value


def configure_queue(name: str, *, concurrency_limit: int | None = UNSET,
                    paused: bool | None = None, stuck_after_seconds: float | None = UNSET,
                    stuck_action: str | None = UNSET,
                    retention: Mapping[str, float | None] | None = None) -> Call:
    body: dict[str, Any] = {f"retention_{status}_seconds": seconds
                            for status, seconds in (retention or {}).items()}
    if concurrency_limit is not UNSET:
        body["concurrency_limit"] = concurrency_limit
    if paused is not None:
        body["paused"] = paused
    if stuck_after_seconds is not UNSET:
        body["stuck_after_seconds"] = stuck_after_seconds
    if stuck_action is not UNSET:
        body["stuck_action"] = stuck_action
    return Call("PUT", f"/v1/queues/{_segment(name)}", json=body, safe=True)


def put_rate_limit(name: str, *, units: int, period_seconds: float, burst: int = 0) -> Call:
    return Call("PUT", f"/v1/rate-limits/{_segment(name)}", safe=True,
                json={"units": units, "period_seconds": float(period_seconds), "burst": burst})


def list_rate_limits() -> Call:
    return Call("GET", "/v1/rate-limits", safe=True, parse=lambda body: body["rate_limits"])


def get_rate_limit(name: str) -> Call:
    return Call("GET", f"/v1/rate-limits/{_segment(name)}", safe=True)


def delete_rate_limit(name: str) -> Call:
    return Call("DELETE", f"/v1/rate-limits/{_segment(name)}", safe=True)


def set_queue_rate_limit(queue: str, limit: str | None) -> Call:
    return Call("PUT", f"/v1/queues/{_segment(queue)}/rate-limit", json={"limit": limit},
                safe=True)


def list_queues() -> Call:
    return Call("GET", "/v1/queues", safe=True, parse=lambda body: body["queues"])


def list_task_definitions() -> Call:
    return Call("GET", "/v1/task-definitions", safe=True, parse=lambda body: body["definitions"])


def queue_throughput() -> Call:
    return Call("GET", "/v1/queues/throughput", safe=True)


def bulk_tasks(action: str, filters: Mapping[str, Any], dry_run: bool = False) -> Call:
    """``filters``: the fields of a bulk filter that are set (docs/api.md, "Bulk")."""
    body = {k: v for k, v in filters.items() if v is not None}
    return Call("POST", "/v1/tasks/bulk", json={**body, "action": action, "dry_run": dry_run},
                safe=dry_run)


def rerun_run(run_id: int, from_node: str) -> Call:
    return Call("POST", _run(run_id) + "/rerun", json={"from_node": from_node})


def prune(older_than_seconds: float | None = None, queue: str | None = None,
          dry_run: bool = False) -> Call:
    # Safe: a repeat deletes only what is due by then, which is what a prune means anyway.
    body = {"older_than_seconds": older_than_seconds, "queue": queue, "dry_run": dry_run}
    return Call("POST", "/v1/prune", json={k: v for k, v in body.items() if v is not None},
                safe=True)


def purge_queue(name: str) -> Call:
    # Safe: a repeat cancels what was queued since, which is what a purge means anyway.
    return Call("POST", f"/v1/queues/{_segment(name)}/purge", safe=True)


def register_worker(worker_id: str, *, queues: Sequence[str] = (),
                    info: Mapping[str, Any] | None = None,
                    tasks: Sequence[Mapping[str, Any]] = ()) -> Call:
    return Call("POST", "/v1/workers/register", safe=True,
                json={"worker_id": worker_id, "queues": list(queues), "info": dict(info or {}),
                      "tasks": [dict(t) for t in tasks]})


def stop_worker(worker_id: str) -> Call:
    return Call("POST", f"/v1/workers/{_segment(worker_id)}/stop", safe=True)


def list_workers() -> Call:
    return Call("GET", "/v1/workers", safe=True, parse=lambda body: body["workers"])


def claim(worker_id: str, *, queues: Sequence[str] = ("default",),
          task_names: Sequence[str] | None = None, limit: int = 1,
          wait_seconds: float = 0.0) -> Call:
    # Not safe: a repeat after a lost answer would lease more tasks; the lost ones come back
    # after their lease expires, so only "never sent" failures are retried.
    body: dict[str, Any] = {"worker_id": worker_id, "queues": list(queues), "limit": limit,
                            "wait_seconds": wait_seconds}
    if task_names is not None:
        body["task_names"] = list(task_names)
    return Call("POST", "/v1/claim", json=body, extra_timeout=wait_seconds,
                parse=lambda body: body["tasks"])


def heartbeat(worker_id: str, tasks: Iterable[Mapping[str, Any]]) -> Call:
    return Call("POST", "/v1/heartbeat", json={"worker_id": worker_id, "tasks": _leases(tasks)},
                safe=True)


def _waited(wait: Mapping[str, Any]) -> dict[str, Any]:
    """A suspended outcome's wait as sent: the monotonic time the task reached it
    (``reached_at``, same clock in every process of the machine) becomes ``waited_seconds``,
    measured now, as the report leaves (docs/durable.md, look-back)."""
    out = dict(wait)
    reached = out.pop("reached_at", None)
    if reached is not None:
        out["waited_seconds"] = max(0.0, time.monotonic() - reached)
    return out


def report(worker_id: str | None, results: Sequence[Mapping[str, Any]]) -> Call:
    # Safe: outcomes are fenced by lease token; a repeat answers "already_recorded".
    items = []
    for r in results:
        if type(r) is dict and type(r["lease_token"]) is str and r.get("wait") is None:
            items.append(r)  # already as sent (the worker's outcomes): no copy per task
            continue
        item = dict(r)
        item["lease_token"] = str(item["lease_token"])
        if item.get("wait") is not None:
            item["wait"] = _waited(item["wait"])
        items.append(item)
    body: dict[str, Any] = {"results": items}
    if worker_id is not None:
        body["worker_id"] = worker_id
    return Call("POST", "/v1/tasks/report", json=body, safe=True,
                parse=lambda body: body["results"])


def release(worker_id: str, tasks: Iterable[Mapping[str, Any]]) -> Call:
    return Call("POST", "/v1/tasks/release", json={"worker_id": worker_id,
                                                   "tasks": _leases(tasks)},
                safe=True, parse=lambda body: body["released"])


# -- schedules, workflows and their runs ---------------------------------------------------


def register_schedules(items: Sequence[Mapping[str, Any]]) -> Call:
    return Call("POST", "/v1/schedules/register", json={"schedules": [dict(i) for i in items]},
                safe=True)


def put_workflow(name: str, definition: Mapping[str, Any]) -> Call:
    return Call("PUT", f"/v1/workflows/{name}", json=dict(definition), safe=True)


def start_run(workflow: str, body: Mapping[str, Any]) -> Call:
    # Safe only with an idempotency key: a repeat is then recognised as a duplicate.
    return Call("POST", f"/v1/workflows/{workflow}/runs", json=dict(body),
                safe=bool(body.get("idempotency_key")))


def _run(run_id: int) -> str:
    return f"/v1/workflow-runs/{int(run_id)}"


def get_run(run_id: int) -> Call:
    return Call("GET", _run(run_id), safe=True)


def wait_run(run_id: int, seconds: float) -> Call:
    return Call("GET", _run(run_id) + "/wait", params={"timeout_seconds": seconds}, safe=True,
                extra_timeout=seconds)


def cancel_run(run_id: int) -> Call:
    return Call("POST", _run(run_id) + "/cancel")


def directive(run_id: int, body: Mapping[str, Any]) -> Call:
    return Call("POST", _run(run_id) + "/directives", json=dict(body), safe=True)


def _channel(run_id: int, key: str) -> str:
    if not isinstance(key, str) or not key:
        raise TypeError("channel keys are non-empty strings")
    return _run(run_id) + "/channel/" + _segment(key)


def channel_get(run_id: int, key: str) -> Call:
    return Call("GET", _channel(run_id, key), safe=True, none_on_404=True)


def channel_set(run_id: int, key: str, value: Any) -> Call:
    return Call("PUT", _channel(run_id, key), json={"value": value}, safe=True)


def channel_increment(run_id: int, key: str, by: int = 1) -> Call:
    return Call("POST", _channel(run_id, key) + "/increment", json={"by": by},
                parse=lambda body: body["value"])


def channel_all(run_id: int) -> Call:
    return Call("GET", _run(run_id) + "/channel", safe=True,
                parse=lambda body: {e["key"]: e["value"] for e in body["entries"]})


# -- progress and streams (docs/streaming.md) ------------------------------------------------


def write_stream(task_id: int, body: Mapping[str, Any]) -> Call:
    """A batch of a running attempt's chunks and progress. Repeatable when it names its
    ``first_seq`` (the server recognises the repeat)."""
    return Call("POST", f"/v1/tasks/{int(task_id)}/stream", json=dict(body),
                safe=body.get("first_seq") is not None)


def stream_path(task_id: int) -> str:
    """``GET`` it as server-sent events (``_stream.py`` reads it; not a JSON call)."""
    return f"/v1/tasks/{int(task_id)}/stream"


# -- durable tasks (docs/durable.md) ---------------------------------------------------------


def send_event(key: str, payload: Any = None, event_id: str | None = None) -> Call:
    # Safe with an id: the server recognises the repeat and does nothing again.
    body: dict[str, Any] = {"key": key, "payload": payload}
    if event_id is not None:
        body["id"] = event_id
    return Call("POST", "/v1/events", json=body, safe=event_id is not None)


def signal_task(task_id: int, name: str, payload: Any = None) -> Call:
    # Not safe: a repeat after the first one landed answers 409 not_waiting.
    return Call("POST", f"/v1/tasks/{int(task_id)}/signal",
                json={"name": name, "payload": payload})


def task_steps(task_id: int) -> Call:
    return Call("GET", f"/v1/tasks/{int(task_id)}/steps", safe=True,
                parse=lambda body: body["steps"])


def record_step(task_id: int, lease_token: str, name: str, fn: str | None, result: Any,
                duration_seconds: float = 0.0) -> Call:
    # Safe: a repeat finds the step written and answers it (recorded false).
    return Call("POST", f"/v1/tasks/{int(task_id)}/steps", safe=True,
                json={"lease_token": str(lease_token), "name": name, "fn": fn,
                      "result": result, "duration_seconds": max(0.0, float(duration_seconds))})


# -- task trees ------------------------------------------------------------------------------


def get_tree(task_id: int, limit: int | None = None) -> Call:
    params = {"limit": limit} if limit else None
    return Call("GET", f"/v1/trees/{int(task_id)}", params=params, safe=True)


def cancel_tree(task_id: int) -> Call:
    return Call("POST", f"/v1/trees/{int(task_id)}/cancel", safe=True)


def wait_tree(task_id: int, seconds: float) -> Call:
    return Call("GET", f"/v1/trees/{int(task_id)}/wait", params={"timeout_seconds": seconds},
                safe=True, extra_timeout=seconds)


def list_roots(with_children: bool = False, cursor: int | None = None,
               limit: int = 100) -> Call:
    params: dict[str, Any] = {"with_children": str(with_children).lower(), "limit": limit}
    if cursor is not None:
        params["cursor"] = cursor
    return Call("GET", "/v1/trees", params=params, safe=True)


def create_token(name: str, role: str, *, queues: Sequence[str] = (),
                 names: Sequence[str] = ()) -> Call:
    # Not safe to repeat: a second create of the name is refused (token_exists).
    return Call("POST", "/v1/tokens",
                json={"name": name, "role": role, "queues": list(queues), "names": list(names)})


def list_tokens(include_revoked: bool = False) -> Call:
    return Call("GET", "/v1/tokens", params={"all": str(include_revoked).lower()}, safe=True,
                parse=lambda body: body["tokens"])


def revoke_token(name: str) -> Call:
    return Call("POST", f"/v1/tokens/{_segment(name)}/revoke")

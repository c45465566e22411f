"""A user's tour of the whole v1 API, for tests/test_openapi.py: every JSON route called at
least once with a request that succeeds, its answer kept with the route it came from.

The answers are what the server really sends; the test holds each against the response model
the route documents in ``/openapi.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Answer:
    method: str
    route: str  # the path as declared, as app/access.py's RULES name it
    status: int
    body: Any


class Tour:
    """Calls the API and records (method, declared route, status, body) of each answer."""

    def __init__(self, api: httpx.Client) -> None:
        self.api = api
        self.answers: list[Answer] = []

    def call(self, method: str, route: str, url: str, **kwargs: Any) -> Any:
        r = self.api.request(method, url, **kwargs)
        assert r.status_code < 300, (method, url, r.status_code, r.text[:500])
        body = r.json()
        self.answers.append(Answer(method, route, r.status_code, body))
        return body

    def get(self, route: str, url: str | None = None, **kwargs: Any) -> Any:
        return self.call("GET", route, url or route, **kwargs)

    def post(self, route: str, url: str | None = None, **kwargs: Any) -> Any:
        return self.call("POST", route, url or route, **kwargs)

    def put(self, route: str, url: str | None = None, **kwargs: Any) -> Any:
        return self.call("PUT", route, url or route, **kwargs)

    def delete(self, route: str, url: str | None = None, **kwargs: Any) -> Any:
        return self.call("DELETE", route, url or route, **kwargs)


def _claim(tour: Tour, worker: str, queue: str = "tour", limit: int = 1) -> list[dict]:
    return tour.post("/v1/claim", json={"worker_id": worker, "queues": [queue],
                                        "limit": limit})["tasks"]


def tasks_and_workers(tour: Tour) -> None:
    tour.get("/health")
    tour.post("/v1/workers/register", json={
        "worker_id": "w-tour", "queues": ["tour"], "info": {"host": "here"},
        "tasks": [{"name": "tour.add", "queue": "tour", "defaults": {"max_retries": 1},
                   "args_schema": {"type": "object"}}]})
    sent = tour.post("/v1/tasks", json={"name": "tour.add", "args": {"a": 1}, "queue": "tour",
                                        "idempotency_key": "tour-1"})
    tour.post("/v1/tasks/batch", json={"tasks": [
        {"name": "tour.add", "args": [i], "queue": "tour"} for i in range(4)]})
    [first] = _claim(tour, "w-tour")
    assert first["id"] == sent["id"]
    tour.post("/v1/heartbeat", json={"worker_id": "w-tour", "tasks": [
        {"id": first["id"], "lease_token": first["lease_token"]}]})
    tour.post("/v1/tasks/report", json={"worker_id": "w-tour", "results": [
        {"id": first["id"], "lease_token": first["lease_token"], "outcome": "succeeded",
         "result": {"sum": 1}, "logs": "added\n"}]})
    second, third, fourth = _claim(tour, "w-tour", limit=3)
    tour.post("/v1/tasks/{task_id}/complete", f"/v1/tasks/{second['id']}/complete",
              json={"lease_token": second["lease_token"], "result": 2})
    tour.post("/v1/tasks/{task_id}/fail", f"/v1/tasks/{third['id']}/fail",
              json={"lease_token": third["lease_token"],
                    "error": {"type": "ValueError", "message": "no", "traceback": "tb"},
                    "retry_delay_seconds": 0})
    tour.post("/v1/tasks/release", json={"worker_id": "w-tour", "tasks": [
        {"id": fourth["id"], "lease_token": fourth["lease_token"]}]})
    for task_id in (first["id"], second["id"], third["id"]):
        tour.get("/v1/tasks/{task_id}", f"/v1/tasks/{task_id}")
    tour.get("/v1/tasks", params={"queue": "tour", "limit": 2})
    tour.get("/v1/tasks", params={"status": "succeeded"})
    tour.post("/v1/tasks/{task_id}/cancel", f"/v1/tasks/{fourth['id']}/cancel")
    tour.post("/v1/tasks/{task_id}/retry", f"/v1/tasks/{fourth['id']}/retry")
    tour.get("/v1/workers")
    tour.get("/v1/task-definitions")
    tour.post("/v1/workers/{worker_id}/stop", "/v1/workers/w-tour/stop")


def queues(tour: Tour) -> None:
    tour.get("/v1/queues")
    tour.get("/v1/queues/throughput")
    tour.put("/v1/queues/{name}", "/v1/queues/tour",
             json={"concurrency_limit": 3, "paused": False, "stuck_after_seconds": 60.0,
                   "stuck_action": "fail"})
    tour.post("/v1/queues/{name}/purge", "/v1/queues/tour/purge")


def trees(tour: Tour) -> None:
    root = tour.post("/v1/tasks", json={"name": "tour.root", "queue": "tree"})
    tour.post("/v1/tasks", json={"name": "tour.child", "queue": "tree",
                                 "parent_id": root["id"], "spawn_key": "c1"})
    tour.get("/v1/trees", params={"with_children": "true"})
    tour.get("/v1/trees/{task_id}", f"/v1/trees/{root['id']}")
    tour.get("/v1/trees/{task_id}/wait", f"/v1/trees/{root['id']}/wait",
             params={"timeout_seconds": 0})
    tour.post("/v1/trees/{task_id}/cancel", f"/v1/trees/{root['id']}/cancel")
    tour.get("/v1/trees/{task_id}/wait", f"/v1/trees/{root['id']}/wait",
             params={"timeout_seconds": 0})


def workflows(tour: Tour) -> None:
    tour.put("/v1/workflows/{name}", "/v1/workflows/tour.flow", json={
        "name": "tour.flow", "queue": "flow", "args_schema": {"type": "object"},
        "nodes": [{"name": "a", "task": "tour.a"}, {"name": "b", "task": "tour.b",
                                                     "max_retries": 1}],
        "edges": [["a", "b"]]})
    tour.get("/v1/workflows")
    tour.get("/v1/workflows/{name}", "/v1/workflows/tour.flow")
    run = tour.post("/v1/workflows/{name}/runs", "/v1/workflows/tour.flow/runs",
                    json={"args": {"n": 1}, "idempotency_key": "tour-run"})
    url = f"/v1/workflow-runs/{run['id']}"
    tour.put("/v1/workflow-runs/{run_id}/channel/{key:path}", f"{url}/channel/seen",
             json={"value": {"a": [1]}})
    tour.post("/v1/workflow-runs/{run_id}/channel/{key:path}/increment", f"{url}/channel/n/increment",
              json={"by": 2})
    tour.get("/v1/workflow-runs/{run_id}/channel", f"{url}/channel")
    tour.get("/v1/workflow-runs/{run_id}/channel/{key:path}", f"{url}/channel/seen")
    [a] = _claim(tour, "w-flow", "flow")
    tour.post("/v1/workflow-runs/{run_id}/directives", f"{url}/directives", json={
        "task_id": a["id"], "lease_token": a["lease_token"], "action": "next_task",
        "task": {"name": "tour.extra", "args": [1]}})
    tour.post("/v1/tasks/{task_id}/complete", f"/v1/tasks/{a['id']}/complete",
              json={"lease_token": a["lease_token"], "result": "a"})
    tour.get("/v1/workflow-runs", params={"workflow": "tour.flow"})
    tour.get("/v1/workflow-runs/{run_id}", url)
    tour.get("/v1/workflow-runs/{run_id}/wait", f"{url}/wait", params={"timeout_seconds": 0})
    tour.post("/v1/workflow-runs/{run_id}/cancel", f"{url}/cancel")
    tour.get("/v1/workflow-runs/{run_id}", url)


def schedules(tour: Tour) -> None:
    name = "/v1/schedules/{name:path}"
    tour.put(name, "/v1/schedules/tour.nightly", json={
        "target": "tour.add", "cron": "0 3 * * *", "timezone": "Europe/Paris",
        "args": {"a": 1}, "options": {"queue": "tour"}})
    tour.post("/v1/schedules/register", json={"schedules": [
        {"name": "tour.hourly", "kind": "workflow", "target": "tour.flow",
         "cron": "0 * * * *"}]})
    tour.get("/v1/schedules")
    tour.get(name, "/v1/schedules/tour.nightly")
    tour.post(name + "/pause", "/v1/schedules/tour.nightly/pause")
    tour.post(name + "/resume", "/v1/schedules/tour.nightly/resume")
    tour.delete(name, "/v1/schedules/tour.hourly")
    tour.get("/v1/leader")


def kv(tour: Tour) -> None:
    key = "/v1/kv/{key:path}"
    tour.put(key, "/v1/kv/tour/a", json={"value": "1"})
    tour.post(key + "/set-if-absent", "/v1/kv/tour/b/set-if-absent", json={"value": "x"})
    tour.post(key + "/increment", "/v1/kv/tour/a/increment", json={"by": 2})
    tour.get(key, "/v1/kv/tour/a")
    tour.get("/v1/kv", params={"prefix": "tour/"})
    tour.delete(key, "/v1/kv/tour/b")


def tokens(tour: Tour) -> None:
    tour.post("/v1/tokens", json={"name": "tour-viewer", "role": "viewer"})
    tour.post("/v1/tokens", json={"name": "tour-worker", "role": "worker",
                                  "queues": ["tour*"]})
    tour.post("/v1/tokens/{name}/revoke", "/v1/tokens/tour-viewer/revoke")
    tour.get("/v1/tokens", params={"all": "true"})


def _suspend(tour: Tour, task: dict, wait: dict) -> None:
    tour.post("/v1/tasks/report", json={"worker_id": "w-durable", "results": [
        {"id": task["id"], "lease_token": task["lease_token"], "outcome": "suspended",
         "wait": wait}]})


def durable(tour: Tour) -> None:
    """Steps, streams, signals, events and approvals of tasks that wait (docs/durable.md)."""
    for i in range(4):
        tour.post("/v1/tasks", json={"name": f"tour.durable{i}", "queue": "durable"})
    first, second, third, fourth = _claim(tour, "w-durable", "durable", limit=4)
    tour.post("/v1/tasks/{task_id}/steps", f"/v1/tasks/{first['id']}/steps", json={
        "lease_token": first["lease_token"], "name": "fetch", "fn": "tour.fetch",
        "result": {"rows": 3}, "duration_seconds": 0.5})
    tour.get("/v1/tasks/{task_id}/steps", f"/v1/tasks/{first['id']}/steps")
    tour.post("/v1/tasks/{task_id}/stream", f"/v1/tasks/{first['id']}/stream", json={
        "lease_token": first["lease_token"], "chunks": ["a", "b"], "progress": 0.5,
        "message": "half"})
    _suspend(tour, first, {"kind": "signal", "step": "go", "key": "go"})
    tour.post("/v1/tasks/{task_id}/signal", f"/v1/tasks/{first['id']}/signal",
              json={"name": "go", "payload": {"ok": True}})
    _suspend(tour, second, {"kind": "event", "step": "paid", "key": "order-1/paid"})
    tour.post("/v1/events", json={"key": "order-1/paid", "payload": {"eur": 5}, "id": "e-1"})
    _suspend(tour, third, {"kind": "approval", "step": "ship",
                           "detail": {"question": "Ship it?"}})
    _suspend(tour, fourth, {"kind": "approval", "step": "delete",
                            "detail": {"question": "Delete it?"}})
    tour.get("/v1/approvals", params={"queue": "durable"})
    tour.post("/v1/tasks/{task_id}/approve", f"/v1/tasks/{third['id']}/approve",
              json={"comment": "fine"})
    tour.post("/v1/tasks/{task_id}/reject", f"/v1/tasks/{fourth['id']}/reject",
              json={"comment": "no"})
    tour.get("/v1/tasks/{task_id}", f"/v1/tasks/{third['id']}")
    tour.get("/v1/tasks/{task_id}/why", f"/v1/tasks/{second['id']}/why")


def flow_control(tour: Tour) -> None:
    """Rate limits, and sends that carry flow control (docs/flow-control.md)."""
    limit = "/v1/rate-limits/{name}"
    tour.put(limit, "/v1/rate-limits/tour-api", json={"units": 10, "period_seconds": 1.0,
                                                      "burst": 2})
    tour.get("/v1/rate-limits")
    tour.post("/v1/tasks", json={"name": "tour.limited", "queue": "limited",
                                 "rate_limits": [{"limit": "tour-api", "key": "k1"}]})
    tour.get(limit, "/v1/rate-limits/tour-api")
    tour.put("/v1/queues/{name}/rate-limit", "/v1/queues/limited/rate-limit",
             json={"limit": "tour-api"})
    tour.put("/v1/queues/{name}/rate-limit", "/v1/queues/limited/rate-limit",
             json={"limit": None})
    tour.delete(limit, "/v1/rate-limits/tour-api")


def operations(tour: Tour) -> None:
    """Bulk operations, re-running a workflow run, pruning (docs/operations.md)."""
    tour.post("/v1/tasks/bulk", json={"action": "cancel", "queue": "limited",
                                      "dry_run": True})
    tour.post("/v1/tasks/bulk", json={"action": "cancel", "queue": "limited"})
    tour.post("/v1/tasks/bulk", json={"action": "retry", "status": ["cancelled"],
                                      "queue": "limited"})
    run = tour.get("/v1/workflow-runs", params={"workflow": "tour.flow"})["runs"][0]
    tour.post("/v1/workflow-runs/{run_id}/rerun", f"/v1/workflow-runs/{run['id']}/rerun",
              json={"from_node": "b"})
    tour.post("/v1/prune", json={"older_than_seconds": 0, "dry_run": True})


# Tokens come last: the first one created turns authentication on.
PARTS: tuple[Callable[[Tour], None], ...] = (tasks_and_workers, queues, trees, workflows,
                                             schedules, kv, durable, flow_control,
                                             operations, tokens)


def tour(api: httpx.Client) -> list[Answer]:
    t = Tour(api)
    for part in PARTS:
        part(t)
    return t.answers

"""HTTP-level helpers for the tree, workflow and cron tests: a hand-driven worker."""

from __future__ import annotations

from typing import Any

import httpx

import worker_helpers


def claim(api: httpx.Client, queue: str = "default", limit: int = 10,
          wait: float = 0.0) -> list[dict[str, Any]]:
    r = api.post("/v1/claim", json={"worker_id": "test-worker", "queues": [queue],
                                     "limit": limit, "wait_seconds": wait})
    assert r.status_code == 200, r.text
    return r.json()["tasks"]


def claim_one(api: httpx.Client, queue: str = "default", wait: float = 5.0) -> dict[str, Any]:
    tasks = claim(api, queue, limit=1, wait=wait)
    assert tasks, f"nothing to claim in {queue}"
    return tasks[0]


def complete(api: httpx.Client, task: dict[str, Any], result: Any = None) -> dict[str, Any]:
    r = api.post(f"/v1/tasks/{task['id']}/complete",
                 json={"lease_token": task["lease_token"], "result": result})
    assert r.status_code == 200, r.text
    return r.json()


def fail(api: httpx.Client, task: dict[str, Any], message: str = "boom") -> dict[str, Any]:
    r = api.post(f"/v1/tasks/{task['id']}/fail",
                 json={"lease_token": task["lease_token"],
                       "error": {"type": "RuntimeError", "message": message}})
    assert r.status_code == 200, r.text
    return r.json()


def register_workflow(api: httpx.Client, name: str, nodes: list[dict[str, Any]],
                      edges: list[list[str]], **extra: Any) -> None:
    r = api.put(f"/v1/workflows/{name}", json={"name": name, "nodes": nodes, "edges": edges,
                                               **extra})
    assert r.status_code == 200, r.text


def start_run(api: httpx.Client, name: str, args: Any = None, **extra: Any) -> int:
    r = api.post(f"/v1/workflows/{name}/runs", json={"args": args, **extra})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def run_view(api: httpx.Client, run_id: int) -> dict[str, Any]:
    r = api.get(f"/v1/workflow-runs/{run_id}")
    assert r.status_code == 200, r.text
    return r.json()


def node_status(api: httpx.Client, run_id: int) -> dict[str, str]:
    return {n["node"]: n["status"] for n in run_view(api, run_id)["nodes"]}


def directive(api: httpx.Client, current: dict[str, Any], **body: Any) -> httpx.Response:
    return api.post(f"/v1/workflow-runs/{current['workflow_run_id']}/directives",
                    json={"task_id": current["id"], "lease_token": current["lease_token"],
                          **body})


def wait_for(predicate: Any, timeout: float = 15.0, interval: float = 0.1) -> Any:
    """The worker tests' poll (``worker_helpers.wait_for``) at this module's pace."""
    return worker_helpers.wait_for(predicate, timeout, interval)

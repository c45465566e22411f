"""Bad input on the tree, workflow and schedule routes: a 4xx with the error body, and no
change to any of their tables (never a 500)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

import pg
from orchestration_helpers import claim_one, register_workflow, start_run
from servers import ThreadServer, thread_server

TABLES = ("tasks", "workflows", "workflow_runs", "workflow_nodes", "workflow_channel",
          "schedules", "queues")
LIMIT = 2048


def snapshot(db_url: str) -> dict[str, str]:
    return pg.fingerprint(db_url, TABLES)


@pytest.fixture(scope="module")
def shared(pg_server: str, template_db: str) -> Iterator[tuple[ThreadServer, str, dict]]:
    name = pg.clone(pg_server, template_db)
    url = pg.with_database(pg_server, name)
    with thread_server(url, max_payload_bytes=LIMIT, lease_seconds=3600,
                       run_services=False) as server, \
            httpx.Client(base_url=server.url) as api:
        register_workflow(api, "w", [{"name": "a", "task": "a"}, {"name": "b", "task": "b"}],
                          [["a", "b"]])
        run_id = start_run(api, "w")
        task = claim_one(api)
        api.put(f"/v1/workflow-runs/{run_id}/channel/text", json={"value": "x"})
        yield server, url, {"run": run_id, "task": task}
    pg.drop(pg_server, name)


BIG = "x" * (LIMIT + 10)


def cases(ctx: dict) -> list[tuple[str, str, object, int]]:
    run, task = ctx["run"], ctx["task"]
    lease = {"task_id": task["id"], "lease_token": task["lease_token"]}
    node = {"name": "a", "task": "a"}
    return [
        ("GET", "/v1/trees/abc", None, 422),
        ("GET", "/v1/trees/0", None, 422),
        ("GET", f"/v1/trees/{2**64}", None, 422),
        ("GET", "/v1/trees/123456", None, 404),
        ("POST", "/v1/trees/123456/cancel", None, 404),
        ("GET", "/v1/trees/1/wait?timeout_seconds=-1", None, 422),
        ("GET", "/v1/trees?limit=0", None, 422),
        ("PUT", "/v1/workflows/w2", {"name": "w2", "nodes": [node], "edges": [["a", "a"]]}, 422),
        ("PUT", "/v1/workflows/w2", {"name": "w2", "nodes": [{**node, "args": BIG}]}, 413),
        ("PUT", "/v1/workflows/w2", {"name": "w2", "nodes": [{**node, "max_cycles": 0}]}, 422),
        ("PUT", "/v1/workflows/w2", {"name": "w2", "nodes": [{"name": "a b", "task": "a"}]}, 422),
        ("PUT", "/v1/workflows/w2", {"name": "w2", "nodes": [{**node, "queue": 5}]}, 422),
        ("PUT", "/v1/workflows/w2", {"name": "w2", "nodes": [node] * 1001}, 422),
        ("PUT", "/v1/workflows/w2", "not json", 400),
        ("POST", "/v1/workflows/w/runs", {"args": BIG}, 413),
        ("POST", "/v1/workflows/w/runs", {"priority": 11}, 422),
        ("POST", "/v1/workflows/w/runs", {"args": "\u0000"}, 422),
        ("POST", "/v1/workflows/nope/runs", {}, 404),
        ("GET", "/v1/workflow-runs?status=bogus", None, 422),
        ("GET", "/v1/workflow-runs/99999", None, 404),
        ("POST", "/v1/workflow-runs/99999/cancel", None, 404),
        ("POST", f"/v1/workflow-runs/{run}/directives",
         {**lease, "lease_token": str(uuid.uuid4()), "action": "terminate"}, 409),
        ("POST", f"/v1/workflow-runs/{run}/directives", {**lease, "action": "next_task",
                                                         "task": {"name": "x", "args": BIG}},
         413),
        ("POST", f"/v1/workflow-runs/{run}/directives", {**lease, "action": "next_task",
                                                         "task": {"name": ""}}, 422),
        ("POST", f"/v1/workflow-runs/{run}/directives", {**lease, "lease_token": "nope",
                                                         "action": "cancel"}, 422),
        ("POST", f"/v1/workflow-runs/{run}/directives", {"task_id": 99999,
                                                         "lease_token": str(uuid.uuid4()),
                                                         "action": "cancel"}, 404),
        ("PUT", f"/v1/workflow-runs/{run}/channel/k", {"value": BIG}, 413),
        ("PUT", f"/v1/workflow-runs/{run}/channel/k", {"wrong": 1}, 422),
        ("PUT", "/v1/workflow-runs/99999/channel/k", {"value": 1}, 404),
        ("POST", f"/v1/workflow-runs/{run}/channel/text/increment", {}, 409),
        ("POST", f"/v1/workflow-runs/{run}/channel/n/increment", {"by": "two"}, 422),
        ("POST", f"/v1/workflow-runs/{run}/channel/n/increment", {"by": 2**63}, 400),
        ("PUT", "/v1/schedules/s", {"target": "t", "cron": "* * * * *", "args": BIG}, 413),
        ("PUT", "/v1/schedules/s", {"target": "t", "cron": "* * * *"}, 422),
        ("PUT", "/v1/schedules/s", {"target": "t", "cron": "* * * * *", "kind": "x"}, 422),
        ("PUT", "/v1/schedules/s", {"target": "t", "cron": "* * * * *",
                                    "options": {"priority": 0}}, 422),
        ("POST", "/v1/schedules/register", {"schedules": [{"target": "t",
                                                           "cron": "* * * * *"}]}, 422),
        ("POST", "/v1/schedules/nope/resume", None, 404),
        ("DELETE", "/v1/schedules/nope", None, 404),
    ]


def test_bad_input_changes_nothing(shared: tuple[ThreadServer, str, dict]) -> None:
    server, db_url, ctx = shared
    before = snapshot(db_url)
    with httpx.Client(base_url=server.url) as api:
        for method, path, body, status in cases(ctx):
            if isinstance(body, str):
                r = api.request(method, path, content=body.encode(),
                                headers={"content-type": "application/json"})
            else:
                r = api.request(method, path, json=body)
            assert r.status_code == status, (method, path, r.status_code, r.text[:300])
            assert set(r.json()) == {"code", "message", "details"}, (path, r.text[:300])
    assert snapshot(db_url) == before

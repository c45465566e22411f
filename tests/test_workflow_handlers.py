"""Workflow handlers (issue 15): ``on_failure`` runs exactly once for a run failed by a node,
by its timeout and by a cancel; ``on_success`` once for a run that succeeds. Two server
replicas advance the runs, each with its own real worker process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from psycopg.rows import dict_row

import branchwork
from branchwork.app.engine.handlers import queue_handler
from orchestration_helpers import claim_one, fail, register_workflow, start_run
from outcomes_app import handled_boom, handled_ok, handled_slow, reg
from servers import ThreadServer
from worker_helpers import python_worker, wait_for

WORKER = ("outcomes_app:reg", "--concurrency", "4")


@pytest.fixture
def replicas(make_server: Callable[..., ThreadServer]) -> Iterator[list[ThreadServer]]:
    """Two replicas of one database, both running the advancer (timeouts every 0.2 s), each
    with a worker of its own: reports, and so advances, arrive at both."""
    servers = [make_server(workflow_interval_seconds=0.2) for _ in range(2)]
    with ExitStack() as stack:
        for s in servers:
            stack.enter_context(python_worker(s.url, *WORKER))
        branchwork.configure(url=servers[0].url)
        # Handlers must name known tasks: the workers register them before the workflows.
        wait_for(lambda: _registered(servers[0].url), 30, what="workers registered")
        yield servers
        branchwork.configure()


def _registered(url: str) -> bool:
    names = {d["name"] for d in httpx.get(f"{url}/v1/task-definitions").json()["definitions"]}
    return {"record_outcome", "step_ok", "step_boom"} <= names


def _handled(api: httpx.Client, run_id: int) -> int:
    r = api.get(f"/v1/kv/handled:{run_id}")
    return int(r.json()["value"]) if r.status_code == 200 else 0


def _outcome(api: httpx.Client, run_id: int) -> dict[str, Any]:
    return orjson.loads(api.get(f"/v1/kv/outcome:{run_id}").json()["value"])


def _handler_tasks(api: httpx.Client, run_id: int) -> list[dict[str, Any]]:
    tasks = api.get("/v1/tasks", params={"name": "record_outcome", "limit": 500}).json()["tasks"]
    return [t for t in tasks if (t.get("args") or {}).get("run_id") == run_id]


def _settled(api: httpx.Client, run_ids: list[int]) -> None:
    """Each run's handler ran once; a while later still once, with one handler task."""
    wait_for(lambda: all(_handled(api, r) >= 1 for r in run_ids), 60, what="handlers ran")
    time.sleep(1.5)  # several advancer rounds on both replicas: nothing may run it again
    for run_id in run_ids:
        assert _handled(api, run_id) == 1, run_id
        assert len(_handler_tasks(api, run_id)) == 1, run_id
        view = api.get(f"/v1/workflow-runs/{run_id}").json()
        assert view["handler"]["task_id"] == _handler_tasks(api, run_id)[0]["id"]


def test_on_failure_once_for_a_failed_node_and_on_success_once(
        replicas: list[ThreadServer]) -> None:
    failed = [handled_boom.send() for _ in range(3)]
    succeeded = [handled_ok.send() for _ in range(3)]
    with httpx.Client(base_url=replicas[1].url, timeout=30) as api:
        _settled(api, [r.id for r in failed + succeeded])
        for run in failed:
            outcome = _outcome(api, run.id)
            assert outcome["status"] == "failed"
            assert outcome["workflow"] == "handled_boom"
            assert outcome["error"]["node"] == "step_boom"
            assert outcome["error"]["error"]["message"] == "node exploded"
            assert api.get(f"/v1/workflow-runs/{run.id}").json()["handler"]["kind"] \
                == "on_failure"
        for run in succeeded:
            outcome = _outcome(api, run.id)
            assert outcome["status"] == "succeeded" and outcome["error"] is None
            assert api.get(f"/v1/workflow-runs/{run.id}").json()["handler"]["kind"] \
                == "on_success"


def test_on_failure_once_for_a_run_past_its_timeout(replicas: list[ThreadServer]) -> None:
    runs = [handled_slow.with_config(timeout_seconds=1.5).send() for _ in range(2)]
    with httpx.Client(base_url=replicas[0].url, timeout=30) as api:
        _settled(api, [r.id for r in runs])
        for run in runs:
            outcome = _outcome(api, run.id)
            assert outcome["status"] == "cancelled" and outcome["reason"] == "timeout"
            assert outcome["error"]["type"] == "WorkflowTimeout"


def test_on_failure_once_for_a_cancelled_run(replicas: list[ThreadServer]) -> None:
    runs = [handled_slow.send() for _ in range(2)]
    with httpx.Client(base_url=replicas[0].url, timeout=30) as api:
        def slow_running(run_id: int) -> bool:
            nodes = api.get(f"/v1/workflow-runs/{run_id}").json()["nodes"]
            return any(n["node"] == "step_slow" and n["task_status"] == "running"
                       for n in nodes)

        for run in runs:
            wait_for(lambda run=run: slow_running(run.id), 30, what="step_slow running")
        # Cancel through both replicas at once: one cancel wins, the other is refused.
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(
                lambda s: httpx.post(f"{s.url}/v1/workflow-runs/{runs[0].id}/cancel"),
                replicas))
        assert sorted(a.status_code for a in answers) == [200, 409]
        assert httpx.post(
            f"{replicas[1].url}/v1/workflow-runs/{runs[1].id}/cancel").status_code == 200
        _settled(api, [r.id for r in runs])
        for run in runs:
            assert _outcome(api, run.id)["status"] == "cancelled"


def test_a_handler_naming_an_unknown_task_is_refused(api: httpx.Client) -> None:
    body = {"name": "wf_bad_handler", "nodes": [{"name": "a", "task": "a"}], "edges": [],
            "on_failure": {"task": "no_such_task"}}
    r = api.put("/v1/workflows/wf_bad_handler", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "unknown_task"
    assert "no_such_task" in r.json()["message"]
    assert api.get("/v1/workflows/wf_bad_handler").status_code == 404  # nothing stored
    # A node's own task is known; a handler with a bad option is a validation error.
    body["on_failure"] = {"task": "a"}
    assert api.put("/v1/workflows/wf_bad_handler", json=body).status_code == 200
    body["on_success"] = {"task": "a", "colour": "blue"}
    assert api.put("/v1/workflows/wf_bad_handler", json=body).status_code == 422


def test_the_dsl_refuses_a_handler_that_is_no_task() -> None:
    with pytest.raises(branchwork.DefinitionError, match="on_failure takes a task"):
        @reg.workflow(name="wf_not_a_task", on_failure="cleanup")
        def wf_not_a_task() -> None:
            from outcomes_app import step_ok
            return step_ok  # type: ignore[return-value]


def test_queueing_a_handler_again_does_nothing(api: httpx.Client, db_url: str) -> None:
    """The handler row's primary key, not only the run lock: two more attempts to queue the
    handler of a finished run, in two transactions at once, queue nothing."""
    register_workflow(api, "wf_hand_failed", [{"name": "a", "task": "hand.a"}], [],
                      on_failure={"task": "hand.a", "queue": "hand-alerts"})
    run_id = start_run(api, "wf_hand_failed", {"x": 1})
    fail(api, claim_one(api, "default"), "broken")
    view = api.get(f"/v1/workflow-runs/{run_id}").json()
    assert view["status"] == "failed" and view["handler"]["kind"] == "on_failure"
    handler = api.get(f"/v1/tasks/{view['handler']['task_id']}").json()
    assert handler["queue"] == "hand-alerts"
    assert handler["args"]["error"]["node"] == "a" and handler["args"]["args"] == {"x": 1}

    async def again() -> int | None:
        async with (await psycopg.AsyncConnection.connect(db_url, row_factory=dict_row)
                    as conn, conn.transaction(), conn.cursor() as cur):
            return await queue_handler(cur, run_id)

    async def both() -> list[int | None]:
        return list(await asyncio.gather(again(), again()))

    assert asyncio.run(both()) == [None, None]
    tasks = api.get("/v1/tasks", params={"queue": "hand-alerts"}).json()["tasks"]
    assert [t["id"] for t in tasks] == [view["handler"]["task_id"]]

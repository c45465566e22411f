"""Event triggers (issue 11, item 5): a task or workflow declares the event keys that start
it; ``POST /v1/events`` starts one run per trigger, with the payload as args, once per event
id. Real server, real worker for the end-to-end cases."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from branchwork import DefinitionError, Registry
from worker_helpers import python_worker, wait_for, wait_status


def _event(api: httpx.Client, key: str, payload: Any, event_id: str | None = None) -> dict:
    body: dict[str, Any] = {"key": key, "payload": payload}
    if event_id is not None:
        body["id"] = event_id
    response = api.post("/v1/events", json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


def _tasks(api: httpx.Client, name: str) -> list[dict]:
    return api.get("/v1/tasks", params={"name": name}).json()["tasks"]


def _runs(api: httpx.Client, workflow: str) -> list[dict]:
    return api.get("/v1/workflow-runs", params={"workflow": workflow}).json()["runs"]


def _register(api: httpx.Client, tasks: list[dict], worker_id: str = "w-triggers") -> None:
    response = api.post("/v1/workers/register",
                        json={"worker_id": worker_id, "queues": ["default"], "tasks": tasks})
    assert response.status_code == 200, response.text


def test_an_event_posted_twice_with_one_id_starts_its_task_and_workflow_once(
        api: httpx.Client, server: Any) -> None:
    with python_worker(server.url, "people_app:reg", "--concurrency", "2"):
        # The worker registered the triggers with its definitions.
        wait_for(lambda: api.get("/v1/workflows/order_flow").status_code == 200,
                 what="the worker's registration")
        defs = {d["name"]: d for d in api.get("/v1/task-definitions").json()["definitions"]}
        assert defs["on_order"]["defaults"]["on_events"] == ["order.created"]  # shown there
        payload = {"order_id": 41, "amount": 2.5}
        first = _event(api, "order.created", payload, event_id="order-41")
        again = _event(api, "order.created", payload, event_id="order-41")
        assert again["duplicate"] is True and again["event_id"] == first["event_id"]
        [task] = wait_for(lambda: _tasks(api, "on_order"), what="the triggered task")
        done = wait_status(api, task["id"])
        assert done["status"] == "succeeded"
        assert done["args"] == payload and done["result"] == {"order_id": 41, "doubled": 5.0}
        [run] = wait_for(lambda: _runs(api, "order_flow"), what="the triggered run")
        wait_for(lambda: api.get(f"/v1/workflow-runs/{run['id']}").json()["status"]
                 == "succeeded", what="the triggered run to finish")
        assert api.get(f"/v1/workflow-runs/{run['id']}").json()["args"] == payload
        # Another id starts one more of each; the workflow's second key starts only it.
        _event(api, "order.created", {"order_id": 42, "amount": 1.0}, event_id="order-42")
        _event(api, "order.audit", {"order_id": 43, "amount": 1.0}, event_id="audit-43")
        wait_for(lambda: len(_runs(api, "order_flow")) == 3, what="two more runs")
        wait_for(lambda: len(_tasks(api, "on_order")) == 2, what="one more task")
        # The repeat of order-41 changed nothing, however long it is given.
        assert sorted(t["args"]["order_id"] for t in _tasks(api, "on_order")) == [41, 42]
        assert sorted(r["args"]["order_id"] for r in _runs(api, "order_flow")) == [41, 42, 43]


def test_an_event_without_triggers_starts_nothing(api: httpx.Client) -> None:
    _register(api, [{"name": "quiet", "on_events": ["other.key"]}])
    out = _event(api, "nobody.listens", {"x": 1}, event_id="e1")
    assert out["duplicate"] is False
    assert _tasks(api, "quiet") == []


def test_registering_again_replaces_a_tasks_keys(api: httpx.Client) -> None:
    _register(api, [{"name": "greet", "on_events": ["user.joined", "user.back"]}])
    _event(api, "user.joined", {"who": "ada"}, event_id="j1")
    assert [t["args"] for t in _tasks(api, "greet")] == [{"who": "ada"}]
    # A later registration without "user.joined" drops it; "user.back" still starts one.
    _register(api, [{"name": "greet", "on_events": ["user.back"]}])
    _event(api, "user.joined", {"who": "bob"}, event_id="j2")
    assert len(_tasks(api, "greet")) == 1
    _event(api, "user.back", {"who": "cy"}, event_id="b1")
    assert sorted(t["args"]["who"] for t in _tasks(api, "greet")) == ["ada", "cy"]
    # The triggered task keeps its definition's queue and send defaults.
    _register(api, [{"name": "greet", "queue": "mail", "on_events": ["user.back"],
                     "defaults": {"priority": 9, "max_retries": 3, "cron": "ignored"}}])
    _event(api, "user.back", {"who": "dee"}, event_id="b2")
    [newest] = [t for t in _tasks(api, "greet") if t["args"]["who"] == "dee"]
    assert (newest["queue"], newest["priority"], newest["max_retries"]) == ("mail", 9, 3)


def test_a_workflow_trigger_that_refuses_its_args_leaves_the_rest_started(
        api: httpx.Client) -> None:
    schema = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}
    response = api.put("/v1/workflows/strict_flow", json={
        "name": "strict_flow", "args_schema": schema, "on_events": ["thing.happened"],
        "nodes": [{"name": "a", "task": "noop"}]})
    assert response.status_code == 200, response.text
    _register(api, [{"name": "log_thing", "on_events": ["thing.happened"]}])
    out = _event(api, "thing.happened", {"n": "not a number"}, event_id="t1")
    assert out["duplicate"] is False
    assert len(_tasks(api, "log_thing")) == 1  # the task started
    assert _runs(api, "strict_flow") == []  # the run was refused, nothing half-written
    _event(api, "thing.happened", {"n": 3}, event_id="t2")
    assert len(_runs(api, "strict_flow")) == 1


def test_bad_trigger_keys_are_refused_and_change_nothing(api: httpx.Client) -> None:
    response = api.post("/v1/workers/register", json={
        "worker_id": "w-bad", "tasks": [{"name": "bad", "on_events": [""]}]})
    assert response.status_code == 422
    response = api.put("/v1/workflows/bad_flow", json={
        "name": "bad_flow", "on_events": ["x" * 600], "nodes": [{"name": "a", "task": "t"}]})
    assert response.status_code == 422
    assert api.get("/v1/workflows/bad_flow").status_code == 404


def test_the_python_declaration_is_checked_where_it_is_written() -> None:
    reg = Registry()
    with pytest.raises(DefinitionError, match="invalid event key"):
        reg.task(name="t1", on_events=[""])(lambda: None)
    with pytest.raises(DefinitionError, match="list of event keys"):
        reg.task(name="t2", on_events=5)(lambda: None)

    @reg.task(on_events="one.key")
    def one() -> None: ...

    assert one.registration()["on_events"] == ["one.key"]
    assert "on_events" not in reg.task(name="plain")(lambda: None).registration()

"""Changing a run's course from inside a node task, over HTTP (fenced by the lease token)."""

from __future__ import annotations

import uuid

import httpx

from orchestration_helpers import (
    claim,
    claim_one,
    complete,
    directive,
    node_status,
    register_workflow,
    run_view,
    start_run,
)


def _chain(api: httpx.Client, name: str, *nodes: str, **cfg: dict) -> None:
    register_workflow(api, name, [{"name": n, "task": n, **cfg.get(n, {})} for n in nodes],
                      [[a, b] for a, b in zip(nodes, nodes[1:], strict=False)])


def test_next_task_without_goto_adds_a_task_and_continues(api: httpx.Client) -> None:
    _chain(api, "w", "a", "b")
    run_id = start_run(api, "w", {"n": 1})
    a = claim_one(api)
    r = directive(api, a, action="next_task", task={"name": "extra", "args": {"e": 2}})
    assert r.status_code == 200 and r.json()["accepted"], r.text
    assert claim(api) == []  # directives apply when the task succeeds
    complete(api, a)
    got = {t["name"]: t for t in claim(api)}
    assert set(got) == {"b", "extra"}
    assert got["extra"]["args"] == {"e": 2} and got["extra"]["workflow_run_id"] == run_id
    complete(api, got["b"])
    assert run_view(api, run_id)["status"] == "running"  # the extra task is part of the run
    complete(api, got["extra"])
    assert run_view(api, run_id)["status"] == "succeeded"
    assert node_status(api, run_id) == {"a": "succeeded", "b": "succeeded",
                                        "extra": "succeeded"}


def test_next_task_goto_new_task_skips_successors(api: httpx.Client) -> None:
    _chain(api, "w", "a", "b", "c")
    run_id = start_run(api, "w")
    a = claim_one(api)
    assert directive(api, a, action="next_task", goto=True,
                     task={"name": "cleanup"}).json()["accepted"]
    complete(api, a)
    [t] = claim(api)
    assert t["name"] == "cleanup" and t["args"] is None
    complete(api, t)
    assert node_status(api, run_id) == {"a": "succeeded", "b": "skipped", "c": "skipped",
                                        "cleanup": "succeeded"}
    assert run_view(api, run_id)["status"] == "succeeded"


def test_next_task_goto_forward_into_the_graph(api: httpx.Client) -> None:
    _chain(api, "w", "a", "b", "c", "d")
    run_id = start_run(api, "w", {"k": "v"})
    a = claim_one(api)
    directive(api, a, action="next_task", goto=True, task={"name": "c"})
    complete(api, a)
    c = claim_one(api)
    assert c["name"] == "c" and c["args"] == {"k": "v"}  # the node's own spec: run args
    complete(api, c)
    complete(api, claim_one(api))  # d follows c
    assert node_status(api, run_id) == {"a": "succeeded", "b": "skipped", "c": "succeeded",
                                        "d": "succeeded"}


def test_goto_back_loops_until_the_targets_cap(api: httpx.Client) -> None:
    _chain(api, "w", "a", "b", a={"max_cycles": 2})
    run_id = start_run(api, "w")
    names = []
    for _ in range(10):
        tasks = claim(api)
        if not tasks:
            break
        [t] = tasks
        names.append(t["name"])
        if t["name"] == "b":
            directive(api, t, action="next_task", goto=True, task={"name": "a"})
        complete(api, t)
    assert names == ["a", "b", "a", "b"]  # a may run twice; the third jump is refused
    view = run_view(api, run_id)
    assert view["status"] == "succeeded"
    assert {n["node"]: n["runs"] for n in view["nodes"]} == {"a": 2, "b": 2}


def test_next_iteration_capped_by_max_cycles(api: httpx.Client) -> None:
    _chain(api, "w", "loop", "after", loop={"max_cycles": 3})
    run_id = start_run(api, "w", {"i": 0})
    seen, answers = [], []
    while True:
        t = claim_one(api)
        if t["name"] == "after":
            break
        seen.append(t["args"])
        r = directive(api, t, action="next_iteration", args={"i": len(seen)})
        answers.append(r.json()["accepted"])
        complete(api, t)
    assert seen == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert answers == [True, True, False]  # the third run is the last one allowed
    complete(api, t)
    view = run_view(api, run_id)
    assert view["status"] == "succeeded"
    assert {n["node"]: n["runs"] for n in view["nodes"]} == {"loop": 3, "after": 1}


def test_next_iteration_of_an_undeclared_node_is_refused(api: httpx.Client) -> None:
    _chain(api, "w", "a", "b")
    start_run(api, "w")
    a = claim_one(api)
    r = directive(api, a, action="next_iteration")
    assert r.status_code == 200 and r.json()["accepted"] is False
    complete(api, a)
    assert claim_one(api)["name"] == "b"


def test_terminate_completes_task_and_ends_run_succeeded(api: httpx.Client) -> None:
    register_workflow(api, "w", [{"name": n, "task": n} for n in ("a", "b", "c")],
                      [["a", "b"], ["a", "c"]])
    run_id = start_run(api, "w")
    a = claim_one(api)
    directive(api, a, action="terminate", reason="nothing to do")
    complete(api, a, {"rows": 0})
    assert claim(api) == []
    view = run_view(api, run_id)
    assert (view["status"], view["reason"]) == ("succeeded", "nothing to do")
    nodes = {n["node"]: n for n in view["nodes"]}
    assert nodes["a"]["status"] == "succeeded" and nodes["a"]["result"] == {"rows": 0}
    assert nodes["b"]["status"] == nodes["c"]["status"] == "skipped"


def test_cancel_workflow_from_a_task(api: httpx.Client) -> None:
    register_workflow(api, "w", [{"name": n, "task": n} for n in ("a", "b", "c")],
                      [["a", "c"]])
    run_id = start_run(api, "w")
    a, b = sorted(claim(api), key=lambda t: t["name"])
    r = directive(api, a, action="cancel", reason="bad input")
    assert r.json()["run_status"] == "cancelled"
    view = run_view(api, run_id)
    assert (view["status"], view["reason"]) == ("cancelled", "bad input")
    assert view["error"]["type"] == "WorkflowCancelled"
    # The running tasks (the caller and its sibling) are asked to stop.
    hb = api.post("/v1/heartbeat", json={"worker_id": "test-worker", "tasks": [
        {"id": t["id"], "lease_token": t["lease_token"]} for t in (a, b)]}).json()
    assert sorted(hb["cancel"]) == sorted([a["id"], b["id"]])
    r = api.post(f"/v1/tasks/{a['id']}/fail", json={"lease_token": a["lease_token"],
                                                    "error": {"message": "stopped"}})
    assert r.json()["status"] == "cancelled"
    assert node_status(api, run_id)["c"] == "skipped"
    wait = api.get(f"/v1/workflow-runs/{run_id}/wait", params={"timeout_seconds": 1}).json()
    assert wait["finished"] and wait["status"] == "cancelled"


def test_directives_are_fenced_by_lease(api: httpx.Client) -> None:
    _chain(api, "w", "a", "b")
    start_run(api, "w")
    a = claim_one(api)
    stale = {**a, "lease_token": str(uuid.uuid4())}
    r = directive(api, stale, action="terminate")
    assert r.status_code == 409 and r.json()["code"] == "stale_lease"
    r = directive(api, a, action="next_task")
    assert r.status_code == 422
    r = directive(api, a, action="explode")
    assert r.status_code == 422
    assert directive(api, a, action="terminate").status_code == 200
    r = directive(api, a, action="next_iteration")
    assert r.status_code == 409 and r.json()["code"] == "course_already_set"
    r = api.post("/v1/workflow-runs/999/directives",
                 json={"task_id": a["id"], "lease_token": a["lease_token"], "action": "cancel"})
    assert r.status_code == 409 and r.json()["code"] == "not_in_run"


def test_retried_attempt_forgets_directives_of_the_failed_one(api: httpx.Client) -> None:
    _chain(api, "w", "a", "b", a={"max_retries": 1, "retry_delay_seconds": 0})
    run_id = start_run(api, "w")
    a = claim_one(api)
    directive(api, a, action="terminate")
    r = api.post(f"/v1/tasks/{a['id']}/fail", json={"lease_token": a["lease_token"]})
    assert r.json()["status"] == "queued"
    complete(api, claim_one(api))
    assert claim_one(api)["name"] == "b"  # the terminate of attempt 1 did not apply
    assert run_view(api, run_id)["status"] == "running"


def test_channel_state_across_nodes(api: httpx.Client) -> None:
    _chain(api, "w", "a", "b")
    run_id = start_run(api, "w")
    a = claim_one(api)
    base = f"/v1/workflow-runs/{run_id}/channel"
    assert api.put(f"{base}/config", json={"value": {"batch": 10}}).status_code == 200
    assert api.post(f"{base}/count/increment", json={"by": 5}).json()["value"] == 5
    complete(api, a)
    b = claim_one(api)
    assert api.get(f"{base}/config").json()["value"] == {"batch": 10}
    assert api.post(f"{base}/count/increment", json={}).json()["value"] == 6
    r = api.post(f"{base}/config/increment", json={})
    assert r.status_code == 409 and r.json()["code"] == "not_an_integer"
    assert api.get(f"{base}/missing").status_code == 404
    assert api.get("/v1/workflow-runs/999/channel/x").status_code == 404
    complete(api, b)
    view = run_view(api, run_id)
    assert {e["key"]: e["value"] for e in view["channel"]} == {"config": {"batch": 10},
                                                             "count": 6}

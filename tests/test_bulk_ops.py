"""Bulk operations on real PostgreSQL: cancel, retry and delete by filter (the dry run counts
what the real one changes, nothing outside the filter is touched, running tasks are cancelled
cooperatively with real workers racing), and re-running a workflow run from a node."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from cli_helpers import bw, user_env
from orchestration_helpers import (
    claim,
    complete,
    node_status,
    register_workflow,
    run_view,
    start_run,
)
from orchestration_helpers import fail as fail_task
from servers import ThreadServer
from worker_helpers import python_worker, send, wait_for, wait_status
from workers_app import lines

HOUR = 3600.0


def sql(db_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def snapshot(db_url: str) -> dict[int, dict[str, Any]]:
    """Every task as the test judges it (what a user would look at)."""
    rows = sql(db_url, "SELECT id, name, queue, status, cancel_requested, root_id, "
               "workflow_run_id, error->>'type', created_at < now() - interval '30 minutes', "
               "attempts FROM tasks")
    keys = ("id", "name", "queue", "status", "cancel_requested", "root_id", "workflow_run_id",
            "error_type", "old", "attempts")
    return {r[0]: dict(zip(keys, r, strict=True)) for r in rows}


def fail(api: httpx.Client, task: dict[str, Any], error_type: str) -> None:
    r = api.post(f"/v1/tasks/{task['id']}/fail", json={
        "lease_token": task["lease_token"], "error": {"type": error_type, "message": "no"}})
    assert r.status_code == 200, r.text


def population(api: httpx.Client, db_url: str) -> dict[str, int]:
    """Tasks in every state, two queues, two names, two error types, a tree, old and new."""
    ids: dict[str, int] = {}

    def one(label: str, name: str, queue: str, **extra: Any) -> int:
        ids[label] = send(api, name, {"label": label}, queue=queue, **extra)
        return ids[label]

    # Each ending is applied before the next queue's tasks are sent: claims take the oldest.
    for queue in ("qa", "qb"):
        for name in ("x", "y"):
            one(f"{queue}-{name}-ok", name, queue)
            one(f"{queue}-{name}-fail-v", name, queue)
            one(f"{queue}-{name}-fail-k", name, queue)
            one(f"{queue}-{name}-cancel", name, queue)
            tasks = {t["args"]["label"]: t for t in claim(api, queue, limit=10)}
            complete(api, tasks[f"{queue}-{name}-ok"])
            fail(api, tasks[f"{queue}-{name}-fail-v"], "ValueError")
            fail(api, tasks[f"{queue}-{name}-fail-k"], "KeyError")
            api.post(f"/v1/tasks/{ids[f'{queue}-{name}-cancel']}/cancel")
            api.post("/v1/tasks/report", json={"results": [{
                "id": ids[f"{queue}-{name}-cancel"],
                "lease_token": tasks[f"{queue}-{name}-cancel"]["lease_token"],
                "outcome": "cancelled"}]})
            one(f"{queue}-{name}-running", name, queue)
            [running] = claim(api, queue, limit=1)
            assert running["id"] == ids[f"{queue}-{name}-running"]
            one(f"{queue}-{name}-queued", name, queue)
    # A finished tree, and a tree whose root finished while a child still runs.
    root = one("tree-root", "x", "qt")
    [t] = claim(api, "qt")
    complete(api, t)
    one("tree-child", "y", "qt", parent_id=root)
    [t] = claim(api, "qt")
    fail(api, t, "ValueError")
    live_root = one("live-root", "x", "qt")
    [t] = claim(api, "qt")
    complete(api, t)
    one("live-child", "y", "qt", parent_id=live_root)
    claim(api, "qt")
    # Half of qa is old.
    old = [i for label, i in ids.items() if label.startswith("qa-x")]
    sql(db_url, "UPDATE tasks SET created_at = now() - interval '2 hours' WHERE id = ANY(%s)",
        old)
    return ids


FINISHED = {"succeeded", "failed", "cancelled"}


def changeable(action: str, task: dict[str, Any], tasks: dict[int, dict[str, Any]]) -> bool:
    """What each action changes, as the docs state it."""
    if action == "cancel":
        return task["status"] == "queued" or (task["status"] == "running"
                                              and not task["cancel_requested"])
    if action == "retry":
        return task["status"] in ("failed", "cancelled")
    tree = [t for t in tasks.values() if t["root_id"] == task["root_id"]]
    return (task["status"] in FINISHED and task["workflow_run_id"] is None
            and all(t["status"] in FINISHED for t in tree))


FILTERS: dict[str, tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]] = {
    "queue": ({"queue": "qa"}, lambda t: t["queue"] == "qa"),
    "name": ({"name": "y"}, lambda t: t["name"] == "y"),
    "status": ({"status": ["failed", "running"]}, lambda t: t["status"] in ("failed", "running")),
    "older_than": ({"older_than_seconds": HOUR}, lambda t: t["old"]),
    "error_type": ({"error_type": "KeyError"}, lambda t: t["error_type"] == "KeyError"),
    "queue_and_name": ({"queue": "qb", "name": "x"},
                       lambda t: t["queue"] == "qb" and t["name"] == "x"),
}


@pytest.mark.parametrize("action", ["cancel", "retry", "delete"])
@pytest.mark.parametrize("kind", [*FILTERS, "root", "ids"])
def test_each_action_by_each_filter(api: httpx.Client, db_url: str, action: str,
                                    kind: str) -> None:
    ids = population(api, db_url)
    if kind == "root":
        body, selects = {"root_id": ids["tree-root"]}, (
            lambda t: t["root_id"] == ids["tree-root"])
    elif kind == "ids":
        chosen = {ids["qa-x-ok"], ids["qb-y-fail-k"], ids["qa-y-running"], ids["qb-x-queued"],
                  ids["qa-x-cancel"]}
        body, selects = {"ids": sorted(chosen)}, (lambda t: t["id"] in chosen)
    elif kind == "status" and action == "delete":  # delete refuses unfinished statuses
        body, selects = {"status": ["failed", "succeeded"]}, (
            lambda t: t["status"] in ("failed", "succeeded"))
    else:
        body, selects = FILTERS[kind]
    before = snapshot(db_url)
    matched = {i for i, t in before.items() if selects(t)}
    expected = {i for i in matched if changeable(action, before[i], before)}

    dry = api.post("/v1/tasks/bulk", json={"action": action, "dry_run": True, **body})
    assert dry.status_code == 200, dry.text
    assert dry.json() == {"action": action, "matched": len(matched),
                          "changed": len(expected), "dry_run": True}
    assert snapshot(db_url) == before  # a dry run changes nothing
    real = api.post("/v1/tasks/bulk", json={"action": action, **body})
    assert real.status_code == 200, real.text
    assert real.json() == {**dry.json(), "dry_run": False}

    after = snapshot(db_url)
    for i, task in before.items():
        if i not in expected:
            assert after.get(i) == task, f"task {i} outside what {action} may change"
        elif action == "delete":
            assert i not in after
        elif action == "retry":
            assert after[i]["status"] == "queued"
        elif task["status"] == "queued":
            assert after[i]["status"] == "cancelled"
        else:  # running: asked to stop, its lease untouched
            assert (after[i]["status"], after[i]["cancel_requested"]) == ("running", True)
    assert matched, "the population must give every filter something to select"
    if action == "delete":
        gone = sorted(expected)
        assert sql(db_url, "SELECT count(*) FROM task_events WHERE task_id = ANY(%s)",
                   gone) == [(0,)]


def test_running_tasks_stop_cooperatively_while_workers_race(
        make_server: Callable[..., ThreadServer], db_url: str, tmp_path: Path) -> None:
    """Real workers drain one queue while bulk cancel and retry hit another: the cancelled
    running tasks end as their worker stops them, the other queue's tasks each run once."""
    server = make_server()
    with httpx.Client(base_url=server.url, timeout=30) as api:
        coop = [send(api, "cooperative", {"limit": 60}) for _ in range(3)]
        queued_coop = [send(api, "cooperative", {"limit": 60}, delay_seconds=3600)
                       for _ in range(5)]
        r = api.post("/v1/tasks/batch", json={"tasks": [
            {"name": "record", "queue": "ordered", "args": {"label": f"r{i}"}}
            for i in range(200)]})
        ordered = [t["id"] for t in r.json()["tasks"]]
        env = {"BW_TEST_DIR": str(tmp_path)}
        with python_worker(server.url, "workers_app:reg", "--concurrency", "4", **env):
            wait_for(lambda: len(lines(tmp_path, "cooperative")) == 3, timeout=60,
                     what="the cooperative tasks to start")
            dry = api.post("/v1/tasks/bulk", json={"action": "cancel", "name": "cooperative",
                                                   "dry_run": True}).json()
            assert (dry["matched"], dry["changed"]) == (8, 8)
            out = api.post("/v1/tasks/bulk", json={"action": "cancel",
                                                   "name": "cooperative"}).json()
            assert (out["matched"], out["changed"]) == (8, 8)
            for task_id in coop:
                row = wait_status(api, task_id, timeout=30)
                assert row["status"] == "cancelled" and row["attempts"] == 1, row
            # Retried, they run again (and are cancelled again, by filter on ids).
            retry = api.post("/v1/tasks/bulk", json={"action": "retry", "ids": coop}).json()
            assert retry["changed"] == 3
            wait_for(lambda: len(lines(tmp_path, "cooperative")) >= 6 + 3, timeout=60,
                     what="the retried tasks to start")
            again = api.post("/v1/tasks/bulk", json={"action": "cancel", "ids": coop}).json()
            assert again["changed"] == 3
            for task_id in coop:
                assert wait_status(api, task_id, timeout=30)["attempts"] == 2
            wait_for(lambda: len(lines(tmp_path, "order")) == 200, timeout=120,
                     what="the other queue drained")
        for task_id in queued_coop:
            assert api.get(f"/v1/tasks/{task_id}").json()["status"] == "cancelled"
        assert sorted(lines(tmp_path, "order")) == sorted(f"r{i}" for i in range(200))
        statuses = {api.get(f"/v1/tasks/{i}").json()["status"] for i in ordered}
        assert statuses == {"succeeded"}
        assert [e["event"] for e in api.get(f"/v1/tasks/{coop[0]}").json()["history"]
                if e["event"] in ("lost", "timed_out")] == []


def test_bulk_retry_while_workers_claim_changes_each_task_once(
        make_server: Callable[..., ThreadServer], db_url: str, tmp_path: Path) -> None:
    """Bulk retries of failed tasks race a worker that claims and fails them again: no task
    is ever queued twice at once or broken; every bulk answer counts only real changes."""
    server = make_server()
    with httpx.Client(base_url=server.url, timeout=30) as api:
        ids = [send(api, "async_always_fails") for _ in range(30)]
        env = {"BW_TEST_DIR": str(tmp_path)}
        with python_worker(server.url, "workers_app:reg", "--concurrency", "8", **env):
            for task_id in ids:
                wait_status(api, task_id, "failed", timeout=60)
            changed = 0
            stop = threading.Event()
            errors: list[str] = []

            def retrier() -> None:
                nonlocal changed
                with httpx.Client(base_url=server.url, timeout=30) as other:
                    for _ in range(5):
                        r = other.post("/v1/tasks/bulk", json={
                            "action": "retry", "name": "async_always_fails"})
                        if r.status_code != 200:
                            errors.append(r.text)
                        changed += r.json()["changed"]
                        if stop.wait(0.3):
                            return

            thread = threading.Thread(target=retrier)
            thread.start()
            thread.join(60)
            stop.set()
            assert errors == []
            wait_for(lambda: all(api.get(f"/v1/tasks/{i}").json()["status"] == "failed"
                                 for i in ids), timeout=90, what="every retry to end")
        history = [e for i in ids for e in api.get(f"/v1/tasks/{i}").json()["history"]]
        assert sum(e["event"] == "retried_manually" for e in history) == changed > 0
        assert not [e for e in history if e["event"] in ("lost", "stale_lease")]


def test_delete_keeps_what_is_live_and_refuses_bad_input(api: httpx.Client,
                                                         db_url: str) -> None:
    ids = population(api, db_url)
    register_workflow(api, "w", [{"name": "a", "task": "wa"}], [], queue="wf")
    run = start_run(api, "w")
    [t] = claim(api, "wf")
    complete(api, t)
    assert run_view(api, run)["status"] == "succeeded"
    before = snapshot(db_url)
    out = api.post("/v1/tasks/bulk", json={"action": "delete", "all": True}).json()
    after = snapshot(db_url)
    assert out["matched"] == len(before)
    live = {i for i, t in before.items() if t["status"] not in FINISHED}
    assert live <= set(after)  # nothing queued or running is deleted
    assert ids["live-root"] in after  # a finished root whose child still runs stays
    assert ids["tree-root"] not in after and ids["tree-child"] not in after
    assert t["id"] in after  # a workflow run's task goes with its run only
    assert out["changed"] == len(before) - len(after)

    for bad, code in (({"action": "delete"}, "empty_filter"),
                      ({"action": "cancel", "status": []}, "empty_filter"),
                      ({"action": "delete", "status": ["queued"]}, "not_finished"),
                      ({"action": "delete", "status": ["bogus"]}, None),
                      ({"action": "explode", "all": True}, None),
                      ({"action": "retry", "older_than_seconds": -5}, None),
                      ({"action": "retry", "older_than_seconds": "1h"}, None),
                      ({"action": "retry", "queue": "qa", "unknown": 1}, None),
                      ({"action": "retry", "ids": [0]}, None),
                      ({"action": "retry", "created_after": "2026-01-02T00:00:00Z",
                        "created_before": "2026-01-01T00:00:00Z"}, "empty_range"),
                      ({"action": "retry", "older_than_seconds": 5,
                        "created_before": "2026-01-01T00:00:00Z"}, None)):
        r = api.post("/v1/tasks/bulk", json=bad)
        assert r.status_code == 422, (bad, r.text)
        if code:
            assert r.json()["code"] == code, r.text
    assert snapshot(db_url) == after


def _diamond(api: httpx.Client) -> int:
    """a → b → c, a → d; run args {"n": 1}."""
    register_workflow(api, "dia", [{"name": n, "task": f"w{n}"} for n in "abcd"],
                      [["a", "b"], ["b", "c"], ["a", "d"]], queue="wf")
    return start_run(api, "dia", {"n": 1})


def _step(api: httpx.Client, outcome: str = "ok", node: str | None = None) -> dict[str, Any]:
    """Claim the next node task (of ``node`` if given) and end it."""
    def ready() -> dict[str, Any] | None:
        tasks = claim(api, "wf", limit=10)
        chosen = next((t for t in tasks if node in (None, t["workflow_node"])), None)
        others = [{"id": t["id"], "lease_token": t["lease_token"]} for t in tasks
                  if t is not chosen]
        if others:
            r = api.post("/v1/tasks/release", json={"worker_id": "test-worker",
                                                    "tasks": others})
            assert r.status_code == 200, r.text
        return chosen
    task = wait_for(ready, timeout=15, what=f"node {node}")
    if outcome == "ok":
        complete(api, task, {"node": task["workflow_node"], "attempt": task["id"]})
    else:
        fail_task(api, task)
    return task


def _tasks_of(api: httpx.Client, run_id: int) -> dict[str, list[int]]:
    nodes: dict[str, list[int]] = {}
    for t in sorted(api.get("/v1/tasks", params={"workflow_run_id": run_id}).json()["tasks"],
                    key=lambda t: t["id"]):
        nodes.setdefault(t["workflow_node"], []).append(t["id"])
    return nodes


def test_rerun_from_a_node_reruns_it_and_downstream_only(api: httpx.Client) -> None:
    run = _diamond(api)
    _step(api, node="a")
    _step(api, node="d")
    _step(api, node="b")
    _step(api, "fail", node="c")
    assert run_view(api, run)["status"] == "failed"
    before = _tasks_of(api, run)
    a_result = api.get(f"/v1/tasks/{before['a'][0]}").json()["result"]

    r = api.post(f"/v1/workflow-runs/{run}/rerun", json={"from_node": "b"})
    assert r.status_code == 200, r.text
    assert r.json() == {"run_id": run, "from_node": "b", "nodes": ["b", "c"],
                        "queued": ["b"], "status": "running"}
    assert node_status(api, run) == {"a": "succeeded", "d": "succeeded", "b": "queued",
                                     "c": "pending"}
    _step(api, node="b")
    _step(api, node="c")
    view = run_view(api, run)
    assert view["status"] == "succeeded", view
    after = _tasks_of(api, run)
    assert after["a"] == before["a"] and after["d"] == before["d"]  # upstream kept, not rerun
    assert len(after["b"]) == 2 and len(after["c"]) == 2
    assert api.get(f"/v1/tasks/{after['a'][0]}").json()["result"] == a_result
    assert api.get(f"/v1/tasks/{after['b'][1]}").json()["args"] == {"n": 1}


def test_rerun_resumes_branches_the_failure_stopped(api: httpx.Client) -> None:
    run = _diamond(api)
    _step(api, node="a")
    _step(api, "fail", node="b")  # d was queued: the failure cancels it
    assert node_status(api, run) == {"a": "succeeded", "b": "failed", "c": "skipped",
                                     "d": "cancelled"}
    r = api.post(f"/v1/workflow-runs/{run}/rerun", json={"from_node": "b"})
    assert r.json()["nodes"] == ["b", "c", "d"] and r.json()["queued"] == ["b", "d"]
    for _ in range(3):
        _step(api)
    assert run_view(api, run)["status"] == "succeeded"
    # Re-running a succeeded run from its entry node runs everything again.
    r = api.post(f"/v1/workflow-runs/{run}/rerun", json={"from_node": "a"})
    assert r.json()["nodes"] == ["a", "b", "c", "d"] and r.json()["queued"] == ["a"]


def test_rerun_refuses_what_it_cannot_do(api: httpx.Client) -> None:
    run = _diamond(api)
    r = api.post(f"/v1/workflow-runs/{run}/rerun", json={"from_node": "a"})
    assert (r.status_code, r.json()["code"]) == (409, "run_running")
    api.post(f"/v1/workflow-runs/{run}/cancel")
    for body, status, code in (({"from_node": "zz"}, 404, "not_found"),
                               ({"from_node": "c"}, 409, "upstream_not_succeeded"),
                               ({}, 422, None), ({"from_node": 3}, 422, None)):
        r = api.post(f"/v1/workflow-runs/{run}/rerun", json=body)
        assert r.status_code == status, (body, r.text)
        if code:
            assert r.json()["code"] == code
    assert api.post("/v1/workflow-runs/999999/rerun",
                    json={"from_node": "a"}).status_code == 404
    assert run_view(api, run)["status"] == "cancelled"  # refusals change nothing


def test_cli_bulk_and_rerun(api: httpx.Client, server: ThreadServer, db_url: str) -> None:
    ids = population(api, db_url)
    env = user_env(server.url)
    out = bw("tasks", "cancel", "--queue", "qa", "--name", "x", "--dry-run", env=env)
    assert out.returncode == 0, out.stderr
    assert "6 task(s) match; 2 would be cancelled" in out.stdout
    out = bw("--json", "tasks", "retry", "--error-type", "KeyError", env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["changed"] == 4
    assert api.get(f"/v1/tasks/{ids['qb-y-fail-k']}").json()["status"] == "queued"
    out = bw("tasks", "delete", "--status", "succeeded", "--queue", "qb", env=env)
    assert out.returncode == 0, out.stderr
    assert "deleted" in out.stdout
    assert api.get(f"/v1/tasks/{ids['qb-x-ok']}").status_code == 404
    out = bw("tasks", "delete", env=env)
    assert out.returncode == 1 and "all=true" in out.stderr
    out = bw("tasks", "delete", "--status", "running", env=env)
    assert out.returncode == 1 and "finished tasks only" in out.stderr
    out = bw("tasks", "cancel", "--older-than", "yesterday", env=env)
    assert out.returncode == 2
    out = bw("tasks", "cancel", str(ids["qa-y-queued"]), env=env)  # one by id, as before
    assert out.returncode == 0 and "cancelled" in out.stdout

    run = _diamond(api)
    _step(api, node="a")
    _step(api, "fail", node="b")
    out = bw("runs", "rerun", str(run), "--from", "b", env=env)
    assert out.returncode == 0, out.stderr
    assert f"run {run} running again from b" in out.stdout
    out = bw("runs", "rerun", str(run), "--from", "b", env=env)
    assert out.returncode == 1 and "still running" in out.stderr

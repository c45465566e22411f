"""Retention on real PostgreSQL: the background service and the prune API/CLI delete finished
tasks (with their history and logs), finished workflow runs and expired KV entries past their
retention, never anything queued, running or part of something unfinished."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

import branchwork
from cli_helpers import bw, user_env
from orchestration_helpers import claim, complete, fail, register_workflow, start_run
from servers import ThreadServer
from worker_helpers import python_worker, send, wait_for

DAY = 86400.0


def sql(db_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def age(db_url: str, ids: list[int], seconds: float) -> None:
    """Make tasks look created and finished ``seconds`` ago."""
    sql(db_url, "UPDATE tasks SET created_at = now() - make_interval(secs => %s), "
        "finished_at = CASE WHEN finished_at IS NOT NULL "
        "THEN now() - make_interval(secs => %s) END WHERE id = ANY(%s)",
        seconds, seconds, ids)


def existing(db_url: str, ids: list[int]) -> set[int]:
    return {r[0] for r in sql(db_url, "SELECT id FROM tasks WHERE id = ANY(%s)", ids)}


def leftovers(db_url: str, ids: list[int]) -> dict[str, int]:
    """History and logs rows still there for these task ids."""
    return {table: sql(db_url, f"SELECT count(*) FROM {table} WHERE task_id = ANY(%s)", ids)[0][0]
            for table in ("task_events", "task_logs")}


def finish(api: httpx.Client, queue: str, outcome: str, n: int = 1,
           name: str = "job") -> list[int]:
    """Send ``n`` tasks to ``queue`` and end them with ``outcome`` (logs included)."""
    ids = [send(api, name, {"i": i}, queue=queue) for i in range(n)]
    done: list[int] = []
    while len(done) < n:
        for task in claim(api, queue, limit=n):
            if outcome == "cancelled":
                assert api.post(f"/v1/tasks/{task['id']}/cancel").status_code == 200
                r = api.post("/v1/tasks/report", json={"results": [{
                    "id": task["id"], "lease_token": task["lease_token"],
                    "outcome": "cancelled", "logs": "bye"}]})
                assert r.status_code == 200, r.text
            elif outcome == "failed":
                fail(api, task)
            else:
                r = api.post(f"/v1/tasks/{task['id']}/complete", json={
                    "lease_token": task["lease_token"], "result": 1, "logs": "hello"})
                assert r.status_code == 200, r.text
            done.append(task["id"])
    assert sorted(done) == sorted(ids)
    return ids


@pytest.fixture
def fast_pruner(make_server: Callable[..., ThreadServer]) -> ThreadServer:
    return make_server(retention_interval_seconds=0.2)


@pytest.fixture
def api(fast_pruner: ThreadServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fast_pruner.url, timeout=30) as client:
        yield client


def test_service_prunes_only_old_finished_tasks(api: httpx.Client, db_url: str) -> None:
    old_ok = finish(api, "r", "succeeded", 3)
    new_ok = finish(api, "r", "succeeded", 2)
    old_failed = finish(api, "r", "failed", 2)     # 10 days: within the 30 days of failures
    older_failed = finish(api, "r", "failed", 2)   # 31 days: past them
    old_cancelled = finish(api, "r", "cancelled", 1)
    queued = [send(api, "job", queue="r") for _ in range(3)]
    running = [send(api, "job", queue="r2")]
    assert [t["id"] for t in claim(api, "r2")] == running
    age(db_url, old_ok + old_cancelled + queued + running, 8 * DAY)
    age(db_url, old_failed, 10 * DAY)
    age(db_url, older_failed, 31 * DAY)
    gone = old_ok + older_failed + old_cancelled
    kept = new_ok + old_failed + queued + running

    wait_for(lambda: not existing(db_url, gone), timeout=30, what="the service to prune")
    assert existing(db_url, kept) == set(kept)
    assert leftovers(db_url, gone) == {"task_events": 0, "task_logs": 0}
    assert leftovers(db_url, new_ok)["task_logs"] == 2  # the kept ones keep their logs
    assert api.get(f"/v1/tasks/{old_ok[0]}").status_code == 404
    assert {api.get(f"/v1/tasks/{i}").json()["status"] for i in queued} == {"queued"}


def test_queue_setting_beats_the_default(api: httpx.Client, db_url: str) -> None:
    r = api.put("/v1/queues/short", json={"retention_succeeded_seconds": 60})
    assert r.status_code == 200, r.text
    assert r.json()["retention_succeeded_seconds"] == 60
    r = api.put("/v1/queues/forever", json={"retention_succeeded_seconds": 0,
                                            "retention_failed_seconds": 0})
    assert r.status_code == 200, r.text
    short = finish(api, "short", "succeeded", 2)
    plain = finish(api, "plain", "succeeded", 2)
    forever = finish(api, "forever", "succeeded", 2) + finish(api, "forever", "failed", 1)
    short_failed = finish(api, "short", "failed", 1)  # its failures keep the default 30 days
    age(db_url, short + plain + short_failed, 120)
    age(db_url, forever, 400 * DAY)

    wait_for(lambda: not existing(db_url, short), timeout=30, what="the short queue pruned")
    time.sleep(1.0)  # a few more rounds of the service
    assert existing(db_url, plain + forever + short_failed) == set(plain + forever + short_failed)
    listed = {q["name"]: q for q in api.get("/v1/queues").json()["queues"]}
    assert listed["forever"]["retention_failed_seconds"] == 0
    assert listed["plain"]["retention_succeeded_seconds"] is None
    # Omitted settings are unchanged; null goes back to the server's default.
    r = api.put("/v1/queues/short", json={"paused": False})
    assert r.json()["retention_succeeded_seconds"] == 60
    r = api.put("/v1/queues/short", json={"retention_succeeded_seconds": None})
    assert r.json()["retention_succeeded_seconds"] is None
    for bad in ({"retention_failed_seconds": -1}, {"retention_failed_seconds": "7d"}):
        r = api.put("/v1/queues/short", json=bad)
        assert r.status_code == 422, r.text


def _workflow(api: httpx.Client) -> None:
    register_workflow(api, "pipe", [{"name": "a", "task": "wa"}, {"name": "b", "task": "wb"}],
                      [["a", "b"]], queue="wf")


def _drive(api: httpx.Client, n: int = 1) -> list[int]:
    """Complete ``n`` node tasks of queue wf; their ids."""
    ids = []
    for _ in range(n):
        [task] = wait_for(lambda: claim(api, "wf", limit=1), timeout=10, what="a node task")
        complete(api, task, {"node": task["workflow_node"]})
        ids.append(task["id"])
    return ids


def test_runs_trees_and_kv_follow(api: httpx.Client, db_url: str) -> None:
    _workflow(api)
    done_run = start_run(api, "pipe")
    done_tasks = _drive(api, 2)
    assert api.get(f"/v1/workflow-runs/{done_run}").json()["status"] == "succeeded"
    r = api.put(f"/v1/workflow-runs/{done_run}/channel/k", json={"value": 1})
    assert r.status_code == 200, r.text
    live_run = start_run(api, "pipe")
    live_tasks = _drive(api, 1)  # a done, b queued: the run is still running
    # A tree whose root finished long ago but one child still runs; and a finished tree.
    root = send(api, "root", queue="t")
    [t] = claim(api, "t")
    complete(api, t)
    child = send(api, "child", queue="t", parent_id=root)
    done_root = send(api, "root", queue="t")
    [t] = claim(api, "t", limit=1)
    assert t["id"] == child  # running, unfinished
    [t2] = claim(api, "t", limit=1)
    complete(api, t2)
    done_child = send(api, "child", queue="t", parent_id=done_root)
    [t3] = claim(api, "t", limit=1)
    complete(api, t3)
    # KV: one entry expired, one with a TTL still ahead, one without.
    for key, ttl in (("gone", 0.2), ("later", 3600), ("plain", None)):
        body: dict[str, Any] = {"value": "v"} | ({"ttl_seconds": ttl} if ttl else {})
        assert api.put(f"/v1/kv/{key}", json=body).status_code == 200
    sql(db_url, "UPDATE workflow_runs SET finished_at = now() - interval '8 days' "
        "WHERE finished_at IS NOT NULL")
    age(db_url, done_tasks + live_tasks + [root, done_root, done_child], 8 * DAY)

    wait_for(lambda: not sql(db_url, "SELECT 1 FROM workflow_runs WHERE id = %s", done_run),
             timeout=30, what="the finished run pruned")
    wait_for(lambda: not existing(db_url, [done_root, done_child]), timeout=30,
             what="the finished tree pruned")
    wait_for(lambda: api.get("/v1/kv/gone").status_code == 404 and not sql(
        db_url, "SELECT 1 FROM kv WHERE key = 'gone'"), timeout=30, what="expired KV pruned")
    assert existing(db_url, done_tasks) == set()
    for table in ("workflow_nodes", "workflow_channel"):
        assert sql(db_url, f"SELECT count(*) FROM {table} WHERE run_id = %s", done_run) == [(0,)]
    assert api.get(f"/v1/workflow-runs/{done_run}").status_code == 404
    # What belongs to something unfinished stays.
    assert api.get(f"/v1/workflow-runs/{live_run}").json()["status"] == "running"
    assert existing(db_url, live_tasks) == set(live_tasks)
    assert existing(db_url, [root, child]) == {root, child}
    assert api.get("/v1/kv/later").json()["value"] == "v"
    assert api.get("/v1/kv/plain").json()["value"] == "v"


def test_nothing_active_is_deleted_while_workers_drain(
        make_server: Callable[..., ThreadServer], db_url: str, tmp_path: Path) -> None:
    """Two replicas prune everything finished (older_than 0) over and over while two real
    worker processes drain a queue: every task still runs exactly once."""
    a = make_server(retention_interval_seconds=0.1, retention_succeeded_seconds=0.001)
    b = make_server(retention_interval_seconds=0.1, retention_succeeded_seconds=0.001)
    n = 400
    with httpx.Client(base_url=a.url, timeout=30) as api:
        r = api.post("/v1/tasks/batch", json={"tasks": [
            {"name": "record", "queue": "ordered", "args": {"label": f"t{i}"}}
            for i in range(n)]})
        assert r.status_code == 201, r.text
        ids = [t["id"] for t in r.json()["tasks"]]
        stop = threading.Event()
        pruned: list[dict[str, Any]] = []

        def prune_loop() -> None:
            with httpx.Client(base_url=b.url, timeout=30) as other:
                while not stop.is_set():
                    r = other.post("/v1/prune", json={"older_than_seconds": 0})
                    assert r.status_code == 200, r.text
                    pruned.append(r.json())

        thread = threading.Thread(target=prune_loop)
        thread.start()
        env = {"BW_TEST_DIR": str(tmp_path)}
        try:
            with python_worker(a.url, "workers_app:reg", "--concurrency", "4", **env), \
                    python_worker(b.url, "workers_app:reg", "--concurrency", "4", **env):
                wait_for(lambda: not sql(db_url, "SELECT 1 FROM tasks WHERE id = ANY(%s) AND "
                                         "status IN ('queued', 'running')", ids),
                         timeout=120, what="the queue drained")
        finally:
            stop.set()
            thread.join(30)
    ran = (tmp_path / "order").read_text().split()
    assert sorted(ran) == sorted(f"t{i}" for i in range(n))  # each exactly once
    wait_for(lambda: not existing(db_url, ids), timeout=30, what="all of them pruned")
    assert sum(p["tasks"] for p in pruned) > 0


def test_prune_api_and_cli_with_dry_run(make_server: Callable[..., ThreadServer],
                                        db_url: str) -> None:
    server = make_server(retention_interval_seconds=3600)
    with httpx.Client(base_url=server.url, timeout=30) as api:
        ok = finish(api, "p", "succeeded", 3)
        failed = finish(api, "p", "failed", 2)
        other = finish(api, "p2", "succeeded", 2)
        fresh = finish(api, "p", "succeeded", 1)
        queued = [send(api, "job", queue="p")]
        age(db_url, ok + failed + other + queued, 3600)

        r = api.post("/v1/prune", json={"older_than_seconds": 600, "queue": "p", "dry_run": True})
        assert r.status_code == 200, r.text
        assert r.json() == {"tasks": 5, "runs": 0, "kv": 0, "dry_run": True}
        assert existing(db_url, ok + failed) == set(ok + failed)  # a dry run deletes nothing
        r = api.post("/v1/prune", json={"older_than_seconds": 600, "queue": "p"})
        assert r.json() == {"tasks": 5, "runs": 0, "kv": 0, "dry_run": False}
        assert existing(db_url, ok + failed + other + queued + fresh) == set(
            other + queued + fresh)
        # The retention settings (7 days by default) keep the rest.
        assert api.post("/v1/prune", json={}).json()["tasks"] == 0
        for bad in ({"older_than_seconds": -1}, {"older_than_seconds": "1h"},
                    {"queue": "bad queue!"}, {"dry_run": "yes"}, {"olderthan": 1}):
            r = api.post("/v1/prune", json=bad)
            assert r.status_code == 422, (bad, r.text)
            assert r.json()["code"]

        env = user_env(server.url)
        out = bw("prune", "--older-than", "10m", "--dry-run", env=env)
        assert out.returncode == 0, out.stderr
        assert "would delete 2 task" in out.stdout
        out = bw("--json", "prune", "--older-than", "10m", env=env)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == {"tasks": 2, "runs": 0, "kv": 0, "dry_run": False}
        assert existing(db_url, other) == set()
        out = bw("prune", "--older-than", "soon", env=env)
        assert out.returncode == 2 and "older-than" in out.stderr


def test_kv_entries_with_a_ttl_expire(fast_pruner: ThreadServer, db_url: str) -> None:
    """What a user sees of a TTL through the Python client: gone once expired, free to take
    again, counted from zero, and deleted by the service."""
    with branchwork.Client(fast_pruner.url) as client:
        client.kv_set("lock", "a", ttl_seconds=0.5)
        client.kv_set("counter", "41", ttl_seconds=0.5)
        client.kv_set("kept", "k", ttl_seconds=0.5)
        client.kv_set("kept", "k")  # a write without a TTL clears it
        assert client.kv_set_if_absent("lock", "b") is False
        assert client.kv_get("lock") == "a"
        time.sleep(0.8)
        assert client.kv_get("lock") is None
        assert [i["key"] for i in client.kv_list()["items"]] == ["kept"]
        assert client.kv_increment("counter", 2) == 2  # an expired value counts as absent
        assert client.kv_set_if_absent("lock", "b", ttl_seconds=3600) is True
        assert client.kv_get("lock") == "b"
        assert client.kv_delete("kept") is True
        client.kv_set("gone", "g", ttl_seconds=0.1)
        time.sleep(0.3)
        assert client.kv_delete("gone") is False  # expired: nothing there to delete
        client.kv_set("late", "l", ttl_seconds=0.1)
        wait_for(lambda: not sql(db_url, "SELECT 1 FROM kv WHERE key = 'late'"), timeout=30,
                 what="the service to delete the expired entry")
        for bad in (0, -1):
            with pytest.raises(branchwork.ApiError):
                client.kv_set("x", "y", ttl_seconds=bad)


def test_queue_retention_declared_in_code_reaches_the_server(fast_pruner: ThreadServer,
                                                              db_url: str) -> None:
    """``Queue("brief", retention={"succeeded": 60})`` in a worker's registry: the worker
    writes it when it registers, and the service prunes by it."""
    with httpx.Client(base_url=fast_pruner.url, timeout=30) as api:
        task_id = send(api, "note", {"text": "hi"}, queue="brief")
        with python_worker(fast_pruner.url, "retention_app:reg"):
            wait_for(lambda: api.get(f"/v1/tasks/{task_id}").json()["status"] == "succeeded",
                     timeout=60, what="the task to run")
        queues = {q["name"]: q for q in api.get("/v1/queues").json()["queues"]}
        assert queues["brief"]["retention_succeeded_seconds"] == 60
        assert queues["brief"]["retention_failed_seconds"] is None
        age(db_url, [task_id], 120)
        wait_for(lambda: api.get(f"/v1/tasks/{task_id}").status_code == 404, timeout=30,
                 what="the task pruned by the queue's retention")

"""Workflows advanced by the server, driven over HTTP by a hand-written worker."""

from __future__ import annotations

import httpx
import psycopg

from branchwork.app.store import workflow_nodes as engine
from orchestration_helpers import (
    claim,
    claim_one,
    complete,
    fail,
    node_status,
    register_workflow,
    run_view,
    start_run,
    wait_for,
)


def _nodes(*names: str, **extra: dict) -> list[dict]:
    return [{"name": n, "task": n, **extra.get(n, {})} for n in names]


def test_diamond_runs_join_once_after_both(api: httpx.Client) -> None:
    register_workflow(api, "diamond", _nodes("a", "b", "c", "d"),
                      [["a", "b"], ["a", "c"], ["b", "d"], ["c", "d"]])
    run_id = start_run(api, "diamond", {"x": 1})
    a = claim_one(api)
    assert (a["name"], a["workflow_run_id"], a["workflow_node"], a["args"]) == (
        "a", run_id, "a", {"x": 1})
    assert claim(api) == []  # b and c wait for a
    complete(api, a, {"a": 1})
    bc = claim(api)
    assert sorted(t["name"] for t in bc) == ["b", "c"]
    complete(api, bc[0], 1)
    assert claim(api) == []  # d waits for the other one
    assert node_status(api, run_id)["d"] == "pending"
    complete(api, bc[1], 2)
    d = claim(api)
    assert [t["name"] for t in d] == ["d"]
    assert claim(api) == []
    complete(api, d[0], "done")
    view = run_view(api, run_id)
    assert view["status"] == "succeeded"
    results = {n["node"]: n["result"] for n in view["nodes"]}
    assert results == {"a": {"a": 1}, bc[0]["name"]: 1, bc[1]["name"]: 2, "d": "done"}
    assert all(n["runs"] == 1 for n in view["nodes"])
    r = api.get("/v1/tasks", params={"workflow_run_id": run_id})
    assert len(r.json()["tasks"]) == 4


def test_failed_node_fails_run_and_skips_downstream(api: httpx.Client) -> None:
    register_workflow(api, "chain", _nodes("a", "b", "c", "side"),
                      [["a", "b"], ["b", "c"]])
    run_id = start_run(api, "chain")
    first = claim(api)
    assert sorted(t["name"] for t in first) == ["a", "side"]
    a = next(t for t in first if t["name"] == "a")
    fail(api, a, "extract broke")
    view = run_view(api, run_id)
    assert view["status"] == "failed"
    assert view["error"]["node"] == "a"
    assert view["error"]["error"]["message"] == "extract broke"
    status = {n["node"]: n["status"] for n in view["nodes"]}
    assert status["a"] == "failed"
    assert status["b"] == "skipped" and status["c"] == "skipped"
    assert claim(api) == []


def test_retry_then_success_does_not_fail_run(api: httpx.Client) -> None:
    register_workflow(api, "retrying", _nodes("a", "b", a={"max_retries": 1,
                                                            "retry_delay_seconds": 0}),
                      [["a", "b"]])
    run_id = start_run(api, "retrying")
    fail(api, claim_one(api))
    assert run_view(api, run_id)["status"] == "running"
    complete(api, claim_one(api))
    complete(api, claim_one(api))
    assert run_view(api, run_id)["status"] == "succeeded"


def test_bad_definitions_are_refused(api: httpx.Client) -> None:
    cases = [
        ({"name": "w", "nodes": [{"name": "a", "task": "a"}], "edges": [["a", "zz"]]}, 422),
        ({"name": "w", "nodes": _nodes("a", "b"), "edges": [["a", "b"], ["b", "a"]]}, 422),
        ({"name": "w", "nodes": _nodes("a", "a"), "edges": []}, 422),
        ({"name": "w", "nodes": [], "edges": []}, 422),
        ({"name": "other", "nodes": _nodes("a"), "edges": []}, 422),
        ({"name": "w", "nodes": _nodes("a"), "edges": [], "bogus": 1}, 422),
    ]
    for body, status in cases:
        r = api.put("/v1/workflows/w", json=body)
        assert r.status_code == status, (body, r.text)
        assert set(r.json()) == {"code", "message", "details"}
    assert api.get("/v1/workflows").json()["workflows"] == []
    r = api.post("/v1/workflows/nope/runs", json={})
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert api.get("/v1/workflow-runs/999").status_code == 404


def test_idempotent_run_start(api: httpx.Client) -> None:
    register_workflow(api, "once", _nodes("a"), [])
    first = start_run(api, "once", idempotency_key="k1")
    r = api.post("/v1/workflows/once/runs", json={"idempotency_key": "k1"})
    assert r.json() == {"id": first, "duplicate": True}
    assert len(claim(api)) == 1


def test_server_checks_run_args_against_the_args_schema(api: httpx.Client) -> None:
    # The schema a pydantic model gives (what the Python client registers), with a $ref.
    schema = {"$defs": {"Mode": {"enum": ["full", "delta"], "type": "string"}},
              "properties": {"source": {"type": "string"}, "mode": {"$ref": "#/$defs/Mode"},
                             "limit": {"default": 10, "type": "integer"}},
              "required": ["source"], "title": "ETLArgs", "type": "object"}
    register_workflow(api, "etl", _nodes("extract"), [], args_schema=schema)
    for args, path in (({"mode": "full"}, []), ({"source": "s3://in", "limit": "ten"}, ["limit"]),
                       ({"source": "s3://in", "mode": "weekly"}, ["mode"]), (None, [])):
        r = api.post("/v1/workflows/etl/runs", json={"args": args})
        assert r.status_code == 422, (args, r.text)
        body = r.json()
        assert body["code"] == "invalid_args" and body["details"]["errors"][0]["path"] == path
    assert api.get("/v1/workflow-runs").json()["runs"] == []  # refused starts left nothing
    assert claim(api) == []
    run_id = start_run(api, "etl", {"source": "s3://in", "mode": "delta"})
    assert claim_one(api)["args"] == {"source": "s3://in", "mode": "delta"}
    assert run_view(api, run_id)["status"] == "running"
    # A schema that is no JSON schema, or points at a URL, is refused when registered.
    for bad in ({"type": 5}, {"$ref": "http://127.0.0.1:9/schema.json"}, {"$ref": "#/nope"}):
        r = api.put("/v1/workflows/other", json={"name": "other", "nodes": _nodes("a"),
                                                 "args_schema": bad})
        assert r.status_code == 422 and r.json()["code"] == "invalid_args_schema", r.text
    assert [w["name"] for w in api.get("/v1/workflows").json()["workflows"]] == ["etl"]
    # Without a schema, any args go (the node tasks' own signatures judge them).
    register_workflow(api, "free", _nodes("a"), [])
    start_run(api, "free", ["anything", 1])


def test_cancel_run_cancels_queued_tasks(api: httpx.Client) -> None:
    register_workflow(api, "par", _nodes("a", "b"), [])
    run_id = start_run(api, "par")
    a = claim(api, limit=1)[0]
    r = api.post(f"/v1/workflow-runs/{run_id}/cancel")
    assert r.status_code == 200
    view = run_view(api, run_id)
    assert view["status"] == "cancelled"
    assert claim(api) == []  # b was queued: now cancelled
    hb = api.post("/v1/heartbeat", json={"worker_id": "test-worker", "tasks": [
        {"id": a["id"], "lease_token": a["lease_token"]}]}).json()
    assert hb["cancel"] == [a["id"]]
    assert api.post(f"/v1/workflow-runs/{run_id}/cancel").status_code == 409


def test_workflow_timeout_cancels_run(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(workflow_interval_seconds=0.2)
    with httpx.Client(base_url=server.url, timeout=30) as api:
        register_workflow(api, "slow", _nodes("a", "b"), [["a", "b"]], timeout_seconds=1)
        run_id = start_run(api, "slow")
        a = claim_one(api)
        view = wait_for(lambda: (v := run_view(api, run_id))["status"] != "running" and v,
                        timeout=10)
        assert view["status"] == "cancelled" and view["reason"] == "timeout"
        assert view["error"]["type"] == "WorkflowTimeout"
        assert {n["node"]: n["status"] for n in view["nodes"]} == {"a": "cancelled",
                                                                  "b": "skipped"}
        complete(api, a)  # the late result is recorded but starts nothing
        assert claim(api) == []


def test_run_overrides_with_config(api: httpx.Client) -> None:
    register_workflow(api, "cfg", [{"name": "a", "task": "a"},
                                   {"name": "b", "task": "b", "queue": "cpu"}], [["a", "b"]])
    start_run(api, "cfg", queue="etl", priority=9)
    a = claim_one(api, "etl")
    assert a["priority"] == 9
    complete(api, a)
    assert claim_one(api, "cpu")["name"] == "b"


def test_advancing_reads_the_run_not_the_task_table(api: httpx.Client, db_url: str) -> None:
    """What the advance path asks of ``tasks`` is answered by primary key or the run index,
    planned on a 60,000-row table with fresh statistics (no planner settings forced)."""
    register_workflow(api, "idx", _nodes("a", "b"), [["a", "b"]])
    run_id = start_run(api, "idx")
    a = claim_one(api)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO tasks (name, queue, status, priority, root_id, finished_at, "
                     "workflow_run_id) SELECT 'filler', 'other', 'succeeded', 5, g, now(), "
                     "CASE WHEN g % 2 = 0 THEN 1000000 + g END "
                     "FROM generate_series(1, 60000) g")
        conn.execute("ANALYZE tasks")
        statements = {
            # workflows.lock_runs_of_tasks (the report path, before REPORT_SQL)
            "lock runs": ("SELECT r.id FROM workflow_runs r WHERE r.id IN (SELECT "
                          "t.workflow_run_id FROM tasks t WHERE t.id = ANY(%s)) "
                          "ORDER BY r.id FOR UPDATE OF r", ([a["id"]],)),
            # engine.advance (RunAdvance.tasks_finished): the finished node and its task
            "node": ("SELECT n.*, t.attempts, t.error AS task_error FROM workflow_nodes n "
                     "JOIN tasks t ON t.id = n.task_id WHERE n.task_id = %s AND n.run_id = %s "
                     "AND n.status = 'queued'", (a["id"], run_id)),
            # engine.advance (RunAdvance.finish_run): fail, cancel, terminate, timeout
            "run tasks": ("SELECT id FROM tasks WHERE workflow_run_id = %s "
                          "AND status IN ('queued', 'running')", (run_id,)),
            "reconcile": (engine.RECONCILE_SQL, (500,)),
        }
        for what, (sql, params) in statements.items():
            plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql, params))
            assert "Seq Scan on tasks" not in plan, (what, plan)
    complete(api, a)
    assert claim_one(api)["name"] == "b"


def test_node_task_cancelled_outside_the_report_path(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(workflow_interval_seconds=0.2)
    with httpx.Client(base_url=server.url, timeout=30) as api:
        register_workflow(api, "w", _nodes("a", "b"), [["a", "b"]])
        run_id = start_run(api, "w")
        a = run_view(api, run_id)["nodes"][0]
        assert api.post(f"/v1/tasks/{a['task_id']}/cancel").status_code == 200
        view = wait_for(lambda: (v := run_view(api, run_id))["status"] != "running" and v)
        assert view["status"] == "cancelled"
        assert {n["node"]: n["status"] for n in view["nodes"]} == {"a": "cancelled",
                                                                  "b": "skipped"}


def test_node_lost_by_a_dead_worker_fails_the_run(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(workflow_interval_seconds=0.2, lease_seconds=0.5)
    with httpx.Client(base_url=server.url, timeout=30) as api:
        register_workflow(api, "w", _nodes("a", "b"), [["a", "b"]])
        run_id = start_run(api, "w")
        claim_one(api)  # and never heartbeat: the lease runs out, no retries left
        view = wait_for(lambda: (v := run_view(api, run_id))["status"] != "running" and v)
        assert view["status"] == "failed"
        assert view["error"]["error"]["type"] == "LeaseExpired"
        assert node_status(api, run_id) == {"a": "failed", "b": "skipped"}


def test_parallel_completions_queue_each_join_once(api: httpx.Client, server) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    register_workflow(api, "d", _nodes("a", "b", "c", "e", "j"),
                      [["a", "b"], ["a", "c"], ["a", "e"], ["b", "j"], ["c", "j"], ["e", "j"]])
    runs = [start_run(api, "d") for _ in range(8)]
    for task in claim(api, limit=100):
        complete(api, task)
    middle = claim(api, limit=100)
    assert len(middle) == 24

    def finish(task: dict) -> None:
        with httpx.Client(base_url=server.url) as c:
            complete(c, task)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(finish, middle))
    joins = claim(api, limit=100)
    assert sorted(t["workflow_run_id"] for t in joins) == sorted(runs)
    assert {t["name"] for t in joins} == {"j"}

"""The claim and report statements after their cost cuts (issue 14) keep every promise: the
claim's ``replay`` stays exact though it looks for steps only on tasks that ran before; a
report of children resumes their durable parent in the report's own transaction though it
looks for waits only through the finished tasks' parents; a report still locks and advances
workflow runs (its run lock now in the report statement); the claim statement runs on its
generic plan. Real server and PostgreSQL, over HTTP."""

from __future__ import annotations

import httpx
import psycopg
import pytest

from branchwork.app.store import leases


@pytest.fixture
def quiet_api(make_server) -> httpx.Client:
    # The children sweeper (the safety net) every hour: only a report can resume a parent.
    server = make_server(wait_interval_seconds=3600.0)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def send(api: httpx.Client, **task: object) -> int:
    resp = api.post("/v1/tasks", json=task)
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def claim(api: httpx.Client, queue: str, limit: int = 10) -> list[dict]:
    resp = api.post("/v1/claim", json={"worker_id": "w1", "queues": [queue], "limit": limit})
    assert resp.status_code == 200, resp.text
    return resp.json()["tasks"]


def report(api: httpx.Client, *items: dict) -> list[dict]:
    resp = api.post("/v1/tasks/report", json={"worker_id": "w1", "results": list(items)})
    assert resp.status_code == 200, resp.text
    return resp.json()["results"]


def status(api: httpx.Client, task_id: int) -> str:
    return api.get(f"/v1/tasks/{task_id}").json()["status"]


def record_step(api: httpx.Client, task: dict, name: str) -> None:
    resp = api.post(f"/v1/tasks/{task['id']}/steps", json={
        "lease_token": task["lease_token"], "name": name, "fn": "f", "result": 1,
        "duration_seconds": 0.01})
    assert resp.status_code == 200, resp.text


def test_replay_is_exact_for_first_runs_and_reruns(api: httpx.Client) -> None:
    q = "replay"
    stepped = send(api, name="d", queue=q, max_retries=3, retry_delay_seconds=0)
    plain = send(api, name="d", queue=q, max_retries=3, retry_delay_seconds=0)
    slept = send(api, name="d", queue=q)
    first = {t["id"]: t for t in claim(api, q)}
    assert {first[i]["replay"] for i in (stepped, plain, slept)} == {False}
    record_step(api, first[stepped], "charge")
    out = report(
        api,
        {"id": stepped, "lease_token": first[stepped]["lease_token"], "outcome": "failed",
         "retry_delay_seconds": 0},
        # a re-run without steps: looked for, none found
        {"id": plain, "lease_token": first[plain]["lease_token"], "outcome": "failed",
         "retry_delay_seconds": 0},
        # a sleep stores its step at suspend; the attempt is given back
        {"id": slept, "lease_token": first[slept]["lease_token"], "outcome": "suspended",
         "wait": {"kind": "sleep", "step": "sleep", "seconds": 0}})
    assert [o["outcome"] for o in out] == ["applied"] * 3
    again = {t["id"]: t for t in claim(api, q)}
    assert set(again) == {stepped, plain, slept}
    assert again[stepped]["replay"] is True
    assert again[plain]["replay"] is False
    assert again[slept]["replay"] is True
    assert again[slept]["attempts"] == 1  # the suspended attempt was given back


def test_parent_resumes_when_its_last_childs_report_lands(quiet_api: httpx.Client) -> None:
    api = quiet_api
    parent = send(api, name="parent", queue="fan")
    [p] = claim(api, "fan")
    kids = [send(api, name="kid", queue="kids", parent_id=parent) for _ in range(2)]
    orphan = send(api, name="kid", queue="kids")  # no parent: its report resumes nothing
    [out] = report(api, {"id": parent, "lease_token": p["lease_token"], "outcome": "suspended",
                         "wait": {"kind": "children", "step": "children",
                                  "detail": {"ids": kids}}})
    assert out == {"id": parent, "outcome": "applied", "status": "waiting"}
    leased = {t["id"]: t for t in claim(api, "kids")}
    assert set(leased) == {*kids, orphan}

    def done(i: int) -> dict:
        return {"id": i, "lease_token": leased[i]["lease_token"], "outcome": "succeeded",
                "result": i}

    report(api, done(kids[0]), done(orphan))
    assert status(api, parent) == "waiting"
    report(api, done(kids[1]))
    # resumed in the report's transaction, not by the (hourly) sweeper
    assert status(api, parent) == "queued"
    [again] = claim(api, "fan")
    assert again["id"] == parent and again["replay"] is True
    steps = api.get(f"/v1/tasks/{parent}/steps").json()["steps"]
    [wait] = [s for s in steps if s["name"] == "children"]
    assert [c["result"] for c in wait["result"]["value"]] == kids


def test_report_verdicts_are_unchanged(api: httpx.Client) -> None:
    a = send(api, name="v", queue="verdicts")
    [t] = claim(api, "verdicts")
    item = {"id": a, "lease_token": t["lease_token"], "outcome": "succeeded"}
    forged = {"id": a, "lease_token": "00000000-0000-0000-0000-000000000000",
              "outcome": "succeeded"}
    missing = {"id": 10**9, "lease_token": t["lease_token"], "outcome": "succeeded"}
    assert [o["outcome"] for o in report(api, item)] == ["applied"]
    assert [(o["outcome"], o["status"]) for o in report(api, item, missing)] == [
        ("already_recorded", "succeeded"), ("unknown_task", None)]
    assert [o["outcome"] for o in report(api, forged)] == ["stale_lease"]


def test_claim_statement_runs_on_its_generic_plan(db_url: str) -> None:
    """The plain claim forces the generic plan for its transaction (``auto`` re-planned it on
    every call); that plan must still lease in priority order by primary key."""
    plan = {"queues": ["g"], "caps": [5], "patterns": [], "skip": [], "names": None, "n": 5,
            "worker_id": "w", "lease": 30.0}
    with psycopg.connect(db_url) as conn:
        conn.execute("""INSERT INTO tasks (name, queue, status, priority, root_id)
                        SELECT 'g', 'g', 'queued', 1 + g % 10, 0
                        FROM generate_series(1, 100) g""")
        conn.commit()
        seen = []
        for _ in range(8):  # past psycopg's prepare threshold and PostgreSQL's five custom plans
            with conn.transaction():
                conn.execute("SELECT set_config('plan_cache_mode', 'force_generic_plan', true)")
                rows = conn.execute(leases.CLAIM_SQL, plan).fetchall()
            seen.extend(r[4] for r in rows)  # priority
        assert len(seen) == 40 and seen == sorted(seen, reverse=True)
        [(generic,)] = conn.execute(
            "SELECT generic_plans FROM pg_prepared_statements WHERE statement LIKE %s",
            ("%unnest(%",)).fetchall()
        assert generic >= 1

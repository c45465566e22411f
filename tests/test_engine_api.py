"""The task life cycle over HTTP against a real server and PostgreSQL: send, claim, heartbeat,
report, release, cancel, retry, read and list."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from branchwork.app.settings import Settings


def send(api: httpx.Client, **task: object) -> int:
    resp = api.post("/v1/tasks", json=task)
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def claim(api: httpx.Client, worker: str = "w1", **body: object) -> list[dict]:
    resp = api.post("/v1/claim", json={"worker_id": worker, **body})
    assert resp.status_code == 200, resp.text
    return resp.json()["tasks"]


def task(api: httpx.Client, task_id: int) -> dict:
    resp = api.get(f"/v1/tasks/{task_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def count(db_url: str, sql: str, *params: object) -> int:
    with psycopg.connect(db_url) as conn:
        return conn.execute(sql, params).fetchone()[0]


def test_batch_of_1500_is_one_transaction(api: httpx.Client, db_url: str) -> None:
    tasks = [{"name": "bulk", "args": {"i": i}} for i in range(1500)]
    resp = api.post("/v1/tasks/batch", json={"tasks": tasks})
    assert resp.status_code == 201, resp.text
    out = resp.json()["tasks"]
    assert len(out) == 1500 and len({o["id"] for o in out}) == 1500
    assert not any(o["duplicate"] for o in out)
    assert count(db_url, "SELECT count(*) FROM tasks WHERE name = 'bulk'") == 1500
    # ids come back in request order
    first, last = task(api, out[0]["id"]), task(api, out[-1]["id"])
    assert first["args"] == {"i": 0} and last["args"] == {"i": 1499}

    # one bad item (an unknown parent) rolls back the whole batch
    tasks = [{"name": "atomic", "args": i} for i in range(1200)]
    tasks[700]["parent_id"] = 10**12
    resp = api.post("/v1/tasks/batch", json={"tasks": tasks})
    assert resp.status_code == 422 and resp.json()["code"] == "unknown_parent"
    assert count(db_url, "SELECT count(*) FROM tasks WHERE name = 'atomic'") == 0


def test_idempotency_key_returns_existing_id(api: httpx.Client, db_url: str) -> None:
    first = api.post("/v1/tasks", json={"name": "charge", "idempotency_key": "order-7"}).json()
    again = api.post("/v1/tasks", json={"name": "charge", "idempotency_key": "order-7",
                                         "args": {"different": True}}).json()
    assert first == {"id": first["id"], "duplicate": False}
    assert again == {"id": first["id"], "duplicate": True}
    # keys are scoped by task name
    other = api.post("/v1/tasks", json={"name": "refund", "idempotency_key": "order-7"}).json()
    assert other["duplicate"] is False and other["id"] != first["id"]
    # duplicates inside one batch, and against earlier sends, all come back with their ids
    batch = api.post("/v1/tasks/batch", json={"tasks": [
        {"name": "charge", "idempotency_key": "order-8"},
        {"name": "charge", "idempotency_key": "order-7"},
        {"name": "charge", "idempotency_key": "order-8"},
        {"name": "charge"},
    ]}).json()["tasks"]
    assert [b["duplicate"] for b in batch] == [False, True, True, False]
    assert batch[1]["id"] == first["id"] and batch[2]["id"] == batch[0]["id"]
    assert count(db_url, "SELECT count(*) FROM tasks WHERE name = 'charge'") == 3
    # the duplicate did not overwrite the original's args
    assert task(api, first["id"])["args"] is None


def test_priority_then_fifo(api: httpx.Client) -> None:
    plan = [("a", 5), ("b", 1), ("c", 10), ("d", 5), ("e", 10), ("f", 1), ("g", 7)]
    ids = {name: send(api, name="job", args=name, priority=prio) for name, prio in plan}
    order = []
    while got := claim(api, limit=1):
        order.append(got[0]["args"])
    assert order == ["c", "e", "g", "a", "d", "b", "f"]
    # a batch claim returns the same order
    for name, prio in plan:
        send(api, name="job2", args=name, priority=prio, queue="q2")
    batch = claim(api, limit=10, queues=["q2"])
    assert [t["args"] for t in batch] == ["c", "e", "g", "a", "d", "b", "f"]
    assert all(t["attempts"] == 1 and t["lease_token"] for t in batch)
    assert ids  # every send answered with an id


def test_default_priority_is_5(api: httpx.Client) -> None:
    assert task(api, send(api, name="x"))["priority"] == 5


def test_delayed_task_not_handed_out_before_its_time(api: httpx.Client) -> None:
    delayed = send(api, name="later", delay_seconds=1.5)
    at = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()
    scheduled = send(api, name="later", run_at=at)
    now = send(api, name="now")
    assert [t["id"] for t in claim(api, limit=10)] == [now]
    time.sleep(0.5)
    assert claim(api, limit=10) == []
    # a waiting claim picks them up when they become due
    start = time.monotonic()
    got = claim(api, limit=10, wait_seconds=5)
    if len(got) < 2:
        got += claim(api, limit=10, wait_seconds=2)
    assert sorted(t["id"] for t in got) == sorted([delayed, scheduled])
    assert time.monotonic() - start < 3.0


def test_claim_filters_by_task_name_and_glob(api: httpx.Client) -> None:
    a = send(api, name="resize", queue="images.small")
    b = send(api, name="crop", queue="images.large")
    c = send(api, name="resize", queue="email")
    got = claim(api, queues=["images.*"], task_names=["resize"], limit=10)
    assert [t["id"] for t in got] == [a]
    got = claim(api, queues=["images.?arge", "email"], limit=10)
    assert sorted(t["id"] for t in got) == sorted([b, c])


def test_heartbeat_extends_lease_and_reports_cancel(api: httpx.Client) -> None:
    t1, t2 = send(api, name="long"), send(api, name="long")
    claimed = claim(api, limit=2)
    leases = [{"id": t["id"], "lease_token": t["lease_token"]} for t in claimed]
    before = {t["id"]: t["lease_expires_at"] for t in claimed}
    time.sleep(0.3)
    hb = api.post("/v1/heartbeat", json={"worker_id": "w1", "tasks": leases}).json()
    assert hb["cancel"] == [] and hb["lost"] == []
    after = {r["id"]: r["lease_expires_at"] for r in hb["tasks"]}
    assert all(after[i] > before[i] for i in (t1, t2))
    assert api.post(f"/v1/tasks/{t2}/cancel").json()["status"] == "running"
    hb = api.post("/v1/heartbeat", json={"worker_id": "w1", "tasks": leases}).json()
    assert hb["cancel"] == [t2]
    # the worker stops it and says so
    token = next(t["lease_token"] for t in claimed if t["id"] == t2)
    rep = api.post("/v1/tasks/report", json={"worker_id": "w1", "results": [
        {"id": t2, "lease_token": token, "outcome": "cancelled"}]}).json()
    assert rep["results"] == [{"id": t2, "outcome": "applied", "status": "cancelled"}]
    events = [e["event"] for e in task(api, t2)["history"]]
    assert events == ["claimed", "cancel_requested", "cancelled"]


def test_failure_records_error_and_retries_after_backoff(api: httpx.Client, db_url: str) -> None:
    tid = send(api, name="flaky", max_retries=2, retry_delay_seconds=0.4,
               retry_backoff="exponential")
    [t] = claim(api)
    err = {"type": "ValueError", "message": "bad thing", "traceback": "Traceback...\nValueError"}
    resp = api.post(f"/v1/tasks/{tid}/fail", json={"lease_token": t["lease_token"], "error": err})
    assert resp.status_code == 200 and resp.json()["status"] == "queued"
    row = task(api, tid)
    assert row["status"] == "queued" and row["error"] == err and row["attempts"] == 1
    # backoff is honoured: not claimable right away, claimable after ~0.4 s
    assert claim(api) == []
    time.sleep(0.5)
    [t] = claim(api)
    assert t["attempts"] == 2
    # the worker may state the delay itself
    api.post(f"/v1/tasks/{tid}/fail", json={"lease_token": t["lease_token"], "error": err,
                                            "retry_delay_seconds": 30})
    row = task(api, tid)
    delay = (datetime.fromisoformat(row["run_at"]) - datetime.now(UTC)).total_seconds()
    assert 25 < delay <= 30
    # out of retries: failed for good
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE tasks SET run_at = now() WHERE id = %s", (tid,))
    [t] = claim(api)
    assert t["attempts"] == 3
    resp = api.post(f"/v1/tasks/{tid}/fail", json={"lease_token": t["lease_token"], "error": err})
    assert resp.json()["status"] == "failed"
    row = task(api, tid)
    assert row["status"] == "failed" and row["finished_at"] is not None
    events = [(e["event"], e["attempt"]) for e in row["history"]]
    assert events == [("claimed", 1), ("retry_scheduled", 1), ("claimed", 2),
                      ("retry_scheduled", 2), ("claimed", 3), ("failed", 3)]
    assert row["history"][-1]["error"]["traceback"] == err["traceback"]
    assert all(e["worker_id"] == "w1" for e in row["history"])


def test_backoff_policies(api: httpx.Client, db_url: str) -> None:
    for backoff, expected in (("fixed", [10, 10, 10]), ("linear", [10, 20, 30]),
                              ("exponential", [10, 20, 40])):
        tid = send(api, name=f"b-{backoff}", max_retries=5, retry_delay_seconds=10,
                   retry_backoff=backoff, queue=backoff)
        delays = []
        for _ in range(3):
            with psycopg.connect(db_url) as conn:
                conn.execute("UPDATE tasks SET run_at = now() WHERE id = %s", (tid,))
            [t] = claim(api, queues=[backoff])
            api.post(f"/v1/tasks/{tid}/fail", json={"lease_token": t["lease_token"]})
            row = task(api, tid)
            delays.append(round((datetime.fromisoformat(row["run_at"])
                                 - datetime.now(UTC)).total_seconds()))
        assert delays == expected, backoff


def test_stale_lease_token_changes_nothing(api: httpx.Client, db_url: str) -> None:
    tid = send(api, name="fenced", max_retries=1)
    [first] = claim(api, "w1")
    # the lease runs out and another worker takes the task
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE tasks SET lease_expires_at = now() WHERE id = %s", (tid,))
    deadline = time.monotonic() + 5
    second: list[dict] = []
    while not second and time.monotonic() < deadline:
        second = claim(api, "w2", wait_seconds=1)
    assert second and second[0]["attempts"] == 2
    resp = api.post(f"/v1/tasks/{tid}/complete",
                    json={"lease_token": first["lease_token"], "result": "from w1"})
    assert resp.status_code == 409 and resp.json()["code"] == "stale_lease"
    rep = api.post("/v1/tasks/report", json={"results": [
        {"id": tid, "lease_token": first["lease_token"], "outcome": "failed"}]})
    assert rep.json()["results"][0]["outcome"] == "stale_lease"
    row = task(api, tid)
    assert row["status"] == "running" and row["worker_id"] == "w2" and row["result"] is None
    ok = api.post(f"/v1/tasks/{tid}/complete",
                  json={"lease_token": second[0]["lease_token"], "result": "from w2"})
    assert ok.status_code == 200
    assert task(api, tid)["result"] == "from w2"
    # the same report again is recognised as already recorded, not applied twice
    again = api.post("/v1/tasks/report", json={"results": [
        {"id": tid, "lease_token": second[0]["lease_token"], "outcome": "succeeded"}]})
    assert again.json()["results"][0]["outcome"] == "already_recorded"
    assert count(db_url, "SELECT count(*) FROM task_events WHERE task_id = %s "
                 "AND event = 'succeeded'", tid) == 1


def test_batch_report(api: httpx.Client) -> None:
    ids = [send(api, name="r", max_retries=1) for _ in range(3)]
    claimed = {t["id"]: t["lease_token"] for t in claim(api, limit=3)}
    results = [
        {"id": ids[0], "lease_token": claimed[ids[0]], "outcome": "succeeded", "result": 1},
        {"id": ids[1], "lease_token": claimed[ids[1]], "outcome": "failed",
         "error": {"type": "E", "message": "m"}, "retry_delay_seconds": 0},
        {"id": 999_999, "lease_token": claimed[ids[2]], "outcome": "succeeded"},
    ]
    out = api.post("/v1/tasks/report", json={"worker_id": "w1", "results": results}).json()
    assert out["results"] == [
        {"id": ids[0], "outcome": "applied", "status": "succeeded"},
        {"id": ids[1], "outcome": "applied", "status": "queued"},
        {"id": 999_999, "outcome": "unknown_task", "status": None},
    ]
    assert task(api, ids[2])["status"] == "running"


def test_release_requeues_without_using_a_retry(api: httpx.Client) -> None:
    tid = send(api, name="shy", max_retries=0)
    [t] = claim(api)
    resp = api.post("/v1/tasks/release", json={"worker_id": "w1", "tasks": [
        {"id": tid, "lease_token": t["lease_token"]}]})
    assert resp.json() == {"released": [tid]}
    row = task(api, tid)
    assert row["status"] == "queued" and row["attempts"] == 0
    [again] = claim(api, "w2")
    assert again["id"] == tid and again["attempts"] == 1
    # releasing with the old token does nothing
    resp = api.post("/v1/tasks/release", json={"worker_id": "w1", "tasks": [
        {"id": tid, "lease_token": t["lease_token"]}]})
    assert resp.json() == {"released": []}
    assert task(api, tid)["worker_id"] == "w2"


def test_cancel_queued_and_finished(api: httpx.Client) -> None:
    tid = send(api, name="c")
    resp = api.post(f"/v1/tasks/{tid}/cancel")
    assert resp.json() == {"id": tid, "status": "cancelled", "cancel_requested": True}
    assert claim(api) == []
    row = task(api, tid)
    assert row["status"] == "cancelled" and row["finished_at"] is not None
    again = api.post(f"/v1/tasks/{tid}/cancel")
    assert again.status_code == 409 and again.json()["code"] == "already_finished"
    assert api.post("/v1/tasks/424242/cancel").status_code == 404
    # a cancelled task can be queued again by hand
    assert api.post(f"/v1/tasks/{tid}/retry").json() == {"id": tid, "status": "queued"}
    [t] = claim(api)
    assert t["id"] == tid
    assert api.post(f"/v1/tasks/{tid}/retry").status_code == 409


def test_running_task_cancelled_when_worker_never_answers(make_server, db_url: str) -> None:
    server = make_server(lease_seconds=1.0, sweep_interval_seconds=0.1)
    with httpx.Client(base_url=server.url, timeout=30) as api:
        tid = send(api, name="c", max_retries=5)
        claim(api)
        api.post(f"/v1/tasks/{tid}/cancel")
        deadline = time.monotonic() + 5
        while task(api, tid)["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert task(api, tid)["status"] == "cancelled"


def test_read_task_tree_and_timings(api: httpx.Client) -> None:
    root = send(api, name="root", args={"a": [1, 2]})
    child = send(api, name="child", parent_id=root)
    grandchild = send(api, name="gc", parent_id=child)
    row = task(api, grandchild)
    assert row["parent_id"] == child and row["root_id"] == root and row["depth"] == 2
    assert task(api, root)["root_id"] == root
    [t] = claim(api, task_names=["root"])
    api.post(f"/v1/tasks/{root}/complete", json={"lease_token": t["lease_token"],
                                                 "result": [1, "x"], "logs": "hello\n"})
    row = task(api, root)
    assert row["status"] == "succeeded" and row["result"] == [1, "x"]
    assert row["args"] == {"a": [1, 2]} and row["attempts"] == 1
    assert row["created_at"] <= row["started_at"] <= row["finished_at"]
    assert row["logs"][0]["output"] == "hello\n" and row["logs"][0]["attempt"] == 1
    assert api.get("/v1/tasks/987654321").status_code == 404
    # spawn keys make a child send idempotent under its parent
    s1 = api.post("/v1/tasks", json={"name": "c", "parent_id": root, "spawn_key": "k"}).json()
    s2 = api.post("/v1/tasks", json={"name": "c", "parent_id": root, "spawn_key": "k"}).json()
    assert s2 == {"id": s1["id"], "duplicate": True}


def test_list_filters_and_cursor(api: httpx.Client) -> None:
    root = send(api, name="root")
    kids = [send(api, name="kid", parent_id=root, queue="kids") for _ in range(7)]
    send(api, name="other")
    claim(api, queues=["kids"], limit=2)
    seen, cursor = [], None
    while True:
        params = {"parent_id": root, "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/tasks", params=params).json()
        seen += [t["id"] for t in page["tasks"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(kids, reverse=True)
    assert {t["id"] for t in api.get("/v1/tasks", params={"root_id": root}).json()["tasks"]} \
        == {root, *kids}
    running = api.get("/v1/tasks", params={"status": "running"}).json()["tasks"]
    assert sorted(t["id"] for t in running) == kids[:2]
    assert len(api.get("/v1/tasks", params={"queue": "kids", "status": "queued"})
               .json()["tasks"]) == 5
    assert [t["name"] for t in api.get("/v1/tasks", params={"name": "other"})
            .json()["tasks"]] == ["other"]


def test_queue_pause_and_stats(api: httpx.Client) -> None:
    send(api, name="p", queue="paused-q")
    assert api.put("/v1/queues/paused-q", json={"paused": True}).json()["paused"] is True
    assert claim(api, queues=["paused-q"]) == []
    api.put("/v1/queues/paused-q", json={"paused": False})
    assert len(claim(api, queues=["paused-q"])) == 1
    stats = {q["name"]: q for q in api.get("/v1/queues").json()["queues"]}
    assert stats["paused-q"]["running"] == 1 and stats["paused-q"]["queued"] == 0


def test_health_and_token(make_server) -> None:
    server = make_server(api_token="s3cret")
    with httpx.Client(base_url=server.url) as c:
        health = c.get("/health")
        assert health.status_code == 200 and health.json()["database"] is True
        for method, path in (("GET", "/v1/tasks"), ("POST", "/v1/tasks"), ("GET", "/v1/queues"),
                             ("POST", "/v1/claim"), ("GET", "/openapi.json")):
            resp = c.request(method, path, json={"name": "x"} if method == "POST" else None)
            assert resp.status_code == 401, path
            assert resp.json()["code"] == "unauthorized"
        bad = c.get("/v1/tasks", headers={"authorization": "Bearer wrong"})
        assert bad.status_code == 401
        good = c.post("/v1/tasks", json={"name": "x"}, headers={"authorization": "Bearer s3cret"})
        assert good.status_code == 201


def test_default_bind_is_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRANCHWORK_HOST", raising=False)
    assert Settings().host == "127.0.0.1"


def test_workers_are_listed(api: httpx.Client) -> None:
    reg = api.post("/v1/workers/register", json={
        "worker_id": "w-reg", "queues": ["default"], "info": {"pid": 1},
        "tasks": [{"name": "hello", "queue": "default", "defaults": {"max_retries": 2}}]})
    assert reg.status_code == 200
    claim(api, "w-claim")
    workers = {w["id"]: w for w in api.get("/v1/workers").json()["workers"]}
    assert workers["w-reg"]["online"] and workers["w-claim"]["queues"] == ["default"]
    defs = api.get("/v1/task-definitions").json()["definitions"]
    assert [d["name"] for d in defs] == ["hello"]
    api.post("/v1/workers/w-reg/stop")
    workers = {w["id"]: w for w in api.get("/v1/workers").json()["workers"]}
    assert workers["w-reg"]["online"] is False


def test_kv(api: httpx.Client) -> None:
    assert api.get("/v1/kv/a/b").status_code == 404
    assert api.put("/v1/kv/a/b", json={"value": "1"}).json() == {"key": "a/b", "value": "1"}
    assert api.get("/v1/kv/a/b").json()["value"] == "1"
    assert api.post("/v1/kv/a/b/increment", json={"by": 41}).json()["value"] == 42
    assert api.post("/v1/kv/a/b/set-if-absent", json={"value": "x"}).json()["set"] is False
    assert api.post("/v1/kv/a/c/set-if-absent", json={"value": "x"}).json()["set"] is True
    assert api.post("/v1/kv/a/c/increment", json={}).status_code == 409
    assert api.post("/v1/kv/n/increment", json={}).json()["value"] == 1
    keys = [i["key"] for i in api.get("/v1/kv", params={"prefix": "a/"}).json()["items"]]
    assert keys == ["a/b", "a/c"]
    assert api.delete("/v1/kv/a/b").json()["deleted"] is True
    assert api.get("/v1/kv/a/b").status_code == 404


def test_exponential_backoff_cannot_overflow(api: httpx.Client, db_url: str) -> None:
    """Past a thousand attempts (manual retries raise max_retries) the delay is capped rather
    than overflowing float8, which would make the outcome unrecordable."""
    tid = send(api, name="many", max_retries=1000, retry_delay_seconds=31_536_000,
               retry_max_delay_seconds=60)
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE tasks SET attempts = 1100, max_retries = 1200 WHERE id = %s",
                     (tid,))
    [t] = claim(api)
    resp = api.post(f"/v1/tasks/{tid}/fail", json={"lease_token": t["lease_token"]})
    assert resp.status_code == 200 and resp.json()["status"] == "queued"
    delay = (datetime.fromisoformat(task(api, tid)["run_at"]) - datetime.now(UTC)).total_seconds()
    assert 55 < delay <= 60

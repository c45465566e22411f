"""Events and signals for durable tasks (docs/durable.md): an event wakes exactly the tasks
waiting on its key (across a server restart), look-back, timeouts, signals, and bad input
that changes nothing. Real servers, real worker processes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from durable_app import lines
from servers import free_port, process_server
from worker_helpers import events, python_worker, send, task, wait_for, wait_status

APP = "durable_app:reg"


def worker(url: str, tmp_path, *args: str):
    return python_worker(url, APP, "--queue", "durable", "--log-level", "warning", *args,
                         BW_TEST_DIR=str(tmp_path))


def waiting(api: httpx.Client, task_id: int) -> dict:
    return wait_status(api, task_id, "waiting", timeout=30)


@pytest.fixture
def quick(make_server) -> Iterator[tuple[str, httpx.Client]]:
    server = make_server(wait_interval_seconds=0.2)
    with httpx.Client(base_url=server.url, timeout=30) as api:
        yield server.url, api


def test_an_event_wakes_exactly_its_waiters_before_and_after_a_restart(db_url, tmp_path):
    port = free_port()
    with process_server(db_url, port) as (_, url), httpx.Client(base_url=url,
                                                                  timeout=30) as api:
        ones = [send(api, "wait_event", {"key": "order.1"}, queue="durable") for _ in range(3)]
        twos = [send(api, "wait_event", {"key": "order.2"}, queue="durable") for _ in range(2)]
        with worker(url, tmp_path):
            for task_id in ones + twos:
                row = waiting(api, task_id)
                assert row["wait"]["kind"] == "event" and row["wait"]["key"] in (
                    "order.1", "order.2")
                assert row["worker_id"] is None and row["lease_expires_at"] is None
            posted = api.post("/v1/events", json={"key": "order.1", "payload": {"n": 1}})
            assert posted.status_code == 200, posted.text
            assert posted.json()["resumed"] == 3 and posted.json()["duplicate"] is False
            for task_id in ones:
                row = wait_status(api, task_id)
                assert row["status"] == "succeeded" and row["result"] == {"payload": {"n": 1}}
                assert row["attempts"] == 1 and events(row).count("suspended") == 1
                assert [s["kind"] for s in row["steps"]] == ["event"]
                assert row["wait"] is None
            # The other key's waiters did not move.
            assert all(task(api, t)["status"] == "waiting" for t in twos)
    # The server stops and starts again: the waits are in the database.
    with process_server(db_url, port) as (_, url), httpx.Client(base_url=url,
                                                                  timeout=30) as api:
        assert all(task(api, t)["status"] == "waiting" for t in twos)
        with worker(url, tmp_path):
            posted = api.post("/v1/events", json={"key": "order.2", "payload": "two",
                                                  "id": "evt-2"})
            assert posted.json()["resumed"] == 2
            for task_id in twos:
                assert wait_status(api, task_id)["result"] == {"payload": "two"}
            # The same event posted again (a retry, same id) does nothing.
            again = api.post("/v1/events", json={"key": "order.2", "payload": "two",
                                                 "id": "evt-2"})
            assert again.json() == {**posted.json(), "duplicate": True, "resumed": 0}
    # Every task ran twice (the wait and the resume), none a third time.
    for task_id in ones + twos:
        assert lines(tmp_path, f"event-{task_id}") == ["ran", "ran"]


def test_an_event_is_never_missed_by_a_task_that_started_waiting_before_it(quick, tmp_path):
    url, api = quick
    ids = [send(api, "wait_event", {"key": "race"}, queue="durable") for _ in range(60)]
    with worker(url, tmp_path, "--concurrency", "4"):
        # Post while some tasks wait, some run and some are not claimed yet.
        wait_for(lambda: sum(bool(lines(tmp_path, f"event-{i}")) for i in ids) >= 20,
                 timeout=30, interval=0.01, what="some tasks to reach their wait")
        posted_at = time.time()
        resumed = api.post("/v1/events", json={"key": "race", "payload": 1}).json()["resumed"]
        wait_for(lambda: sum(task(api, i)["status"] in ("waiting", "succeeded")
                             for i in ids) == len(ids), timeout=60, what="all tasks to settle")
        time.sleep(0.5)
    rows = [task(api, i) for i in ids]
    done = [r for r in rows if r["status"] == "succeeded"]
    assert len(done) >= resumed > 0
    for row in rows:
        reached = float(lines(tmp_path, f"event-at-{row['id']}")[0])
        if reached < posted_at:  # it had called wait_for_event before the post
            assert row["status"] == "succeeded", row["id"]
        elif reached > posted_at + 2:  # well after it, with no look-back: not for it
            assert row["status"] == "waiting", row["id"]


def test_look_back_finds_an_event_posted_before_the_wait(quick, tmp_path):
    url, api = quick
    api.post("/v1/events", json={"key": "early", "payload": "first"})
    api.post("/v1/events", json={"key": "early", "payload": "second"})
    with worker(url, tmp_path):
        looking = send(api, "wait_event", {"key": "early", "lookback": 120}, queue="durable")
        row = wait_status(api, looking)
        assert row["result"] == {"payload": "first"}  # the first event in its look-back
        time.sleep(1.5)  # past the margin a wait without look-back may see
        blind = send(api, "wait_event", {"key": "early"}, queue="durable")
        assert waiting(api, blind)["status"] == "waiting"
        # Two waits in a row on one key get two events, never one event twice.
        twice = send(api, "wait_twice", {"key": "early"}, queue="durable")
        assert wait_status(api, twice)["result"] == ["first", "second"]
        api.post("/v1/events", json={"key": "early", "payload": "third"})
        assert wait_status(api, blind)["result"] == {"payload": "third"}


def test_a_wait_times_out_with_a_clear_result(quick, tmp_path):
    url, api = quick
    with worker(url, tmp_path):
        started = time.monotonic()
        task_id = send(api, "wait_event", {"key": "never", "timeout": 1.0}, queue="durable")
        row = wait_status(api, task_id, timeout=30)
        assert time.monotonic() - started < 15
        assert row["result"] == {"timed_out": True, "step": "event:never"}
        [step] = row["steps"]
        assert step["kind"] == "event" and step["result"] == {"timed_out": True}
        # An event after the timeout resumes nothing.
        assert api.post("/v1/events", json={"key": "never"}).json()["resumed"] == 0


def test_signals(quick, tmp_path):
    url, api = quick
    task_id = send(api, "wait_signal", {"name": "go"}, queue="durable")
    # Not waiting (yet): 409, nothing changed.
    early = api.post(f"/v1/tasks/{task_id}/signal", json={"name": "go"})
    assert early.status_code == 409 and early.json()["code"] == "not_waiting"
    assert early.json()["details"] == {"status": "queued", "waiting_for": None}
    assert task(api, task_id)["status"] == "queued"
    with worker(url, tmp_path):
        row = waiting(api, task_id)
        wrong = api.post(f"/v1/tasks/{task_id}/signal", json={"name": "stop", "payload": 1})
        assert wrong.status_code == 409 and wrong.json()["code"] == "not_waiting"
        assert wrong.json()["details"]["waiting_for"] == {"kind": "signal", "key": "go"}
        assert task(api, task_id)["status"] == "waiting"
        ok = api.post(f"/v1/tasks/{task_id}/signal", json={"name": "go", "payload": [1, 2]})
        assert ok.status_code == 200, ok.text
        assert ok.json() == {"id": task_id, "name": "go", "resumed": True, "step": "signal:go"}
        assert wait_status(api, task_id)["result"] == {"payload": [1, 2]}
        # The task has finished: a signal now is refused, and changes nothing.
        late = api.post(f"/v1/tasks/{task_id}/signal", json={"name": "go"})
        assert late.status_code == 409 and late.json()["code"] == "not_waiting"
        assert late.json()["details"]["status"] == "succeeded"
        assert api.post("/v1/tasks/999999/signal", json={"name": "go"}).status_code == 404
        # A signal wait with a timeout that runs out.
        timed = send(api, "wait_signal", {"name": "never", "timeout": 0.5}, queue="durable")
        assert wait_status(api, timed)["result"] == {"timed_out": True}
    assert row["wait"]["kind"] == "signal"


DURABLE_TABLES = ("tasks", "task_events", "task_steps", "task_waits", "events")


def test_bad_input_changes_nothing(quick, tmp_path, db_url):
    import pg

    url, api = quick
    with worker(url, tmp_path):
        task_id = send(api, "wait_event", {"key": "k"}, queue="durable")
        waiting(api, task_id)
        before = pg.fingerprint(db_url, DURABLE_TABLES)
        for body in ({"payload": 1}, {"key": ""}, {"key": "k", "extra": 1}, {"key": 5},
                     {"key": "k", "id": ""}):
            response = api.post("/v1/events", json=body)
            assert response.status_code == 422, (body, response.text)
        big = api.post("/v1/events", json={"key": "k", "payload": "x" * 1_100_000})
        assert big.status_code == 413 and big.json()["code"] == "payload_too_large"
        signal_big = api.post(f"/v1/tasks/{task_id}/signal",
                              json={"name": "s", "payload": "x" * 1_100_000})
        assert signal_big.status_code == 413
        assert api.post(f"/v1/tasks/{task_id}/signal", json={}).status_code == 422
        assert api.post(f"/v1/tasks/{task_id}/signal", json={"name": "k"}).status_code == 409
        assert pg.fingerprint(db_url, DURABLE_TABLES) == before
        assert task(api, task_id)["status"] == "waiting"
        # A waiting task can be cancelled: at once, its wait is dropped.
        cancelled = api.post(f"/v1/tasks/{task_id}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        row = task(api, task_id)
        assert row["status"] == "cancelled" and row["wait"] is None
        assert api.post("/v1/events", json={"key": "k"}).json()["resumed"] == 0
        assert task(api, task_id)["status"] == "cancelled"


def test_async_task_waits_for_an_event(quick, tmp_path):
    url, api = quick
    with worker(url, tmp_path):
        task_id = send(api, "async_wait_event", {"key": "async.k"}, queue="durable")
        waiting(api, task_id)
        assert api.post("/v1/events", json={"key": "async.k", "payload": {"ok": True}}
                        ).json()["resumed"] == 1
        assert wait_status(api, task_id)["result"] == {"ok": True}


def test_the_python_client_sends_events_and_signals(quick, tmp_path):
    from branchwork import Client, Conflict

    url, api = quick
    task_id = send(api, "wait_signal", {"name": "go"}, queue="durable")
    with Client(url=url) as client:
        with pytest.raises(Conflict) as refused:
            client.signal_task(task_id, "go")  # queued, not waiting yet
        assert refused.value.code == "not_waiting"
    with worker(url, tmp_path), Client(url=url) as client:
        waiting(api, task_id)
        assert client.signal_task(task_id, "go", {"x": 1})["resumed"] is True
        assert wait_status(api, task_id)["result"] == {"payload": {"x": 1}}
        event_task = send(api, "wait_event", {"key": "py"}, queue="durable")
        waiting(api, event_task)
        first = client.send_event("py", {"y": 2}, id="py-1")
        assert first["resumed"] == 1 and client.send_event("py", {"y": 2}, id="py-1")[
            "duplicate"] is True
        assert wait_status(api, event_task)["result"] == {"payload": {"y": 2}}


def _suspend(api: httpx.Client, leased: dict, wait: dict) -> httpx.Response:
    return api.post("/v1/tasks/report", json={"results": [
        {"id": leased["id"], "lease_token": leased["lease_token"], "outcome": "suspended",
         "wait": wait, "logs": "before the wait\n"}]})


def test_the_suspend_report_is_fenced_and_spends_no_retry(make_server):
    """The protocol as another language's worker speaks it (docs/protocol.md)."""
    from orchestration_helpers import claim_one

    server = make_server(lease_seconds=1.0, sweep_interval_seconds=0.1)
    api = httpx.Client(base_url=server.url, timeout=30)
    task_id = send(api, "anything", queue="proto", max_retries=2)
    first = claim_one(api, "proto")
    assert first["replay"] is False and first["attempts"] == 1
    # A suspended outcome without its wait, a wait without its key, a sleep without a time.
    for wait in (None, {"kind": "event", "step": "e"}, {"kind": "sleep", "step": "s"},
                 {"kind": "nap", "step": "s", "seconds": 1},
                 {"kind": "event", "step": "e", "key": "k", "lookback_seconds": 90_000}):
        body = {"id": task_id, "lease_token": first["lease_token"], "outcome": "suspended"}
        if wait is not None:
            body["wait"] = wait
        refused = api.post("/v1/tasks/report", json={"results": [body]})
        assert refused.status_code == 422, (wait, refused.text)
    assert task(api, task_id)["status"] == "running"
    # The lease runs out; the stale attempt's suspension changes nothing.
    wait_for(lambda: task(api, task_id)["status"] == "queued", timeout=15)
    second = claim_one(api, "proto")
    stale = _suspend(api, first, {"kind": "signal", "step": "signal:go", "key": "go"})
    assert stale.json()["results"] == [{"id": task_id, "outcome": "stale_lease",
                                        "status": "running"}]
    # The current attempt suspends: waiting, the attempt given back, no lease, no worker.
    ok = _suspend(api, second, {"kind": "signal", "step": "signal:go", "key": "go",
                                "timeout_seconds": 600, "waited_seconds": 0.01})
    assert ok.json()["results"] == [{"id": task_id, "outcome": "applied", "status": "waiting"}]
    again = _suspend(api, second, {"kind": "signal", "step": "signal:go", "key": "go"})
    assert again.json()["results"][0]["outcome"] == "already_recorded"
    row = task(api, task_id)
    assert row["status"] == "waiting" and row["attempts"] == 1  # lost once, suspended once
    assert row["lease_expires_at"] is None and row["worker_id"] is None
    assert row["wait"]["kind"] == "signal" and row["wait"]["key"] == "go"
    assert events(row)[-1] == "suspended"
    assert api.post(f"/v1/tasks/{task_id}/signal", json={"name": "go", "payload": 5}
                    ).status_code == 200
    third = claim_one(api, "proto")
    assert third["replay"] is True and third["attempts"] == 2
    steps = api.get(f"/v1/tasks/{task_id}/steps").json()["steps"]
    assert [(s["name"], s["kind"], s["result"]) for s in steps] == [
        ("signal:go", "signal", {"timed_out": False, "value": 5, "signal": "go"})]
    # A task whose cancellation was asked while it ran ends cancelled when it suspends.
    assert api.post(f"/v1/tasks/{task_id}/cancel").json()["status"] == "running"
    cancelled = _suspend(api, third, {"kind": "sleep", "step": "sleep", "seconds": 60})
    assert cancelled.json()["results"][0]["status"] == "cancelled"
    assert task(api, task_id)["status"] == "cancelled"
    api.close()


async def test_events_past_their_retention_are_forgotten(db_url):
    """The wait timer's pass over old events deletes only those past the retention."""
    import psycopg

    from branchwork.app.engine.suspend import prune_events
    from branchwork.app.store.pool import open_pool

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO events (key, idempotency_key, created_at) VALUES "
                     "('old', 'o1', now() - interval '8 days'), "
                     "('old', 'o2', now() - interval '8 days'), ('new', 'n1', now())")
    pool = await open_pool(db_url, 1, 2)
    try:
        assert await prune_events(pool, 7 * 86400) == 2
        assert await prune_events(pool, 7 * 86400) == 0
    finally:
        await pool.close()
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT key FROM events").fetchall() == [("new",)]

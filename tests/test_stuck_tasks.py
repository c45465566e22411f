"""Stuck tasks (issue 9, item 10): the heartbeat runs in its own process, so a hung attempt
keeps its lease; the progress an attempt shows (context calls, sends, KV, ``ctx.progress()``)
decides whether it is stuck. Real worker processes, a real server, real PostgreSQL."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

import branchwork
from servers import ThreadServer
from stuck_app import hang_then_ok
from worker_helpers import events, python_worker, send, task, wait_for, wait_status

STUCK_AFTER = 4.0  # the heartbeat (lease 3 s) reports progress every second


def stuck_gauge(api: httpx.Client, queue: str) -> float:
    text = api.get("/metrics").text
    match = re.search(rf'^branchwork_tasks_stuck{{queue="{queue}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_a_hung_task_is_shown_stuck_and_a_busy_one_never(
        make_server: Callable[..., ThreadServer], tmp_path: Path) -> None:
    server = make_server(stuck_after_seconds=STUCK_AFTER)
    with httpx.Client(base_url=server.url, timeout=30) as api, \
            python_worker(server.url, "stuck_app:reg", "--concurrency", "4",
                          BW_TEST_DIR=str(tmp_path)):
        hung = [send(api, "hang", {"seconds": 60}, queue="stuck"),
                send(api, "hang_async", {"seconds": 60}, queue="stuck")]
        busy = [send(api, "busy", {"seconds": 12}, queue="stuck"),
                send(api, "busy_async", {"seconds": 12}, queue="stuck")]
        for tid in hung + busy:
            wait_status(api, tid, "running")
        started = time.monotonic()
        seen_stuck: set[int] = set()
        while time.monotonic() - started < 10:
            for tid in hung + busy:
                row = task(api, tid)
                if row["stuck"]:
                    seen_stuck.add(tid)
                    assert row["status"] == "running"
            time.sleep(0.2)
        assert seen_stuck == set(hung), "the hung tasks (only) are stuck"
        for tid in busy:
            row = wait_status(api, tid, "succeeded", timeout=30)
            assert row["stuck"] is False and row["result"] >= 20
        row = task(api, hung[0])
        assert row["stuck"] is True and row["status"] == "running"
        assert row["last_progress_at"] is not None
        # The default action only shows it: the attempt keeps running, nothing was failed.
        assert "stuck" not in events(row) and row["attempts"] == 1
        assert stuck_gauge(api, "stuck") == 2
        page = api.get(f"/studio/tasks/{hung[0]}").text
        assert "stuck-mark" in page and "Last progress" in page
        assert "stuck-mark" not in api.get(f"/studio/tasks/{busy[0]}").text
        listing = api.get("/studio/partials/tasks?queue=stuck").text
        assert listing.count("stuck-mark") == 2
        api.post(f"/v1/tasks/{hung[0]}/cancel")
        api.post(f"/v1/tasks/{hung[1]}/cancel")


def test_stuck_action_fail_fails_the_attempt_as_stuck_and_retries_it(
        make_server: Callable[..., ThreadServer], tmp_path: Path) -> None:
    server = make_server()  # no server default: the definition and the queue set the rule
    with httpx.Client(base_url=server.url, timeout=30) as api, \
            python_worker(server.url, "stuck_app:reg", "--concurrency", "2",
                          BW_TEST_DIR=str(tmp_path)):
        # The definition's own rule (stuck_after_seconds=3, stuck_action="fail"), sent by the
        # Python client from the decorator's options.
        branchwork.configure(url=server.url)
        try:
            own = hang_then_ok.send(60).id
        finally:
            branchwork.configure()
        assert task(api, own)["stuck_action"] == "fail"
        # A queue's rule, for a task that sets none.
        put = api.put("/v1/queues/stuck", json={"stuck_after_seconds": STUCK_AFTER,
                                                "stuck_action": "fail"})
        assert put.status_code == 200, put.text
        assert put.json()["stuck_action"] == "fail"
        by_queue = send(api, "hang", {"seconds": 60, "only_first_attempt": True},
                        queue="stuck", max_retries=1, retry_backoff="fixed", retry_delay_seconds=0.0)
        for tid in (own, by_queue):
            row = wait_status(api, tid, "succeeded", timeout=60)
            assert row["attempts"] == 2 and row["result"] == "attempt 2 done"
            stuck_events = [e for e in row["history"] if e["event"] == "stuck"]
            assert len(stuck_events) == 1
            assert stuck_events[0]["error"]["type"] == "Stuck"
            assert "no progress" in stuck_events[0]["error"]["message"]
        # A task that runs out of retries ends failed as Stuck.
        last = send(api, "hang", {"seconds": 60}, queue="stuck", max_retries=0)
        row = wait_status(api, last, "failed", timeout=60)
        assert row["error"]["type"] == "Stuck" and row["attempts"] == 1


def test_the_heartbeat_carries_progress(server: ThreadServer, api: httpx.Client) -> None:
    """The protocol, without a Python worker: ``idle_seconds`` per lease (additive; absent,
    the heartbeat itself counts as progress)."""
    tid = send(api, "proto", {}, queue="proto", stuck_after_seconds=2.0)
    other = send(api, "proto", {}, queue="proto", stuck_after_seconds=2.0)
    claimed = api.post("/v1/claim", json={"worker_id": "w1", "queues": ["proto"],
                                          "limit": 2}).json()["tasks"]
    leases = {t["id"]: t["lease_token"] for t in claimed}
    assert set(leases) == {tid, other}
    row = task(api, tid)
    assert row["stuck"] is False and row["last_progress_at"] is not None
    beat = api.post("/v1/heartbeat", json={"worker_id": "w1", "tasks": [
        {"id": tid, "lease_token": leases[tid], "idle_seconds": 5.0},
        {"id": other, "lease_token": leases[other]}]})
    assert beat.status_code == 200, beat.text
    assert task(api, tid)["stuck"] is True  # idle 5 s > stuck_after 2 s
    assert task(api, other)["stuck"] is False
    # Progress again: not stuck any more.
    api.post("/v1/heartbeat", json={"worker_id": "w1", "tasks": [
        {"id": tid, "lease_token": leases[tid], "idle_seconds": 0.1}]})
    assert task(api, tid)["stuck"] is False
    listed = api.get("/v1/tasks", params={"queue": "proto"}).json()
    assert all(t["stuck"] is False for t in listed["tasks"])
    # A finished task is never stuck.
    api.post(f"/v1/tasks/{tid}/complete", json={"lease_token": leases[tid], "result": 1})
    assert task(api, tid)["stuck"] is False


@pytest.mark.parametrize("body", [
    {"stuck_after_seconds": 0}, {"stuck_after_seconds": -1}, {"stuck_after_seconds": "3"},
    {"stuck_action": "explode"}, {"stuck_action": None, "stuck_after_seconds": 1e12},
])
def test_bad_stuck_settings_are_refused_and_change_nothing(api: httpx.Client,
                                                           body: dict[str, Any]) -> None:
    name = f"bad-{uuid.uuid4().hex[:8]}"
    sent = api.post("/v1/tasks", json={"name": name, "queue": name, **body})
    assert sent.status_code == 422 and sent.json()["code"]
    assert api.get("/v1/tasks", params={"name": name}).json()["tasks"] == []
    put = api.put(f"/v1/queues/{name}", json=body)
    assert put.status_code == 422 and put.json()["code"]
    assert name not in [q["name"] for q in api.get("/v1/queues").json()["queues"]]


def test_bad_idle_seconds_is_refused(api: httpx.Client) -> None:
    tid = send(api, "proto", {}, queue="proto2")
    [claimed] = api.post("/v1/claim", json={"worker_id": "w1", "queues": ["proto2"]}).json()["tasks"]
    for idle in (-1, "1", 1e12):
        beat = api.post("/v1/heartbeat", json={"worker_id": "w1", "tasks": [
            {"id": tid, "lease_token": claimed["lease_token"], "idle_seconds": idle}]})
        assert beat.status_code == 422, beat.text
    assert task(api, tid)["stuck"] is False


def test_client_options_and_definition() -> None:
    """The client refuses a bad stuck option where it is written, and sends a good one."""
    from branchwork import InvalidArgs, Registry
    from branchwork._exceptions import DefinitionError

    reg = Registry()
    with pytest.raises(DefinitionError):
        reg.task(stuck_action="explode")(lambda: None)
    with pytest.raises(DefinitionError):
        reg.task(stuck_after_seconds=0)(lambda: None)

    @reg.task(stuck_after_seconds=5.0)
    def slow() -> None: ...

    assert slow.build_request((), {}, {}).body["stuck_after_seconds"] == 5.0
    body = slow.with_config(stuck_action="fail", stuck_after_seconds=9.0)
    request = body.definition.build_request((), {}, body.options)
    assert request.body["stuck_action"] == "fail" and request.body["stuck_after_seconds"] == 9.0
    with pytest.raises(InvalidArgs):
        slow.with_config(stuck_action="nope")
    assert slow.registration()["defaults"]["stuck_after_seconds"] == 5.0


def test_two_replicas_fail_each_stuck_attempt_once(
        make_server: Callable[..., ThreadServer]) -> None:
    """Both replicas run the stuck sweeper; each stuck attempt is failed exactly once."""
    # Leases long enough that the lease sweep cannot end the attempts first.
    first, second = make_server(lease_seconds=9.0), make_server(lease_seconds=9.0)
    with httpx.Client(base_url=first.url, timeout=30) as api:
        ids = [send(api, "proto", {}, queue="race", max_retries=3, retry_backoff="fixed",
                    retry_delay_seconds=60.0, stuck_after_seconds=1.0, stuck_action="fail")
               for _ in range(40)]
        claimed = api.post("/v1/claim", json={"worker_id": "w1", "queues": ["race"],
                                              "limit": 40}).json()["tasks"]
        assert len(claimed) == 40
        # The worker says every attempt has been idle for 30 s.
        api.post("/v1/heartbeat", json={"worker_id": "w1", "tasks": [
            {"id": t["id"], "lease_token": t["lease_token"], "idle_seconds": 30.0}
            for t in claimed]})
        for tid in ids:
            row = wait_status(api, tid, "queued", timeout=20)
            assert events(row).count("stuck") == 1, events(row)
            assert row["attempts"] == 1 and row["error"]["type"] == "Stuck"
        with httpx.Client(base_url=second.url, timeout=30) as other:
            beat = other.post("/v1/heartbeat", json={"worker_id": "w1", "tasks": [
                {"id": t["id"], "lease_token": t["lease_token"]} for t in claimed]}).json()
        assert "lost" in beat, beat
        assert sorted(beat["lost"]) == sorted(ids)  # the worker learns to stop them


def test_a_fresh_replica_answers_a_heartbeat_while_reading_tokens_is_slow(
        make_server: Callable[..., ThreadServer], db_url: str) -> None:
    """A replica reads the access tokens as it starts, so its first request (a worker's
    heartbeat, as in the test above) answers from memory: it is not refused with a 503
    because reading them takes longer than the reload's bound on a busy database (here the
    tokens table is locked)."""
    first, second = make_server(), make_server()
    tokens = second.app.state.server.tokens
    wait_for(lambda: tokens.loads >= 1, what="the second replica reading its tokens")
    with httpx.Client(base_url=first.url, timeout=30) as api:
        send(api, "proto", {}, queue="fresh")
        [leased] = api.post("/v1/claim", json={"worker_id": "w1", "queues": ["fresh"]}
                            ).json()["tasks"]
    with psycopg.connect(db_url) as locker, \
            httpx.Client(base_url=second.url, timeout=30) as other:
        locker.execute("LOCK TABLE api_tokens IN ACCESS EXCLUSIVE MODE")
        beat = other.post("/v1/heartbeat", json={"worker_id": "w1", "tasks": [
            {"id": leased["id"], "lease_token": leased["lease_token"]}]})
        locker.rollback()
    assert beat.status_code == 200, beat.text
    assert beat.json()["lost"] == []

"""Cron schedules: API validation, firing exactly once per fire time with two replicas,
misfire policies after downtime, and leader takeover when the leader's process dies."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime

import httpx
import psycopg

from orchestration_helpers import register_workflow, wait_for
from servers import process_server

FAST = {"scheduler_interval_seconds": 0.1, "leader_lease_seconds": 2.0}


def _cron_tasks(api: httpx.Client, name: str) -> list[dict]:
    tasks = api.get("/v1/tasks", params={"name": name, "limit": 1000}).json()["tasks"]
    return sorted(tasks, key=lambda t: t["idempotency_key"])


def _fire_times(tasks: list[dict]) -> list[datetime]:
    return [datetime.fromisoformat(t["idempotency_key"].split(":", 2)[2]) for t in tasks]


def test_schedule_api_validates_and_manages(api: httpx.Client) -> None:
    bad = [
        {"target": "t", "cron": "not a cron"},
        {"target": "t", "cron": "* * * * * * * *"},
        {"target": "t", "cron": "61 * * * *"},
        {"target": "t", "cron": "* * * * *", "timezone": "Mars/Olympus"},
        {"target": "t", "cron": "* * * * *", "misfire": "sometimes"},
        {"target": "", "cron": "* * * * *"},
        {"cron": "* * * * *"},
        {"target": "t", "cron": "* * * * *", "surprise": True},
    ]
    for body in bad:
        r = api.put("/v1/schedules/s", json=body)
        assert r.status_code == 422, (body, r.text)
        assert set(r.json()) == {"code", "message", "details"}
    assert api.get("/v1/schedules").json()["schedules"] == []
    r = api.put("/v1/schedules/nightly", json={
        "target": "report", "cron": "0 3 * * *", "timezone": "Europe/Paris",
        "args": {"full": True}, "options": {"queue": "batch", "priority": 8}})
    assert r.status_code == 200, r.text
    row = r.json()
    nxt = datetime.fromisoformat(row["next_fire_at"])
    assert nxt > datetime.now(UTC) and nxt.astimezone().tzinfo is not None
    assert nxt.astimezone(UTC).hour in (1, 2)  # 03:00 in Paris is 01:00 or 02:00 UTC
    assert row["source"] == "api" and row["paused"] is False
    assert api.post("/v1/schedules/nightly/pause").json()["paused"] is True
    # Re-registering (a worker restarting) keeps the pause.
    api.put("/v1/schedules/nightly", json={"target": "report", "cron": "0 3 * * *",
                                           "timezone": "Europe/Paris"})
    assert api.get("/v1/schedules/nightly").json()["paused"] is True
    assert api.post("/v1/schedules/nightly/resume").json()["paused"] is False
    # No time zone named: UTC (03:00 is 03:00 UTC, whatever the server's local zone).
    utc = api.put("/v1/schedules/utc-nightly", json={"target": "report", "cron": "0 3 * * *"})
    assert utc.json()["timezone"] == "UTC"
    fire = datetime.fromisoformat(utc.json()["next_fire_at"]).astimezone(UTC)
    assert (fire.hour, fire.minute) == (3, 0) and fire > datetime.now(UTC)
    assert [s["name"] for s in api.get("/v1/schedules").json()["schedules"]] == [
        "nightly", "utc-nightly"]
    api.delete("/v1/schedules/utc-nightly")
    assert api.delete("/v1/schedules/nightly").json() == {"name": "nightly", "deleted": True}
    assert api.get("/v1/schedules/nightly").status_code == 404
    assert api.delete("/v1/schedules/nightly").status_code == 404
    assert api.post("/v1/schedules/ghost/pause").status_code == 404
    # Task names may hold "/", and so may the schedule names made from them.
    r = api.put("/v1/schedules/task:jobs/clean", json={"target": "jobs/clean",
                                                       "cron": "0 * * * *"})
    assert r.status_code == 200 and r.json()["name"] == "task:jobs/clean"
    assert api.post("/v1/schedules/task:jobs/clean/pause").json()["paused"] is True
    assert api.get("/v1/schedules/task:jobs/clean").json()["target"] == "jobs/clean"
    assert api.delete("/v1/schedules/task:jobs/clean").json()["deleted"] is True


def test_fires_once_per_time_with_two_replicas(make_server) -> None:  # type: ignore[no-untyped-def]
    one = make_server(**FAST)
    two = make_server(**FAST)
    with httpx.Client(base_url=one.url, timeout=30) as api, \
            httpx.Client(base_url=two.url, timeout=30) as api2:
        leaders = wait_for(lambda: [c for c in (api, api2)
                                    if c.get("/v1/leader").json()["is_leader"]], timeout=10)
        assert len(leaders) == 1
        r = api2.put("/v1/schedules/tick", json={"target": "tick", "cron": "* * * * * *",
                                                 "args": {"x": 1}})
        assert r.status_code == 200
        time.sleep(4.5)
        api.post("/v1/schedules/tick/pause")
        tasks = _cron_tasks(api, "tick")
        times = _fire_times(tasks)
        assert 3 <= len(times) <= 6
        assert len(set(times)) == len(times)
        assert all(t.microsecond == 0 for t in times)
        steps = {(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)}
        assert steps == {1.0}  # every second fired, each exactly once
        assert all(t["args"] == {"x": 1} for t in tasks)
        assert [c for c in (api, api2) if c.get("/v1/leader").json()["is_leader"]] == leaders


def _backdate(db_url: str, name: str, seconds: int) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE schedules SET next_fire_at = date_trunc('minute', now()) "
                     "- make_interval(secs => %s), paused = false WHERE name = %s",
                     (seconds, name))


def test_misfire_catch_up_and_skip(make_server, db_url: str) -> None:  # type: ignore[no-untyped-def]
    server = make_server(**FAST)
    with httpx.Client(base_url=server.url, timeout=30) as api:
        wait_for(lambda: api.get("/v1/leader").json()["is_leader"], timeout=10)
        for name, misfire, grace in (("catchup", "catch_up", 0), ("skipper", "skip", 0),
                                     ("recent", "skip", 150)):
            r = api.put(f"/v1/schedules/{name}", json={
                "target": name, "cron": "* * * * *", "misfire": misfire,
                "grace_seconds": grace, "paused": True})
            assert r.status_code == 200
            _backdate(db_url, name, 300)  # as if the servers were down for five minutes
        wait_for(lambda: all(datetime.fromisoformat(s["next_fire_at"]) > datetime.now(UTC)
                             for s in api.get("/v1/schedules").json()["schedules"]))
        caught = _fire_times(_cron_tasks(api, "catchup"))
        assert len(caught) in (6, 7)  # every minute boundary from five minutes ago to now
        assert all(t.second == 0 for t in caught)
        skipped = _cron_tasks(api, "skipper")
        assert len(skipped) <= 1  # grace 0: missed fires are dropped (a boundary may be now)
        recent = _fire_times(_cron_tasks(api, "recent"))
        assert len(recent) in (2, 3)  # only the fires of the last 150 seconds
        assert all(t.second == 0 for t in recent)


def test_workflow_schedule_starts_runs(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(**FAST)
    with httpx.Client(base_url=server.url, timeout=30) as api:
        register_workflow(api, "wf", [{"name": "a", "task": "a"}], [])
        api.put("/v1/schedules/wf-every-second", json={
            "kind": "workflow", "target": "wf", "cron": "* * * * * *", "args": {"k": 1}})
        runs = wait_for(lambda: api.get("/v1/workflow-runs").json()["runs"], timeout=10)
        assert runs[0]["workflow_name"] == "wf" and runs[0]["args"] == {"k": 1}
        assert runs[0]["idempotency_key"].startswith("schedule:wf-every-second:")


def test_leader_takeover_when_the_leader_dies(db_url: str) -> None:
    env = {**FAST, "leader_lease_seconds": 2.0}
    with process_server(db_url, **env) as (p1, url1), process_server(db_url, **env) as (p2, url2):
        clients = {p1: httpx.Client(base_url=url1), p2: httpx.Client(base_url=url2)}
        try:
            leader = wait_for(lambda: [p for p, c in clients.items()
                                       if c.get("/v1/leader").json()["is_leader"]], timeout=15)
            assert len(leader) == 1
            dead = leader[0]
            survivor = p2 if dead is p1 else p1
            api = clients[survivor]
            api.put("/v1/schedules/beat", json={"target": "beat", "cron": "* * * * * *"})
            wait_for(lambda: _cron_tasks(api, "beat"), timeout=10)
            os.kill(dead.pid, signal.SIGKILL)
            dead.wait(10)
            killed_at = time.monotonic()
            wait_for(lambda: api.get("/v1/leader").json()["is_leader"], timeout=15)
            took = time.monotonic() - killed_at
            assert took < 2.0 + 3.0  # within the lease (plus generous slack)
            before = len(_cron_tasks(api, "beat"))
            wait_for(lambda: len(_cron_tasks(api, "beat")) >= before + 2, timeout=10)
            times = _fire_times(_cron_tasks(api, "beat"))
            assert len(set(times)) == len(times)
            lease = api.get("/v1/leader").json()["leases"][0]
            assert lease["holder"] == api.get("/v1/leader").json()["replica"]
        finally:
            for c in clients.values():
                c.close()


def test_resume_does_not_send_fires_of_the_pause(make_server, db_url: str) -> None:  # type: ignore[no-untyped-def]
    server = make_server(**FAST)
    with httpx.Client(base_url=server.url, timeout=30) as api:
        wait_for(lambda: api.get("/v1/leader").json()["is_leader"], timeout=10)
        api.put("/v1/schedules/paused", json={"target": "p", "cron": "* * * * *",
                                              "misfire": "catch_up", "paused": True})
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("UPDATE schedules SET next_fire_at = now() - interval '1 hour'")
        row = api.post("/v1/schedules/paused/resume").json()
        assert datetime.fromisoformat(row["next_fire_at"]) > datetime.now(UTC)
        time.sleep(1.0)
        assert _cron_tasks(api, "p") == []

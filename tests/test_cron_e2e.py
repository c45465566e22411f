"""Cron end to end: a worker registers its cron task and cron workflow at start; the
server's scheduler sends them; the worker runs them."""

from __future__ import annotations

import httpx

from orchestration_helpers import wait_for
from worker_helpers import python_worker


def test_worker_registers_schedules_that_fire(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(scheduler_interval_seconds=0.1, leader_lease_seconds=2.0)
    with httpx.Client(base_url=server.url, timeout=30) as api, \
            python_worker(server.url, "orchestration_app:cron_reg", "--concurrency", "4"):
        schedules = wait_for(lambda: api.get("/v1/schedules").json()["schedules"], timeout=30)
        by_name = {s["name"]: s for s in schedules}
        assert set(by_name) == {"task:every_second", "workflow:cron_flow"}
        assert by_name["task:every_second"]["source"] == "worker"
        assert by_name["task:every_second"]["args"] == {"tag": "cron"}
        assert by_name["workflow:cron_flow"]["kind"] == "workflow"

        def done() -> list[dict]:
            tasks = api.get("/v1/tasks", params={"name": "every_second",
                                                 "status": "succeeded"}).json()["tasks"]
            return tasks if len(tasks) >= 2 else []

        tasks = wait_for(done, timeout=30)
        assert all(t["result"] == "cron" for t in tasks)
        assert all(t["idempotency_key"].startswith("schedule:task:every_second:")
                   for t in tasks)
        runs = wait_for(lambda: api.get("/v1/workflow-runs", params={
            "workflow": "cron_flow", "status": "succeeded"}).json()["runs"], timeout=30)
        assert runs[0]["idempotency_key"].startswith("schedule:workflow:cron_flow:")
        api.post("/v1/schedules/task:every_second/pause")
        api.post("/v1/schedules/workflow:cron_flow/pause")
        # A policy set through the API survives the worker registering again.
        api.put("/v1/schedules/task:every_second", json={
            "target": "every_second", "cron": "* * * * * *", "misfire": "catch_up",
            "grace_seconds": 5, "timezone": "Asia/Tokyo"})
        item = {"name": "task:every_second", "target": "every_second", "cron": "* * * * * *"}
        api.post("/v1/schedules/register", json={"schedules": [item]})
        row = api.get("/v1/schedules/task:every_second").json()
        assert (row["misfire"], row["grace_seconds"], row["timezone"], row["paused"]) == (
            "catch_up", 5, "Asia/Tokyo", True)
        assert row["source"] == "worker"

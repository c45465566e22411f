"""Issue 9, item 1: every write a report makes is fenced by the lease, the logs included.

A stale or forged lease token, or a repeat of an outcome already recorded, is answered
(409 ``stale_lease`` / ``already_recorded``) and must change nothing a user can read.
"""

from __future__ import annotations

import httpx

FORGED = "00000000-0000-0000-0000-000000000000"


def _logs(api: httpx.Client, tid: int) -> list[tuple[int, str]]:
    return [(log["attempt"], log["output"]) for log in api.get(f"/v1/tasks/{tid}").json()["logs"]]


def _claim(api: httpx.Client, worker: str = "w") -> dict:
    [t] = api.post("/v1/claim", json={"worker_id": worker}).json()["tasks"]
    return t


def test_forged_token_does_not_overwrite_logs(api: httpx.Client) -> None:
    tid = api.post("/v1/tasks", json={"name": "job"}).json()["id"]
    t = _claim(api)
    ok = api.post(f"/v1/tasks/{tid}/complete",
                  json={"lease_token": t["lease_token"], "result": 1, "logs": "real output"})
    assert ok.status_code == 200, ok.text
    forged = api.post(f"/v1/tasks/{tid}/complete",
                      json={"lease_token": FORGED, "result": 2, "logs": "FORGED"})
    assert forged.status_code == 409 and forged.json()["code"] == "stale_lease"
    failed = api.post(f"/v1/tasks/{tid}/fail",
                      json={"lease_token": FORGED, "error": {"type": "X"}, "logs": "FORGED"})
    assert failed.status_code == 409
    row = api.get(f"/v1/tasks/{tid}").json()
    assert row["result"] == 1 and row["status"] == "succeeded"
    assert _logs(api, tid) == [(1, "real output")]


def test_forged_token_on_a_running_task_writes_no_logs(api: httpx.Client) -> None:
    tid = api.post("/v1/tasks", json={"name": "job"}).json()["id"]
    _claim(api)
    forged = api.post(f"/v1/tasks/{tid}/complete",
                      json={"lease_token": FORGED, "result": 2, "logs": "FORGED"})
    assert forged.status_code == 409
    assert _logs(api, tid) == []
    assert api.get(f"/v1/tasks/{tid}").json()["status"] == "running"


def test_batch_stale_and_repeated_items_write_nothing(api: httpx.Client) -> None:
    first = api.post("/v1/tasks", json={"name": "job", "max_retries": 1}).json()["id"]
    second = api.post("/v1/tasks", json={"name": "job"}).json()["id"]
    a = _claim(api, "a")
    b = _claim(api, "b")
    done = api.post("/v1/tasks/report", json={"results": [
        {"id": first, "lease_token": a["lease_token"], "outcome": "succeeded", "result": "a",
         "logs": "first's own output"},
        {"id": second, "lease_token": b["lease_token"], "outcome": "failed",
         "error": {"type": "Boom"}, "logs": "second's own output"}]})
    assert done.status_code == 200, done.text
    again = api.post("/v1/tasks/report", json={"results": [
        # a repeat of the outcome on record: already_recorded, logs untouched
        {"id": first, "lease_token": a["lease_token"], "outcome": "succeeded", "result": "a",
         "logs": "REPEATED"},
        # a late worker with a token that is no longer current
        {"id": second, "lease_token": FORGED, "outcome": "succeeded", "result": "x",
         "logs": "LATE"}]})
    assert again.status_code == 200, again.text
    assert [r["outcome"] for r in again.json()["results"]] == ["already_recorded", "stale_lease"]
    assert _logs(api, first) == [(1, "first's own output")]
    assert _logs(api, second) == [(1, "second's own output")]


def test_late_worker_does_not_overwrite_the_logs_of_the_attempt_that_replaced_it(
        api: httpx.Client) -> None:
    tid = api.post("/v1/tasks", json={"name": "job", "max_retries": 1}).json()["id"]
    old = _claim(api, "old")
    # the old attempt is handed back (as a lost lease would be); a new one runs and reports
    assert api.post("/v1/tasks/release", json={"worker_id": "old", "tasks": [
        {"id": tid, "lease_token": old["lease_token"]}]}).status_code == 200
    new = _claim(api, "new")
    assert api.post(f"/v1/tasks/{tid}/complete", json={
        "lease_token": new["lease_token"], "result": 1, "logs": "new output"}).status_code == 200
    late = api.post(f"/v1/tasks/{tid}/complete", json={
        "lease_token": old["lease_token"], "result": 0, "logs": "old output"})
    assert late.status_code == 409
    assert [out for _, out in _logs(api, tid)] == ["new output"]

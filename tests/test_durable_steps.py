"""Durable steps (docs/durable.md): a step runs once per task, not once per attempt; a stale
attempt cannot write one; a name reused with another function is a clear error in the task.
Real server, real worker processes, ``kill -9`` included."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator

import httpx
import pytest

from durable_app import lines
from orchestration_helpers import claim_one
from worker_helpers import events, python_worker, send, task, wait_for, wait_status

LEASE = 2.0
APP = "durable_app:reg"


@pytest.fixture
def short(make_server) -> Iterator[tuple[str, httpx.Client]]:
    server = make_server(lease_seconds=LEASE, sweep_interval_seconds=0.2)
    with httpx.Client(base_url=server.url, timeout=30) as api:
        yield server.url, api


def worker(url: str, tmp_path, *args: str):
    return python_worker(url, APP, "--queue", "durable", *args, BW_TEST_DIR=str(tmp_path))


def test_killed_during_the_third_step_resumes_and_runs_only_the_third(short, tmp_path):
    url, api = short
    task_id = send(api, "three_steps", {"marker": "m"}, queue="durable", max_retries=2)
    with worker(url, tmp_path) as proc:
        wait_for(lambda: lines(tmp_path, "m.third") == ["started"], timeout=30,
                 what="the third step to start")
        # Steps a and b are stored before c starts; kill the worker (and its task process).
        assert [s["name"] for s in task(api, task_id)["steps"]] == ["a", "b"]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    # The lease runs out, the task is queued again; a new worker resumes it.
    with worker(url, tmp_path):
        row = wait_status(api, task_id, timeout=60)
    assert row["status"] == "succeeded", row["error"]
    assert row["result"] == [{"part": "a"}, {"part": "b"}, "c done"]
    # a and b ran once in all; c ran twice (killed once), finished once.
    assert lines(tmp_path, "m") == ["a ran", "b ran", "c ran", "c ran"]
    assert row["attempts"] == 2 and events(row).count("claimed") == 2
    steps = row["steps"]
    assert [(s["name"], s["kind"], s["attempt"]) for s in steps] == [
        ("a", "step", 1), ("b", "step", 1), ("c", "step", 2)]
    assert [s["position"] for s in steps] == [0, 1, 2]
    assert all(s["fn"].startswith("durable_app.") for s in steps)
    assert all(s["started_at"] <= s["finished_at"] for s in steps)


def test_a_stale_attempt_cannot_write_a_step(short):
    url, api = short
    task_id = send(api, "three_steps", {"marker": "stale"}, queue="durable", max_retries=3)
    first = claim_one(api, "durable")
    body = {"lease_token": first["lease_token"], "name": "a", "fn": "m.f", "result": 1}
    ok = api.post(f"/v1/tasks/{task_id}/steps", json=body)
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"name": "a", "recorded": True, "result": 1}
    # A repeat (a retried request) answers the stored step and writes nothing.
    again = api.post(f"/v1/tasks/{task_id}/steps", json={**body, "result": 99})
    assert again.json() == {"name": "a", "recorded": False, "result": 1}
    # The lease runs out; a second attempt holds the task now.
    wait_for(lambda: task(api, task_id)["status"] == "queued", timeout=15,
             what="the lease to run out")
    second = claim_one(api, "durable")
    assert second["id"] == task_id and second["lease_token"] != first["lease_token"]
    stale = api.post(f"/v1/tasks/{task_id}/steps",
                     json={**body, "name": "b", "result": "from the stale attempt"})
    assert stale.status_code == 409 and stale.json()["code"] == "stale_lease"
    current = api.post(f"/v1/tasks/{task_id}/steps",
                       json={**body, "lease_token": second["lease_token"], "name": "b",
                             "result": "current"})
    assert current.json()["recorded"] is True
    steps = api.get(f"/v1/tasks/{task_id}/steps").json()["steps"]
    assert [(s["name"], s["result"], s["attempt"]) for s in steps] == [
        ("a", 1, 1), ("b", "current", 2)]
    # The same name with another function: 409 step_conflict, nothing changed.
    clash = api.post(f"/v1/tasks/{task_id}/steps",
                     json={**body, "lease_token": second["lease_token"], "fn": "m.other"})
    assert clash.status_code == 409 and clash.json()["code"] == "step_conflict"
    assert api.get(f"/v1/tasks/{task_id}/steps").json()["steps"] == steps


def test_bad_step_writes_are_refused(short):
    url, api = short
    task_id = send(api, "three_steps", {"marker": "bad"}, queue="durable")
    leased = claim_one(api, "durable")
    token = leased["lease_token"]
    missing = api.post("/v1/tasks/999999/steps", json={"lease_token": token, "name": "a"})
    assert missing.status_code == 404
    forged = api.post(f"/v1/tasks/{task_id}/steps",
                      json={"lease_token": str(uuid.uuid4()), "name": "a", "result": 1})
    assert forged.status_code == 409 and forged.json()["code"] == "stale_lease"
    for body in ({"lease_token": token, "name": ""}, {"lease_token": token},
                 {"lease_token": token, "name": "a", "duration_seconds": -1}):
        assert api.post(f"/v1/tasks/{task_id}/steps", json=body).status_code == 422
    big = api.post(f"/v1/tasks/{task_id}/steps",
                   json={"lease_token": token, "name": "a", "result": "x" * 1_100_000})
    assert big.status_code == 413
    assert api.get(f"/v1/tasks/{task_id}/steps").json()["steps"] == []


def test_a_step_name_reused_with_another_function_fails_the_task(short, tmp_path):
    url, api = short
    task_id = send(api, "reuses_a_name", {"marker": "reuse"}, queue="durable")
    with worker(url, tmp_path):
        row = wait_status(api, task_id, timeout=30)
    assert row["status"] == "failed"
    assert row["error"]["type"] == "StepMismatch"
    assert "'load'" in row["error"]["message"] and "other" in row["error"]["message"]
    # The first use ran and was stored; the second function never ran.
    assert lines(tmp_path, "reuse") == ["one ran"]
    assert [s["name"] for s in row["steps"]] == ["load"]


def test_one_name_in_a_loop_is_one_step_per_use_and_replays(short, tmp_path):
    url, api = short
    task_id = send(api, "loop_of_steps", {"marker": "loop", "n": 3}, queue="durable")
    with worker(url, tmp_path):
        row = wait_status(api, task_id, timeout=30)
    assert row["status"] == "succeeded", row["error"]
    assert row["result"] == [{"part": "0"}, {"part": "1"}, {"part": "2"}]
    # It slept once (a suspend and a resume): the steps ran once, not twice.
    assert lines(tmp_path, "loop") == ["0 ran", "1 ran", "2 ran"]
    assert [(s["name"], s["kind"]) for s in row["steps"]] == [
        ("load", "step"), ("load#2", "step"), ("load#3", "step"), ("sleep", "sleep")]
    assert events(row).count("suspended") == 1 and events(row).count("claimed") == 2
    assert row["attempts"] == 1  # a suspension spends no retry
    # The studio's task page lists them, in order.
    page = api.get(f"/studio/tasks/{task_id}").text
    assert 'id="task-steps"' in page
    assert page.index(">load<") < page.index(">load#2<") < page.index(">load#3<") < page.index(
        ">sleep<")


def test_async_steps_and_sleep(short, tmp_path):
    url, api = short
    task_id = send(api, "async_sleeper", {"marker": "async"}, queue="durable")
    with worker(url, tmp_path):
        row = wait_status(api, task_id, timeout=30)
    assert row["status"] == "succeeded", row["error"]
    assert row["result"] == ["made", "mademade"]
    assert lines(tmp_path, "async") == ["made"]
    assert [s["name"] for s in row["steps"]] == ["make", "sleep", "double"]


def test_the_documented_example_runs(short, tmp_path):
    """docs/durable.md's first example, verbatim: the module in a worker, the sender here."""
    import ast
    import re
    import sys

    from branchwork import configure
    from worker_helpers import ROOT, TESTS_DIR

    url, api = short
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "durable.md").read_text(),
                        re.S)
    (tmp_path / "shop.py").write_text(blocks[0])
    path = os.pathsep.join([str(tmp_path), str(TESTS_DIR)])
    with python_worker(url, "shop:reg", PYTHONPATH=path):
        sys.path.insert(0, str(tmp_path))
        configure(url=url)
        try:
            printed: list[str] = []
            exec(blocks[1], {"print": printed.append})  # noqa: S102 (the doc's own code)
        finally:
            configure()
            sys.path.remove(str(tmp_path))
            sys.modules.pop("shop", None)
    expected = re.search(r"^# (\{'charge'.*)$", blocks[1], re.M).group(1)
    assert printed[0] == ast.literal_eval(expected)
    [row] = api.get("/v1/tasks", params={"name": "fulfil"}).json()["tasks"]
    row = task(api, row["id"])
    assert [s["name"] for s in row["steps"]] == ["charge", "sleep", "event:picked.7", "ship"]
    # Two suspensions (the sleep, the wait: its event was in the look-back already, so it
    # resumed in the same transaction), three runs.
    assert events(row).count("suspended") == 2 and events(row).count("claimed") == 3
    assert row["steps"][0]["attempt"] == 1 and row["attempts"] == 1
    # The attempt's logs hold its three runs in order: charge printed once, in the first.
    [log] = row["logs"]
    assert log["output"].count("charging 12.5 for order 7") == 1
    assert log["output"].index("charging") < log["output"].index(
        "[suspended: waits for sleep]") < log["output"].index(
        "[suspended: waits for event picked.7]")

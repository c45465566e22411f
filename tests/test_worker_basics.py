"""The Python worker end to end: a real server, real `branchwork run-worker` processes."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import httpx
import pytest

import branchwork
from branchwork.worker import WorkerOptions
from worker_helpers import (
    events,
    python_worker,
    running,
    send,
    task,
    wait_for,
    wait_status,
    worker_env,
)
from workers_app import (
    EmailArgs,
    add,
    async_always_fails,
    flaky,
    lines,
    multiply,
    reg,
    send_email,
)


@pytest.fixture
def trace_dir(tmp_path):
    return tmp_path


@pytest.fixture
def client(server):
    branchwork.configure(url=server.url)
    yield
    branchwork.configure()


def test_sync_and_async_tasks_end_to_end(server, api, client, trace_dir):
    """Send with the client, run on a worker, read the results back through the client."""
    runs = [add.send(2, 3), multiply.send(4, 5), add.send(a=10, b=-1)]
    with python_worker(server.url, BW_TEST_DIR=str(trace_dir)) as proc:
        assert runs[0].result(timeout=30) == 5
        assert runs[1].result(timeout=30) == {"product": 20}
        assert runs[2].result(timeout=30) == 9
        workers = api.get("/v1/workers").json()["workers"]
        assert len(workers) == 1 and workers[0]["online"]
        assert "add" in workers[0]["task_names"] and "multiply" in workers[0]["task_names"]
        # Default queues: those of the registry's tasks.
        assert sorted(workers[0]["queues"]) == sorted({d.queue.name for d in reg.tasks.values()})
        host, pid, rand = workers[0]["id"].rsplit("-", 2)
        assert int(pid) == proc.pid and len(rand) == 6
        defs = {d["name"]: d for d in api.get("/v1/task-definitions").json()["definitions"]}
        assert {"add", "multiply", "flaky", "stubborn"} <= set(defs)
        # Each definition carries its queue, send defaults and argument JSON schema.
        assert defs["add"]["queue"] == "math"
        assert defs["add"]["defaults"] == {"priority": 5, "max_retries": 0}
        assert defs["add"]["args_schema"]["required"] == ["a", "b"]
        assert {k: v["type"] for k, v in defs["add"]["args_schema"]["properties"].items()} \
            == {"a": "integer", "b": "integer"}
        email = defs["send_email"]
        assert email["queue"] == "email"
        assert email["defaults"] == {"priority": 5, "max_retries": 3, "timeout_seconds": 30,
                                     "retry_backoff_function": True, "concurrency_limit": 10}
        assert sorted(email["args_schema"]["properties"]) == ["subject", "to"]
    for run in runs:
        row = task(api, run.id)
        assert row["attempts"] == 1
        assert events(row) == ["claimed", "succeeded"]


def _at(row: dict, event: str, nth: int = 0) -> datetime:
    stamps = [e["at"] for e in row["history"] if e["event"] == event]
    return datetime.fromisoformat(stamps[nth])


def test_retries_honour_backoff_and_call_on_error_once_per_failure(server, api, client,
                                                                   trace_dir):
    flaky_id = flaky.send(3).id  # the client sends the definition's max_retries=2
    failing_id = async_always_fails.send().id
    with python_worker(server.url, BW_TEST_DIR=str(trace_dir)):
        done = wait_status(api, flaky_id)
        failed = wait_status(api, failing_id)
    assert done["status"] == "succeeded" and done["result"] == "ok on attempt 3"
    assert events(done) == ["claimed", "retry_scheduled", "claimed", "retry_scheduled",
                            "claimed", "succeeded"]
    # retry_backoff=lambda n: 1.0 * n: at least 1 s, then 2 s between the attempts.
    assert (_at(done, "claimed", 1) - _at(done, "retry_scheduled", 0)).total_seconds() >= 0.95
    assert (_at(done, "claimed", 2) - _at(done, "retry_scheduled", 1)).total_seconds() >= 1.95
    assert done["history"][1]["error"]["type"] == "ValueError"
    assert lines(trace_dir, f"errors-{flaky_id}") == ["1 ValueError", "2 ValueError"]
    assert branchwork.KV.get(f"errors:{flaky_id}") == "2"

    assert failed["status"] == "failed" and failed["attempts"] == 2
    assert failed["error"]["type"] == "RuntimeError" and "always" in failed["error"]["message"]
    assert "Traceback" in failed["error"]["traceback"]
    assert lines(trace_dir, f"errors-{failing_id}") == ["1 RuntimeError", "2 RuntimeError"]
    assert branchwork.KV.get(f"errors:{failing_id}") == "2"


def test_claims_and_reports_go_in_batches(server, api, trace_dir):
    """One claim statement stamps all its tasks' ``claimed`` events with one time (PostgreSQL's
    now() is the transaction's start), one report statement all its outcomes: so distinct
    stamps count the requests."""
    sent = api.post("/v1/tasks/batch", json={"tasks": [
        {"name": "multiply", "args": {"a": i, "b": 2}, "queue": "math"} for i in range(50)]})
    ids = [t["id"] for t in sent.json()["tasks"]]
    with python_worker(server.url, "workers_app:reg", "-q", "math", "-c", "50", "-b", "50",
                       BW_TEST_DIR=str(trace_dir)):
        rows = [wait_status(api, i) for i in ids]
    assert [r["result"] for r in rows] == [{"product": 2 * i} for i in range(50)]
    claims = {e["at"] for r in rows for e in r["history"] if e["event"] == "claimed"}
    reports = {e["at"] for r in rows for e in r["history"] if e["event"] == "succeeded"}
    assert len(claims) == 1  # all 50 leased by one claim
    assert len(reports) <= 10  # outcomes reported in batches, not one request per task


def test_priority_order_then_fifo(server, api, trace_dir):
    plan = [("low-1", 1), ("high-1", 9), ("mid-1", 5), ("high-2", 9), ("low-2", 1),
            ("mid-2", 5)]
    for label, priority in plan:
        send(api, "record", {"label": label}, queue="ordered", priority=priority)
    with python_worker(server.url, "workers_app:reg", "-q", "ordered", "-c", "1", "-b", "1",
                       BW_TEST_DIR=str(trace_dir)):
        wait_for(lambda: len(lines(trace_dir, "order")) == len(plan), what="all records")
    assert lines(trace_dir, "order") == ["high-1", "high-2", "mid-1", "mid-2", "low-1", "low-2"]


def test_concurrent_async_tasks_keep_their_own_context(server, api, trace_dir):
    ids = [send(api, "whoami", {"delay": 0.05 * (i % 7)}, queue="ctx", priority=1 + i % 10,
                max_retries=i % 4, timeout_seconds=60.0 + i)
           for i in range(30)]
    with python_worker(server.url, "workers_app:reg", "-q", "ctx", "-c", "30",
                       BW_TEST_DIR=str(trace_dir)) as proc:
        rows = [wait_status(api, i) for i in ids]
    for i, (task_id, row) in enumerate(zip(ids, rows, strict=True)):
        assert row["status"] == "succeeded", row
        assert row["result"]["before"] == row["result"]["after"] == task_id
        assert row["result"]["attempt"] == 1
        assert row["result"]["worker"].split("-")[-2] == str(proc.pid)
        # Every field of get_context() is this task's own.
        assert row["result"]["ctx"] == {
            "task_name": "whoami", "queue": "ctx", "priority": 1 + i % 10,
            "max_retries": i % 4, "timeout_seconds": 60.0 + i, "parent_id": None,
            "root_id": task_id}


def test_tasks_sent_from_tasks_form_a_tree(server, api, trace_dir):
    root_id = send(api, "root", {"n": 2}, queue="tree")
    with python_worker(server.url, "workers_app:reg", "-q", "tree", BW_TEST_DIR=str(trace_dir)):
        top = wait_status(api, root_id)
        assert top["status"] == "succeeded", top
        branches = [wait_status(api, i) for i in top["result"]]
        leaves = [wait_status(api, i) for b in branches for i in b["result"]]
    assert len(branches) == 2 and len(leaves) == 4
    for b in branches:
        assert b["parent_id"] == root_id and b["root_id"] == root_id and b["depth"] == 1
    branch_ids = {b["id"] for b in branches}
    for leaf in leaves:
        assert leaf["parent_id"] in branch_ids and leaf["root_id"] == root_id
        assert leaf["depth"] == 2 and leaf["status"] == "succeeded"
    tree = api.get("/v1/tasks", params={"root_id": root_id}).json()["tasks"]
    assert len(tree) == 7


def test_a_result_that_is_not_json_fails_the_task_clearly(server, api, trace_dir):
    ids = [send(api, "unstorable", None, queue="math"),
           send(api, "async_unstorable", None, queue="math")]
    with python_worker(server.url, "workers_app:reg", "-q", "math",
                       BW_TEST_DIR=str(trace_dir)):
        rows = [wait_status(api, i) for i in ids]
    for row in rows:
        assert row["status"] == "failed" and row["attempts"] == 1, row
        assert row["error"]["type"] == "ResultNotSerializable"
        assert "is not storable JSON" in row["error"]["message"]
        assert row["result"] is None


def test_an_outcome_the_server_cannot_store_is_reported_with_less_in_it(server, api,
                                                                       trace_dir):
    """NUL cannot be stored: the report goes again without the output (and the message),
    instead of being retried for ever with the task held."""
    ok = send(api, "prints_nul", None, queue="math")
    bad = send(api, "async_fails_with_nul", None, queue="math")
    with python_worker(server.url, "workers_app:reg", "-q", "math",
                       BW_TEST_DIR=str(trace_dir)):
        ok_row, bad_row = wait_status(api, ok), wait_status(api, bad)
    assert ok_row["status"] == "succeeded" and ok_row["result"] == 1, ok_row
    assert ok_row["logs"][0]["output"].startswith("[captured output refused:")
    assert bad_row["status"] == "failed" and bad_row["attempts"] == 1, bad_row
    assert bad_row["error"]["type"] == "ReportRefused"
    assert "NUL" in bad_row["error"]["message"]


def test_output_is_captured_per_attempt_and_bounded(server, api, trace_dir):
    sync_id = send(api, "noisy", {"n": 7})
    async_id = send(api, "async_noisy", None)
    with python_worker(server.url, "workers_app:reg", "--log-limit", "50000",
                       BW_TEST_DIR=str(trace_dir)):
        sync_row = wait_status(api, sync_id)
        async_row = wait_status(api, async_id)
    [sync_log] = sync_row["logs"]
    assert sync_log["attempt"] == 1
    out = sync_log["output"]
    assert out.startswith("[earlier output truncated]")
    assert out.rstrip().endswith("last line")
    assert len(out) <= 50_000 + 100  # bounded by --log-limit
    [async_log] = async_row["logs"]
    assert "async says hi" in async_log["output"]
    assert "INFO workers_app: async info line" in async_log["output"]



def test_worker_sends_the_api_token(make_server, tmp_path):
    server = make_server(api_token="s3cret")
    headers = {"authorization": "Bearer s3cret"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as api:
        task_id = send(api, "add", {"a": 1, "b": 2}, queue="math")
        with python_worker(server.url, "workers_app:reg", "-q", "math",
                           BW_TEST_DIR=str(tmp_path), BRANCHWORK_API_TOKEN="s3cret"):
            row = wait_status(api, task_id)
        assert row["status"] == "succeeded" and row["result"] == 3


def test_worker_refused_by_the_server_exits_2_instead_of_retrying(make_server, tmp_path):
    server = make_server(api_token="s3cret")
    cmd = [sys.executable, "-m", "branchwork.cli", "run-worker", "workers_app:reg",
           "-q", "math"]
    env = worker_env(server.url, BW_TEST_DIR=str(tmp_path), BRANCHWORK_API_TOKEN="wrong")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "refused this worker" in done.stderr and "401 unauthorized" in done.stderr


def test_worker_started_in_code_from_an_unguarded_script(server, api, tmp_path):
    task_id = send(api, "add", {"a": 20, "b": 22}, queue="math")
    script = str(Path(__file__).parent / "unguarded_worker_script.py")
    with running([sys.executable, script], worker_env(server.url, BW_TEST_DIR=str(tmp_path))):
        row = wait_status(api, task_id)
    assert row["status"] == "succeeded" and row["result"] == 42
    assert len(api.get("/v1/workers").json()["workers"]) == 1  # the script ran once


@pytest.mark.parametrize("spec, message", [
    ("no_such_module:reg", "cannot import 'no_such_module'"),
    ("workers_app:nope", "has no attribute 'nope'"),
    ("workers_app", "expected module:registry"),
    ("workers_app:lines", "not a branchwork Registry"),
])
def test_bad_registry_spec_exits_2_with_a_message(server, spec, message):
    cmd = [sys.executable, "-m", "branchwork.cli", "run-worker", spec]
    done = subprocess.run(cmd, env=worker_env(server.url), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert message in done.stderr


def test_queue_pattern_the_server_refuses_exits_2_before_starting():
    """``[...]`` is no glob the server knows: refused at start, not retried forever."""
    cmd = [sys.executable, "-m", "branchwork.cli", "run-worker", "workers_app:reg",
           "-q", "math", "-q", "reports.[ab]"]
    done = subprocess.run(cmd, env=worker_env("http://127.0.0.1:9"), capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2
    assert "invalid queue 'reports.[ab]'" in done.stderr
    with pytest.raises(ValueError, match="invalid queue 'a b'"):
        WorkerOptions(spec="workers_app:reg", url="http://127.0.0.1:9", queues=["a b"])
    assert WorkerOptions(spec="workers_app:reg", url="http://127.0.0.1:9",
                         queues=["reports.*", "q?", "math"]).queues == ["reports.*", "q?", "math"]


def test_readme_example(server, api, client, trace_dir):
    run = send_email.send(EmailArgs(to="a@b.c", subject="hi"))
    urgent = send_email.with_config(priority=10, idempotency_key="welcome-42").send(
        to="a@b.c", subject="welcome")
    again = send_email.with_config(idempotency_key="welcome-42").send(to="x@y.z", subject="x")
    flaky_run = send_email.send(to="c@d.e", subject="flaky")
    assert again.id == urgent.id and again.duplicate
    with python_worker(server.url, "workers_app:reg", "-q", "email",
                       BW_TEST_DIR=str(trace_dir)):
        assert run.result(timeout=30) == {"sent": True, "to": "a@b.c", "attempt": 1}
        assert urgent.result(timeout=30)["to"] == "a@b.c"
        assert flaky_run.result(timeout=30) == {"sent": True, "to": "c@d.e", "attempt": 2}
    assert branchwork.KV.get("emails-sent") == "4"  # three tasks, one of them twice
    queue = {q["name"]: q for q in api.get("/v1/queues").json()["queues"]}["email"]
    assert queue["concurrency_limit"] == 10  # declared in code, written to the server


def test_concurrency_caps_tasks_running_at_once_and_globs_select_queues(server, api,
                                                                        trace_dir):
    ids = [send(api, "overlap", {"i": i}, queue="limits") for i in range(8)]
    with python_worker(server.url, "workers_app:reg", "-q", "lim*", "-c", "3",
                       BW_TEST_DIR=str(trace_dir)):
        rows = [wait_status(api, i) for i in ids]
    assert all(r["status"] == "succeeded" for r in rows)
    running, peak = 0, 0
    for line in lines(trace_dir, "overlap"):
        running += 1 if line.startswith("+") else -1
        peak = max(peak, running)
    assert peak == 3  # never more than --concurrency, and it does use all of them

"""The Node.js example worker (examples/node) against a real server: the protocol is enough
to write a worker in another language."""

from __future__ import annotations

import shutil
import signal

import pytest

import branchwork
from branchwork import Registry, TaskFailed
from worker_helpers import ROOT, events, running, send, task, wait_for, wait_status, worker_env

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")
EXAMPLE = str(ROOT / "examples" / "node" / "example.mjs")


def test_node_worker_claims_heartbeats_completes_and_fails(server, api):
    add = send(api, "node.add", {"a": 2, "b": 3}, queue="node")
    fail = send(api, "node.fail", {"message": "nope"}, queue="node", max_retries=1,
                retry_delay_seconds=0.1)
    slow = send(api, "node.sleep", {"ms": 6000}, queue="node")  # two leases long (3 s)
    with running([NODE, EXAMPLE], worker_env(server.url)) as proc:
        done = wait_status(api, add)
        assert done["status"] == "succeeded"
        assert done["result"] == {"sum": 5, "by": "node"}
        failed = wait_status(api, fail)
        assert failed["status"] == "failed"
        assert failed["attempts"] == 2
        assert failed["error"]["type"] == "TypeError"
        assert failed["error"]["message"] == "nope"
        assert events(failed) == ["claimed", "retry_scheduled", "claimed", "failed"]
        slept = wait_status(api, slow, timeout=20)
        assert slept["status"] == "succeeded", slept
        assert slept["attempts"] == 1  # the heartbeats kept the lease past 3 s
        assert "lost" not in events(slept)
        workers = api.get("/v1/workers").json()["workers"]
        node = [w for w in workers if w["info"].get("language") == "node"]
        assert len(node) == 1 and node[0]["online"]
        assert sorted(node[0]["task_names"]) == ["node.add", "node.fail", "node.sleep"]
        assert proc.poll() is None


def test_tasks_sent_with_the_python_client_run_on_the_node_worker(server, api):
    """The Python client's args shape (parameters by name) is what the Node worker reads, and
    its outcomes come back through ``TaskRun.result()``."""
    reg = Registry()

    @reg.task(name="node.add", queue="node")
    def node_add(a: int, b: int) -> dict:
        raise NotImplementedError("runs in Node.js")

    @reg.task(name="node.fail", queue="node", max_retries=1, retry_backoff=0.1)
    def node_fail(message: str) -> None:
        raise NotImplementedError("runs in Node.js")

    branchwork.configure(url=server.url)
    try:
        added = node_add.send(40, b=2)
        failing = node_fail.send(message="from python")
        with running([NODE, EXAMPLE], worker_env(server.url)):
            assert added.result(timeout=20) == {"sum": 42, "by": "node"}
            with pytest.raises(TaskFailed) as failed:
                failing.result(timeout=20)
    finally:
        branchwork.configure()
    assert failed.value.error_type == "TypeError"
    assert failed.value.error_message == "from python"
    assert failed.value.attempts == 2
    assert events(task(api, failing.id)) == ["claimed", "retry_scheduled", "claimed", "failed"]


def test_node_worker_cancel_and_sigterm_release(server, api):
    doomed = send(api, "node.sleep", {"ms": 60000}, queue="node")
    kept = send(api, "node.sleep", {"ms": 60000}, queue="node")
    env = worker_env(server.url, BRANCHWORK_GRACE_MS="300")
    with running([NODE, EXAMPLE], env) as proc:
        wait_status(api, doomed, "running")
        wait_status(api, kept, "running")
        assert api.post(f"/v1/tasks/{doomed}/cancel").status_code == 200
        cancelled = wait_status(api, doomed, timeout=10)
        assert cancelled["status"] == "cancelled"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    released = task(api, kept)
    assert released["status"] == "queued"
    assert released["attempts"] == 0  # a release does not use up a retry
    assert events(released) == ["claimed", "released"]
    workers = wait_for(lambda: api.get("/v1/workers").json()["workers"])
    assert workers[0]["stopped_at"] is not None

"""Workflows end to end: defined with the Python DSL, run by a real worker process, advanced
by a real server."""

from __future__ import annotations

import contextlib

import httpx
import pytest
from pydantic import BaseModel

import branchwork
from branchwork import WorkflowCancelled, WorkflowFailed
from orchestration_app import ETLArgs, etl, failing, loop, too_slow
from orchestration_app import channel_flow as channel_wf
from orchestration_app import course as course_wf
from worker_helpers import python_worker

WORKER = ("orchestration_app:reg", "--concurrency", "4")


@pytest.fixture
def client(server):  # type: ignore[no-untyped-def]
    branchwork.configure(url=server.url)
    yield
    branchwork.configure()


def _runs_of(api: httpx.Client, run_id: int, node: str) -> int:
    r = api.get(f"/v1/kv/ran:{run_id}:{node}")
    return int(r.json()["value"]) if r.status_code == 200 else 0


def test_diamond_etl(api: httpx.Client, server, client) -> None:  # type: ignore[no-untyped-def]
    run = etl.send(ETLArgs(source="s3://in"))
    with python_worker(server.url, *WORKER):
        results = run.result(timeout=60)
    assert results["extract"] == {"rows": len("s3://in")}
    assert results["load"] == {"runs": 1, "seen": ["extract", "transform", "validate"],
                               "from_transform": "T",
                               "args": {"source": "s3://in", "destination": "out"}}
    for node in ("extract", "transform", "validate", "load"):
        assert _runs_of(api, run.id, node) == 1, node
    tasks = api.get("/v1/tasks", params={"workflow_run_id": run.id}).json()["tasks"]
    queues = {t["workflow_node"]: t["queue"] for t in tasks}
    assert queues == {"extract": "etl", "transform": "etl", "validate": "cpu", "load": "etl"}
    load = next(t for t in tasks if t["workflow_node"] == "load")
    before = {t["workflow_node"]: t for t in tasks if t["workflow_node"] != "load"}
    assert all(t["finished_at"] <= load["started_at"] for t in before.values())


def test_with_config_and_bad_args(server, client) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(branchwork.InvalidArgs):
        etl.send({"destination": "x"})  # source is required
    with pytest.raises(branchwork.InvalidArgs):
        etl.with_config(colour="blue")
    run = etl.with_config(queue="etl-urgent", priority=9, idempotency_key="k").send(
        source="abc")
    again = etl.with_config(idempotency_key="k").send(source="abc")
    assert again.id == run.id and again.duplicate
    run.refresh()
    assert run.run is not None and run.run["queue"] == "etl-urgent"
    assert run.run["priority"] == 9
    assert run.cancel()["status"] == "cancelled"
    with pytest.raises(WorkflowCancelled):
        run.result(timeout=5)


def test_failed_node_fails_the_run(api: httpx.Client, server, client) -> None:  # type: ignore[no-untyped-def]
    run = failing.send({"source": "x"})
    with python_worker(server.url, *WORKER), pytest.raises(WorkflowFailed) as info:
        run.result(timeout=60)
    assert info.value.node == "boom"
    assert info.value.error["type"] == "RuntimeError"
    assert info.value.error["message"] == "node exploded"
    nodes = {n["node"]: n["status"] for n in run.refresh().run["nodes"]}  # type: ignore[index]
    assert nodes == {"extract": "succeeded", "boom": "failed", "never": "skipped"}


def _course(plan: dict, server) -> tuple[branchwork.WorkflowRun, dict]:  # type: ignore[no-untyped-def]
    run = course_wf.send({"plan": plan})
    with python_worker(server.url, *WORKER), contextlib.suppress(WorkflowCancelled):
        run.result(timeout=60)
    run.refresh()
    assert run.run is not None
    return run, {n["node"]: n for n in run.run["nodes"]}


def test_next_task_both_modes(server, client) -> None:  # type: ignore[no-untyped-def]
    run, nodes = _course({"first": "next_task"}, server)
    assert run.status == "succeeded"
    assert {k: v["status"] for k, v in nodes.items()} == {
        "first": "succeeded", "second": "succeeded", "third": "succeeded",
        "side_task": "succeeded"}
    assert nodes["side_task"]["result"] == "side extra"

    run, nodes = _course({"first": "goto"}, server)
    assert run.status == "succeeded"
    assert {k: v["status"] for k, v in nodes.items()} == {
        "first": "succeeded", "second": "skipped", "third": "skipped",
        "cleanup": "succeeded"}


def test_terminate_and_cancel_workflow(server, client) -> None:  # type: ignore[no-untyped-def]
    run, nodes = _course({"second": "terminate"}, server)
    assert (run.status, run.run["reason"]) == ("succeeded", "done early")  # type: ignore[index]
    assert nodes["second"]["status"] == "succeeded"
    assert nodes["second"]["result"] == "step second"
    assert nodes["third"]["status"] == "skipped"

    run = course_wf.send({"plan": {"second": "cancel"}})
    with python_worker(server.url, *WORKER), pytest.raises(WorkflowCancelled) as info:
        run.result(timeout=60)
    assert info.value.reason == "bad data"
    nodes = {n["node"]: n for n in run.refresh().run["nodes"]}  # type: ignore[index]
    assert nodes["second"]["task_status"] == "cancelled"  # the task did not complete
    assert nodes["second"]["status"] == "cancelled"
    assert nodes["third"]["status"] == "skipped"


def test_next_iteration_capped(server, client) -> None:  # type: ignore[no-untyped-def]
    run = loop.send()
    with python_worker(server.url, *WORKER):
        results = run.result(timeout=60)
    assert results == {"looper": 4, "after_loop": 4}  # max_cycles=4: four runs, then on
    nodes = {n["node"]: n for n in run.run["nodes"]}  # type: ignore[index]
    assert nodes["looper"]["runs"] == 4


def test_channel_across_nodes(server, client) -> None:  # type: ignore[no-untyped-def]
    run = channel_wf.send()
    with python_worker(server.url, *WORKER):
        results = run.result(timeout=60)
    assert results["consumer"] == {"config": {"batch": 7}, "count": 3, "missing": "default",
                                   "dots": "dots"}
    assert run.channel.all() == {"config": {"batch": 7}, "count": 3, "..": "dots"}


def test_workflow_timeout(server, client) -> None:  # type: ignore[no-untyped-def]
    run = too_slow.send()
    with python_worker(server.url, *WORKER), pytest.raises(WorkflowCancelled) as info:
        run.result(timeout=30)
    assert info.value.reason == "timeout"
    nodes = {n["node"]: n for n in run.refresh().run["nodes"]}  # type: ignore[index]
    assert nodes["never"]["status"] == "skipped"


def test_dsl_errors_at_definition() -> None:
    reg = branchwork.Registry()

    @reg.task
    def a() -> None: ...

    @reg.task
    def b(x: int) -> None: ...

    with pytest.raises(branchwork.DefinitionError):
        a >> b  # outside a workflow
    with pytest.raises(branchwork.DefinitionError, match="cycle"):
        @reg.workflow
        def cyclic():
            branchwork.node(a, name="p") >> branchwork.node(b, name="q") >> \
                branchwork.node(a, name="p")
    with pytest.raises(branchwork.DefinitionError, match="every field"):
        class Args(BaseModel):
            x: int

        @reg.workflow(cron="* * * * *", args_schema=Args)
        def needs_args():
            a >> b
    with pytest.raises(branchwork.DefinitionError, match="cron"):
        @reg.workflow(cron="every day")
        def bad_cron():
            a >> b
    with pytest.raises(branchwork.DefinitionError):
        @reg.workflow
        def delayed():
            a.with_config(delay=5) >> b
    with pytest.raises(branchwork.DefinitionError, match="cron"):
        @reg.task(cron="* * * * *")
        def cron_needs_args(x: int) -> None: ...

"""The seeds' own names (issue 15): the Hyrex README's workflow example
(``workflow_arg_schema``, ``get_hyrex_workflow_context().workflow_args``,
``durable_runs.get(...)`` with ``.refresh()``) and Graflow's channel example
(``ctx.get_channel()``, ``channel.get(key, default=...)``) run in a real worker with only
their import lines changed (``seeds_app.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydantic import BaseModel

import branchwork
from seeds_app import ETLWorkflowArgs, channels, etl_with_context, etl_workflow, hy
from worker_helpers import python_worker

WORKER = ("seeds_app:hy", "--concurrency", "4")


@pytest.fixture
def client(server) -> Iterator[None]:  # type: ignore[no-untyped-def]
    branchwork.configure(url=server.url)
    yield
    branchwork.configure()


def test_hyrex_readme_workflow(server, client, api: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    # As the README sends it:
    run = etl_workflow.send(ETLWorkflowArgs(
        source="s3://input",
        destination="s3://output"
    ))
    with python_worker(server.url, *WORKER):
        results = run.result(timeout=60)
    assert results == {"extract_data": {"data": "extracted"},
                       "transform_data": {"data": "transformed"},
                       "validate_data": {"data": "validated"},
                       "load_data": {"data": "loaded"}}
    # One node per task, the last mention's config kept; the args checked by the model.
    tasks = api.get("/v1/tasks", params={"workflow_run_id": run.id}).json()["tasks"]
    assert {t["workflow_node"]: t["queue"] for t in tasks} == {
        "extract_data": "etl", "transform_data": "cpu-intensive", "validate_data": "etl",
        "load_data": "etl"}
    with pytest.raises(branchwork.InvalidArgs):
        etl_workflow.send({"source": "s3://input"})  # no destination


def test_hyrex_workflow_context_names(server, client) -> None:  # type: ignore[no-untyped-def]
    run = etl_with_context.send(ETLWorkflowArgs(source="s3://in", destination="s3://out"))
    with python_worker(server.url, *WORKER):
        seen = run.result(timeout=60)["workflow_task"]
    assert seen == {"args_type": "ETLWorkflowArgs", "source": "s3://in",
                    "extract_status": "succeeded",
                    "extract_result": {"data": "extracted"},
                    "task_statuses": ["succeeded"], "missing": None}


def test_graflow_channel_example(server, client) -> None:  # type: ignore[no-untyped-def]
    run = channels.send()
    with python_worker(server.url, *WORKER):
        results = run.result(timeout=60)
    assert results["consumer"] == {"user_id": "user_123", "tier": "free"}
    assert run.channel.get("user_id") == "user_123"
    assert run.channel.get("nope", default=0) == 0


def test_the_names_are_the_same_thing() -> None:
    class Args(BaseModel):
        x: int

    with pytest.raises(branchwork.DefinitionError, match="not both"):
        @hy.workflow(name="wf_both_schemas", args_schema=Args, workflow_arg_schema=BaseModel)
        def wf_both_schemas() -> None:
            ...
    assert etl_workflow.args_schema is ETLWorkflowArgs
    assert etl_workflow.definition()["args_schema"] == ETLWorkflowArgs.model_json_schema()

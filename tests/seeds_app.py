"""The seeds' own examples, run by a real worker (issue 15): Hyrex's README workflow and
Graflow's channel example, copied as they are on their pages. Only the import lines differ
(marked "was:"); everything else is the seeds' code, plus the task the Hyrex README
mentions without showing (``validate_data``), return values so the test can see what the
context gave, and a workflow around each example so it runs."""

from __future__ import annotations

from pydantic import BaseModel

from branchwork import Registry

# was: from hyrex import HyrexRegistry
from branchwork import Registry as HyrexRegistry

# was: from graflow.core.context import TaskExecutionContext
from branchwork import WorkflowContext as TaskExecutionContext

# was: from hyrex import get_hyrex_workflow_context
from branchwork import get_workflow_context as get_hyrex_workflow_context

hy = HyrexRegistry()

# -- Hyrex README, "Workflows" -----------------------------------------------------------------


@hy.task
def extract_data():
    return {"data": "extracted"}

@hy.task
def transform_data():
    return {"data": "transformed"}

@hy.task
def load_data():
    return {"data": "loaded"}

@hy.task
def validate_data():  # named by the README's workflow, not shown there
    return {"data": "validated"}

class ETLWorkflowArgs(BaseModel):
    source: str
    destination: str

@hy.workflow(
    queue="etl",
    timeout_seconds=3600,
    workflow_arg_schema=ETLWorkflowArgs
)
def etl_workflow():
    # Define workflow DAG
    extract_data >> transform_data >> load_data

    # Parallel execution
    extract_data >> [transform_data, validate_data] >> load_data

    # With custom config
    extract_data >> transform_data.with_config(queue="cpu-intensive") >> load_data


# -- Hyrex README, "Access workflow context" ----------------------------------------------------

@hy.task
def workflow_task():
    wf_context = get_hyrex_workflow_context()

    # Access workflow arguments
    args = wf_context.workflow_args

    # Access other task results
    extract_result = wf_context.durable_runs.get("extract_data")
    if extract_result:
        extract_result.refresh()  # Get latest status

    # (added: what the test checks)
    return {"args_type": type(args).__name__, "source": args.source,
            "extract_status": extract_result.status, "extract_result": extract_result.result,
            "task_statuses": [t.status for t in extract_result.task_runs],
            "missing": wf_context.durable_runs.get("no_such_node")}


@hy.workflow(queue="etl", workflow_arg_schema=ETLWorkflowArgs)
def etl_with_context():
    extract_data >> workflow_task


# -- Graflow docs, "Channels" ------------------------------------------------------------------

graflow = Registry()
task = graflow.task  # was: from graflow.core.decorators import task

@task(inject_context=True)
def producer(ctx: TaskExecutionContext):
    channel = ctx.get_channel()
    channel.set("user_id", "user_123")

@task(inject_context=True)
def consumer(ctx: TaskExecutionContext):
    channel = ctx.get_channel()
    user_id = channel.get("user_id")
    print(f"User: {user_id}")  # "user_123"
    # (added: a key nobody set, with the default Graflow's channel.get takes)
    return {"user_id": user_id, "tier": channel.get("tier", default="free")}


@graflow.workflow(queue="graflow")
def channels():
    producer >> consumer


hy.add_registry(graflow)

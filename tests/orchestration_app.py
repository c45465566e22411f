"""The registry the tree, workflow and cron end-to-end tests run in a real worker."""

from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel

from branchwork import (
    KV,
    Registry,
    TaskFailed,
    get_context,
    get_workflow_context,
    node,
)

reg = Registry()

# -- task trees ---------------------------------------------------------------------------

SITE = {
    "/": ["/a", "/b"],
    "/a": ["/a1", "/b"],
    "/b": ["/b1", "/a"],
    "/a1": ["/"],
    "/b1": ["/deep"],
    "/deep": ["/deeper"],
    "/deeper": [],
}


@reg.task
def crawl(url: str, depth: int = 0, max_depth: int = 3) -> dict:
    """Send a child per new link, up to max_depth; KV set_if_absent dedups across the tree."""
    sent = []
    if depth < max_depth:
        for link in SITE[url]:
            if KV.set_if_absent(f"seen:{link}", url):
                crawl.send(link, depth + 1, max_depth)
                sent.append(link)
    return {"url": url, "sent": sent}


@reg.task
def square(x: int) -> int:
    time.sleep(0.05)
    return x * x


@reg.task
def fan_out(n: int) -> int:
    """Fan out n children and gather them; the worker may have concurrency 1."""
    return sum(square.run_many([{"x": i} for i in range(n)]))


@reg.task
async def afan_out(n: int) -> int:
    results = await square.arun_many([{"x": i} for i in range(n)])
    return sum(results)


@reg.task
def nested(levels: int) -> int:
    """A chain of parents each waiting on its one child."""
    if levels == 0:
        return 0
    return 1 + nested.run(levels - 1)


@reg.task(max_retries=1, retry_backoff=0)
def retrying_parent() -> list[int]:
    ctx = get_context()
    assert ctx is not None
    runs = [square.send(i) for i in range(3)]
    KV.set(f"children:{ctx.attempt_number}", ",".join(str(r.id) for r in runs))
    if ctx.attempt_number == 1:
        raise RuntimeError("first attempt fails after sending its children")
    return [r.id for r in runs]


@reg.task
def flaky_child(message: str) -> None:
    raise ValueError(message)


@reg.task
def recovery(failed_id: int, error: str) -> str:
    return f"recovered {failed_id}: {error}"


@reg.task
def careful_parent() -> dict:
    try:
        flaky_child.run("disk full")
    except TaskFailed as exc:
        return {"failed_child": exc.task_id, "error_type": exc.error_type,
                "recovery": recovery.run(exc.task_id, exc.error_message)}
    return {"failed_child": None}


@reg.task
def sleepy(seconds: float) -> None:
    ctx = get_context()
    assert ctx is not None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ctx.raise_if_cancelled()
        time.sleep(0.05)


@reg.task
def sleepy_parent(children: int) -> None:
    for _ in range(children):
        sleepy.send(60)
    sleepy(60)


# -- workflows ----------------------------------------------------------------------------

class ETLArgs(BaseModel):
    source: str
    destination: str = "out"


def _count(name: str) -> int:
    wf = get_workflow_context()
    assert wf is not None
    return KV.increment(f"ran:{wf.run_id}:{name}")


@reg.task
def extract(args: ETLArgs) -> dict:
    _count("extract")
    return {"rows": len(args.source)}


@reg.task
def transform(args: ETLArgs) -> str:
    _count("transform")
    time.sleep(0.2)
    return "T"


@reg.task
def validate(args: ETLArgs) -> str:
    _count("validate")
    return "V"


@reg.task
def load() -> dict:
    n = _count("load")
    wf = get_workflow_context()
    assert wf is not None
    results = wf.results
    return {"runs": n, "seen": sorted(results), "from_transform": results["transform"],
            "args": wf.args}


@reg.workflow(queue="etl", timeout_seconds=60, args_schema=ETLArgs)
def etl():
    extract >> [transform, validate.with_config(queue="cpu")] >> load


@reg.task
def boom() -> None:
    raise RuntimeError("node exploded")


@reg.task
def never() -> str:
    return "must not run"


@reg.workflow(queue="wf")
def failing():
    extract >> boom >> never


# Changing course. Each task reads what to do from the run's args.

@reg.task
def step(plan: dict) -> str:
    wf = get_workflow_context()
    assert wf is not None
    wf.channel.increment("steps")
    action = plan.get(wf.node)
    if action == "next_task":
        wf.next_task(side_task, note="extra")
    elif action == "goto":
        wf.next_task(cleanup, goto=True)
    elif action == "terminate":
        wf.terminate_workflow("done early")
    elif action == "cancel":
        wf.cancel_workflow("bad data")
    return f"step {wf.node}"


@reg.task
def side_task(note: str) -> str:
    return f"side {note}"


@reg.task
def cleanup() -> str:
    return "cleaned"


@reg.workflow(queue="wf")
def course():
    node(step, name="first") >> node(step, name="second") >> node(step, name="third")


@reg.task
def looper() -> int:
    wf = get_workflow_context()
    assert wf is not None
    i = wf.channel.increment("loops")
    wf.next_iteration()
    return i


@reg.task
def after_loop() -> int:
    wf = get_workflow_context()
    assert wf is not None
    return wf.channel.get("loops")


@reg.workflow(queue="wf")
def loop():
    node(looper, max_cycles=4) >> after_loop


@reg.task
def producer() -> None:
    wf = get_workflow_context()
    assert wf is not None
    wf.channel.set("config", {"batch": 7})
    wf.channel.set("..", "dots")  # a dot segment must stay a key, not climb the URL
    wf.channel.increment("count", 2)


@reg.task
def consumer() -> dict:
    wf = get_workflow_context()
    assert wf is not None
    return {"config": wf.channel.get("config"), "count": wf.channel.increment("count"),
            "missing": wf.channel.get("nope", "default"), "dots": wf.channel.get("..")}


@reg.workflow(queue="wf")
def channel_flow():
    producer >> consumer


@reg.task
async def slow_node() -> None:
    await asyncio.sleep(30)


@reg.workflow(queue="wf", timeout_seconds=1)
def too_slow():
    slow_node >> never


# -- cron ---------------------------------------------------------------------------------

# A separate registry, so that only the cron test has a schedule firing every second.
cron_reg = Registry("cron")
cron_reg.add_registry(reg)


@cron_reg.task(cron="* * * * * *")
def every_second(tag: str = "cron") -> str:
    return tag


@cron_reg.workflow(queue="wf", cron="* * * * * *")
def cron_flow():
    return cleanup

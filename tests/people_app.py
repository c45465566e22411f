"""The registry the approval, event-trigger and durable fan-out tests run in real workers."""

from __future__ import annotations

from pydantic import BaseModel

from branchwork import Registry, get_context

reg = Registry()

# -- event triggers --------------------------------------------------------------------------


@reg.task(on_events=["order.created"])
def on_order(order_id: int, amount: float) -> dict:
    return {"order_id": order_id, "doubled": amount * 2}


class Order(BaseModel):
    order_id: int
    amount: float


@reg.task
def audit_order(order: Order) -> int:
    return order.order_id


@reg.workflow(queue="wf", args_schema=Order, on_events=["order.created", "order.audit"])
def order_flow():
    return audit_order


# -- people in the loop ----------------------------------------------------------------------


@reg.task
def review(doc: str) -> dict:
    """Draft once (a step), ask a person, publish or not."""
    ctx = get_context()
    assert ctx is not None
    draft = ctx.step("draft", str.upper, doc)
    decision = ctx.wait_for_approval(f"Publish {draft!r}?", timeout=600)
    return {"draft": draft, "approved": decision.approved, "decision": decision.decision,
            "by": decision.by, "comment": decision.comment}


@reg.task
async def areview(doc: str) -> dict:
    ctx = get_context()
    assert ctx is not None
    decision = await ctx.await_for_approval(f"Send {doc}?", name="send")
    return {"approved": decision.approved, "at_is_time": decision.at is not None}


@reg.task
def hurried_review() -> str:
    """Asks with a one-second timeout: nobody answers in time."""
    from branchwork import WaitTimedOut

    ctx = get_context()
    assert ctx is not None
    try:
        ctx.wait_for_approval("Quick, yes or no?", timeout=1)
    except WaitTimedOut:
        return "nobody answered"
    return "answered"


# -- parents that wait without a process -------------------------------------------------------


@reg.task
def square(x: int) -> int:
    return x * x


@reg.task(durable=True)
def fan_out(n: int) -> int:
    """Fans out ``n`` children and gathers them: suspends instead of holding its process."""
    return sum(square.run_many([{"x": i} for i in range(n)]))


@reg.task
def fan_out_in_place(n: int) -> int:
    """``fan_out`` without ``durable``: the parent waits in place, lending its slot."""
    return sum(square.run_many([{"x": i} for i in range(n)]))


@reg.task(durable=True)
def one_by_one(n: int) -> list[int]:
    """``child.run`` in a loop: each wait suspends; the children already run come back."""
    return [square.run(i) for i in range(n)]


@reg.task
def flaky_child(x: int) -> int:
    raise ValueError(f"child {x} refuses")


@reg.task(durable=True)
def catches_failed_child() -> dict:
    from branchwork import TaskFailed

    try:
        flaky_child.run(7)
    except TaskFailed as exc:
        return {"failed_child": exc.task_id, "error": exc.error_message}
    return {"failed_child": None}


@reg.task(durable=True)
async def afan_out(n: int) -> int:
    return sum(await square.arun_many([{"x": i} for i in range(n)]))


@reg.task(queue="parked")
def parked(x: int) -> int:
    """Sent to a queue no test worker serves: it finishes only by being cancelled."""
    return x


@reg.task(durable=True)
def waits_on_parked() -> dict:
    from branchwork import TaskCancelled, wait_all

    runs = parked.send_many([{"x": 1}, {"x": 2}])
    try:
        return {"results": wait_all(runs)}
    except TaskCancelled as exc:
        return {"cancelled": exc.task_id}


# -- the LLM-style pipeline of docs/durable.md ("A pipeline with a human review step") --------


def call_model(prompt: str) -> dict:
    """A stand-in for a model call: deterministic, and counted (KV), so a test can see that a
    replay does not call it again."""
    from branchwork import KV

    KV.increment(f"model-calls:{prompt.split(':')[0]}")
    if prompt.startswith("Rate"):
        return {"score": 0.9 if "refund" in prompt.lower() else 0.1}
    return {"text": prompt.split(": ", 1)[1].upper()}


@reg.task
def moderate(text: str) -> dict:
    ctx = get_context()
    assert ctx is not None
    draft = ctx.step("draft", call_model, f"Summarise: {text}")  # runs once, stored
    risk = ctx.step("risk", call_model, f"Rate the risk of: {draft['text']}")
    if risk["score"] < 0.5:  # branch on the model's output
        return {"published": True, "reviewed": False, "text": draft["text"]}
    decision = ctx.wait_for_approval(  # a person, only when needed
        f"Risk {risk['score']:.2f}. Publish this summary?\n\n{draft['text']}",
        timeout=24 * 3600)
    if not decision.approved:
        return {"published": False, "reviewed": True, "by": decision.by,
                "why": decision.comment}
    final = ctx.step("polish", call_model, f"Polish: {draft['text']}")
    return {"published": True, "reviewed": True, "by": decision.by, "text": final["text"]}

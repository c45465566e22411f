"""Approvals: a person decides a task's wait of kind ``approval`` (issue 11, item 4).

The task asked with ``ctx.wait_for_approval(question)``, which suspended it (the durable
core's ``task_waits``, kind ``approval``, the question in ``detail``). A decision resumes it
through ``suspend.resume_in`` in one transaction: the decision becomes the wait's step result
(``{"timed_out": false, "value": <decision>}``), so the replayed task reads it back, and that
step row is the record of who decided what and when. A second decision of the same wait
finds no wait left: ``already_decided``, nothing changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ...protocol import ALREADY_DECIDED, NOT_WAITING_FOR_APPROVAL
from ..store import approvals as store
from .errors import Conflict, NotFound
from .suspend import Resolution, resume_in
from .tx import Cursor, transaction

if TYPE_CHECKING:
    from ..state import ServerState

ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class Decision:
    """What a person answered; ``by`` is the caller's token name (``anonymous`` without)."""

    approved: bool
    comment: str | None = None
    by: str = ANONYMOUS

    def value(self, question: str | None, at: datetime) -> dict[str, Any]:
        """The decision as the task reads it back (and as every reader shows it)."""
        return {"approved": self.approved,
                "decision": "approved" if self.approved else "rejected",
                "comment": self.comment, "by": self.by or ANONYMOUS,
                "at": at.isoformat(), "question": question}


async def _refusal(cur: Cursor, task_id: int) -> Conflict | NotFound:
    """Why ``task_id`` cannot be decided now: decided already, or not waiting for one."""
    status = await store.task_status(cur, task_id)
    if status is None:
        return NotFound.of("task", task_id)
    last = await store.last_decision(cur, task_id)
    if last is not None and status != "waiting":
        result = last["result"] or {}
        if result.get("timed_out"):
            return Conflict(f"the approval task {task_id} waited for timed out; it is {status}",
                            {"task_id": task_id, "status": status},
                            code=NOT_WAITING_FOR_APPROVAL)
        value = result.get("value") or {}
        return Conflict(
            f"the approval of task {task_id} was already decided: {value.get('decision')} "
            f"by {value.get('by')}; nothing was changed",
            {"task_id": task_id, "status": status, "decision": value}, code=ALREADY_DECIDED)
    state = "waiting for something else" if status == "waiting" else status
    return Conflict(f"task {task_id} is not waiting for an approval (it is {state})",
                    {"task_id": task_id, "status": status}, code=NOT_WAITING_FOR_APPROVAL)


async def decide(state: ServerState, task_id: int, decision: Decision) -> dict[str, Any]:
    """Approve or reject the approval ``task_id`` waits for, and resume it: the answer is
    the recorded decision with ``task_id`` and ``step``. 409 ``already_decided`` when it was
    decided before, 409 ``not_waiting_for_approval`` when it never asked, 404 no task."""
    async with transaction(state.pool) as cur:
        wait = await store.pending_of(cur, task_id)
        if wait is not None:
            question = (wait["detail"] or {}).get("question")
            value = decision.value(question, datetime.now(UTC))
            resumed = await resume_in(cur, [Resolution(
                task_id, {"timed_out": False, "value": value}, kind=store.KIND)])
            if resumed:
                return {"task_id": task_id, "step": wait["step"], **value}
        # No wait, or another decision resumed it first (its transaction held the wait).
        raise await _refusal(cur, task_id)

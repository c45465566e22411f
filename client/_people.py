"""People in the loop inside a task: ``ctx.wait_for_approval(question)`` (docs/durable.md,
"Approvals").

The wait is a durable wait of kind ``approval`` (``_durable.py``): the attempt ends and holds
no worker while the question is open; a person answers in the studio, the CLI
(``branchwork approvals approve ID``) or the API (``POST /v1/tasks/{id}/approve``), and the
task runs again from the top, this call returning the recorded ``ApprovalDecision``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from ._durable import Durable, adurable_wait, durable_wait
from ._exceptions import InvalidValue
from .protocol import MAX_COMMENT

KIND = "approval"
MAX_QUESTION = MAX_COMMENT


@dataclass(frozen=True)
class ApprovalDecision:
    """What a person decided: ``approved`` (or rejected), their ``comment``, ``by`` whom
    (the deciding token's name, ``anonymous`` on an open server) and ``at`` what time."""

    approved: bool
    comment: str | None
    by: str
    at: datetime | None
    question: str | None

    @property
    def decision(self) -> str:
        return "approved" if self.approved else "rejected"

    @property
    def rejected(self) -> bool:
        return not self.approved

    @classmethod
    def of(cls, value: Any) -> ApprovalDecision:
        """From the stored value (``app/engine/approvals.py``, ``Decision.value``)."""
        data = value if isinstance(value, dict) else {}
        at = data.get("at")
        return cls(approved=bool(data.get("approved")), comment=data.get("comment"),
                   by=str(data.get("by") or "anonymous"),
                   at=datetime.fromisoformat(at) if isinstance(at, str) else None,
                   question=data.get("question"))


def _detail(question: str) -> dict[str, Any]:
    if not isinstance(question, str) or not question.strip():
        raise InvalidValue("wait_for_approval needs a question (a non-empty string)")
    if len(question) > MAX_QUESTION:
        raise InvalidValue(f"an approval's question is at most {MAX_QUESTION} characters")
    return {"question": question}


class PeopleInTheLoop:
    """The approval methods of ``TaskContext`` (a ``Durable``)."""

    def wait_for_approval(self, question: str, *, timeout: float | None = None,
                          name: str = KIND) -> ApprovalDecision:
        """Ask a person ``question`` and wait, holding no worker, for their decision; past
        ``timeout`` seconds raises ``WaitTimedOut``. A rejection is a decision too: check
        ``.approved``. ``name`` tells several approvals of one task apart in its steps."""
        return ApprovalDecision.of(durable_wait(cast(Durable, self), KIND, name,
                                                detail=_detail(question), timeout=timeout))

    async def await_for_approval(self, question: str, *, timeout: float | None = None,  # noqa: ASYNC109
                                 name: str = KIND) -> ApprovalDecision:
        """``wait_for_approval`` for async tasks."""
        return ApprovalDecision.of(await adurable_wait(cast(Durable, self), KIND, name,
                                                       detail=_detail(question),
                                                       timeout=timeout))

"""Event triggers: the event keys a task or a workflow declares start it (issue 11, item 5).

Keys are written with the target's definition (a worker's registration for its tasks, the
workflow's ``PUT``), replacing that target's earlier keys. An event starts one run per trigger
of its key, in the event's own transaction (``start_in``, called by ``events.py``), with the
payload as the run's args. Each start carries the idempotency key ``event:<event ref>``, so
an event posted again with the same id finds the runs it started instead of starting more,
exactly as a cron fire does with its ``schedule:`` key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..store import queues as queue_store
from ..store import triggers as store
from .errors import DomainError
from .runs import create_run
from .send import send_in
from .tx import Cursor
from .workflows import TASK_DEFAULTS

if TYPE_CHECKING:
    from ..metrics import Metrics

# The send options of a registered task definition's ``defaults`` that a triggered task
# keeps (the others, such as ``cron``, describe the definition and are not TaskIn fields).
SEND_DEFAULTS = (*TASK_DEFAULTS, "stuck_after_seconds", "stuck_action")


def event_ref(event: Mapping[str, Any]) -> str:
    """An event's identity: the id its sender gave (its idempotency key), else its row id."""
    given = event.get("idempotency_key")
    return f"id:{given}" if given is not None else f"row:{event['id']}"


def idempotency_key(event_ref: str) -> str:
    """The key of every run an event starts; unique per target through the target's name
    (task idempotency keys are unique per task name, run keys per workflow)."""
    return f"event:{event_ref}"


async def register_in(cur: Cursor, kind: str, keys_by_target: Mapping[str, Sequence[str]]) -> None:
    """Each target's event keys become the given ones, in the registration's transaction."""
    await store.replace(cur, kind, {t: list(k) for t, k in keys_by_target.items()})


async def _start_task(cur: Cursor, target: store.TargetRow, payload: Any, key: str,
                      metrics: Metrics | None) -> dict[str, Any]:
    defaults = target["defaults"] or {}
    item: dict[str, Any] = {k: defaults[k] for k in SEND_DEFAULTS if k in defaults}
    for k, v in TASK_DEFAULTS.items():
        item.setdefault(k, v)
    item.update(name=target["target"], queue=target["queue"] or "default", args=payload,
                idempotency_key=key)
    await queue_store.ensure(cur, [item["queue"]])
    [out] = await send_in(cur, [item], metrics)
    return {"kind": "task", "target": target["target"], "id": out.id,
            "duplicate": out.duplicate}


async def start_in(cur: Cursor, event_key: str, payload: Any, event_ref: str,
                   metrics: Metrics | None = None) -> list[dict[str, Any]]:
    """Start what ``event_key`` triggers, in the caller's transaction: one answer per
    trigger, ``{kind, target, id, duplicate}``, or ``{kind, target, error}`` for a start that
    was refused (a workflow no longer registered, args that miss its schema). A refused start
    is refused before it writes anything, so the others and the event itself go on."""
    key = idempotency_key(event_ref)
    started: list[dict[str, Any]] = []
    for target in await store.targets_of(cur, event_key):
        try:
            if target["kind"] == "task":
                started.append(await _start_task(cur, target, payload, key, metrics))
                continue
            run_id, duplicate = await create_run(cur, target["target"], payload,
                                                 idempotency_key=key, metrics=metrics)
        except DomainError as exc:
            started.append({"kind": target["kind"], "target": target["target"],
                            "error": exc.message})
            continue
        started.append({"kind": "workflow", "target": target["target"], "id": run_id,
                        "duplicate": duplicate})
    return started

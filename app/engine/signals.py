"""Signal one task: resume it if it waits for a signal of that name (docs/durable.md).

A signal is not stored: one sent to a task that is not waiting for it is refused (409
``not_waiting``) and changes nothing, so the sender knows to send it again later.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...protocol import NOT_WAITING
from ..store import task_reads
from ..store import waits as wait_store
from .errors import Conflict, NotFound
from .payload import check_size
from .suspend import Resolution, resume_in
from .tx import transaction

if TYPE_CHECKING:
    from ..state import ServerState


def signal_result(name: str, payload: Any) -> dict[str, Any]:
    """What a wait for a signal stores, and ``ctx.wait_for_signal`` returns the value of."""
    return {"timed_out": False, "value": payload, "signal": name}


async def signal_task(state: ServerState, task_id: int, name: str, payload: Any) -> str:
    """Resume ``task_id`` with ``payload`` if it waits for signal ``name``; the step resumed."""
    check_size(payload, state.settings.max_payload_bytes, "signal payload")
    async with transaction(state.pool) as cur:
        rows = await resume_in(cur, [Resolution(task_id, signal_result(name, payload),
                                                kind="signal", key=name)])
        if rows:
            return rows[0]["step"]
        status = await task_reads.status_of(cur, task_id)
        if status is None:
            raise NotFound.of("task", task_id)
        waits = await wait_store.of_tasks(cur, [task_id])
        wait = waits[0] if waits else None
        waits_for = None if wait is None else {"kind": wait["kind"], "key": wait["key"]}
        raise Conflict(f"task {task_id} is not waiting for signal {name!r} (it is {status}"
                       + (f", waiting for {wait['kind']} {wait['key']!r})" if wait else ")"),
                       {"status": status, "waiting_for": waits_for}, code=NOT_WAITING)

"""Record a step of a durable task: once per task and name, under the attempt's valid lease
(docs/durable.md). The worker reads the steps back (``app/read/tasks.py``) when the task runs
again, and returns the stored results instead of running the steps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...protocol import STEP_CONFLICT
from ..store import steps as step_store
from ..store import task_reads
from .errors import Conflict, NotFound, StaleLease
from .payload import check_size
from .tx import transaction

if TYPE_CHECKING:
    from ..state import ServerState


@dataclass(frozen=True, slots=True)
class Recorded:
    name: str
    recorded: bool  # written now; False: it was already there (a repeated write)
    result: Any  # the stored result (this one, or the one already there)


async def record_step(state: ServerState, task_id: int, lease_token: str, name: str,
                      fn: str | None, result: Any, duration_seconds: float) -> Recorded:
    """Store ``result`` as step ``name`` of the task, fenced by ``lease_token``. The same name
    already stored with another function (or as a sleep or wait) is a conflict."""
    check_size(result, state.settings.max_payload_bytes, f"result of step {name!r}")
    async with transaction(state.pool) as cur:
        row = await step_store.record(cur, task_id, lease_token, name, "step", fn, result,
                                      duration_seconds)
        if not row["held"]:
            if await task_reads.status_of(cur, task_id) is None:
                raise NotFound.of("task", task_id)
            raise StaleLease(f"the lease token of task {task_id} is no longer current; "
                             f"step {name!r} was not recorded")
    if row["inserted"]:
        return Recorded(name, True, result)
    if row["existing_kind"] != "step" or row["existing_fn"] != fn:
        what = (f"function {row['existing_fn']}" if row["existing_kind"] == "step"
                else f"a {row['existing_kind']}")
        raise Conflict(f"step {name!r} of task {task_id} is recorded with {what}, "
                       f"not {fn}", {"name": name, "recorded_fn": row["existing_fn"],
                                     "recorded_kind": row["existing_kind"], "fn": fn},
                       code=STEP_CONFLICT)
    return Recorded(name, False, row["existing_result"])

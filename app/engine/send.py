"""Send: insert tasks (a batch is one transaction), creating their queues on first use,
answering a repeated idempotency or spawn key with the task already there.

``send_tasks`` is the API's use case; ``send_in`` runs inside a caller's transaction for
tasks the server creates itself (workflow nodes, cron fires). Both count ``sent`` metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..store import queues as queue_store
from ..store import tasks as task_store
from ..store.tasks import SendOutcome
from . import limits as flow_limits
from . import send_windows as windows
from .errors import Conflict, InvalidInput
from .payload import check_batch, check_size
from .tx import Cursor, single_statement, transaction

if TYPE_CHECKING:
    from ..metrics import Metrics
    from ..state import ServerState

# The keys that find the task a duplicate refers to.
_DUPLICATE_KEYS = ("idx", "name", "idempotency_key", "parent_id", "spawn_key", "unique_key",
                   "unique_for")

__all__ = ["SendOutcome", "insert_tasks", "send_in", "send_tasks"]


async def insert_tasks(cur: Cursor, items: Sequence[dict[str, Any]]) -> list[SendOutcome]:
    """Insert ``items`` (task column mappings) in the caller's transaction; each outcome
    has the task's id and whether it was a duplicate (or, debounced, folded into a task).
    An unknown parent refuses them all."""
    for idx, item in enumerate(items):
        item["idx"] = idx
    parent_ids = sorted({i["parent_id"] for i in items if i.get("parent_id") is not None})
    if parent_ids:
        missing = await task_store.missing_parents(cur, parent_ids)
        if missing:
            raise InvalidInput(f"parent task {missing[0]} does not exist",
                               {"parent_ids": missing}, code="unknown_parent")
    outs: dict[int, SendOutcome] = {}
    debounced = [i for i in items if i.get("debounce_key") is not None]
    if debounced:
        outs.update(await windows.insert_debounced(cur, debounced))
    plain = [i for i in items if i.get("debounce_key") is None]
    if plain:
        outs.update(await _insert_plain(cur, plain))
    return [outs[i] for i in range(len(items))]


async def _insert_plain(cur: Cursor, items: Sequence[dict[str, Any]],
                        tries: int = 3) -> dict[int, SendOutcome]:
    """The one-statement insert; refused items answer with the task their key found. A
    while-active key whose task finished between the two statements is sent again."""
    kept, repeats = windows.first_of_each_key(items)
    rows = await task_store.insert(cur, kept)
    outs = {r["idx"]: SendOutcome(id=r["id"], duplicate=False) for r in rows if r["inserted"]}
    by_idx = {i["idx"]: i for i in kept}
    dup_idx = [r["idx"] for r in rows if not r["inserted"]]
    if dup_idx:
        keys = [{k: by_idx[i].get(k) for k in _DUPLICATE_KEYS} for i in dup_idx]
        found = await task_store.existing_ids(cur, keys)
        for i in dup_idx:
            if i in found:
                outs[i] = SendOutcome(id=found[i], duplicate=True)
        lost = [by_idx[i] for i in dup_idx if i not in found]
        if lost:
            if tries <= 1:
                raise Conflict("the task holding this key changed while sending; send again",
                               {"idx": [i["idx"] for i in lost]}, code="send_race")
            outs.update(await _insert_plain(cur, lost, tries - 1))
    for later, first in repeats.items():
        outs[later] = SendOutcome(id=outs[first].id, duplicate=True)
    return outs


async def send_in(cur: Cursor, items: Sequence[dict[str, Any]],
                  metrics: Metrics | None) -> list[SendOutcome]:
    """Tasks the server creates in its own transaction; their queues must exist already
    (``store.queues.ensure``)."""
    outs = await insert_tasks(cur, items)
    if metrics is not None:
        metrics.sent(items, outs)
    return outs


def _prepared(item: Mapping[str, Any], i: int, payload_limit: int | None) -> dict[str, Any]:
    row = windows.shape(dict(item))
    if payload_limit is not None:
        check_size(row["args"], payload_limit, f"args of task {i}")
    run_at = row.get("run_at")
    if run_at is not None and not isinstance(run_at, str):
        row["run_at"] = run_at.isoformat()
    return row


async def _send_flow(state: ServerState, rows: list[dict[str, Any]],
                     new_queues: list[str]) -> list[SendOutcome]:
    """A send with concurrency keys or rate limits (docs/flow-control.md): one transaction,
    in which the key rows are locked first, so racing sends of one key take turns."""
    async with transaction(state.pool) as cur:
        await queue_store.ensure(cur, sorted({r["queue"] for r in rows}))
        prep = await flow_limits.prepare_flow(cur, rows)
        kept = [r for i, r in enumerate(rows) if i not in prep.folded]
        sent = iter(await insert_tasks(cur, kept) if kept else [])
        outs = [prep.folded[i] if i in prep.folded else next(sent) for i in range(len(rows))]
    state.caches.known_queues.remember(new_queues)
    if prep.flagged:
        state.caches.queue_settings.invalidate()
    return outs


async def send_tasks(state: ServerState, items: Sequence[Mapping[str, Any]], *,
                     check_sizes: bool = True) -> list[SendOutcome]:
    """The API's send of one task or a batch. ``check_sizes`` False skips the per-item args
    limit when the whole request body was already under it."""
    settings = state.settings
    check_batch(len(items), settings.max_batch,
                f"{len(items)} tasks in one batch, over the limit of {settings.max_batch}")
    limit = settings.max_payload_bytes if check_sizes else None
    rows = [_prepared(item, i, limit) for i, item in enumerate(items)]
    known = state.caches.known_queues
    new_queues = known.unknown(r["queue"] for r in rows)
    mixed = 0 < sum(r.get("debounce_key") is not None for r in rows) < len(rows)
    if flow_limits.has_flow(rows):
        outs = await _send_flow(state, rows, new_queues)
    elif new_queues or mixed:
        # First send to a queue: its row and the tasks commit together (glob claims see
        # both at once), and a refused send (unknown parent) leaves no empty queue. A batch
        # of debounced and plain sends is two statements: one transaction keeps it whole.
        async with transaction(state.pool) as cur:
            if new_queues:
                await queue_store.ensure(cur, new_queues)
            outs = await insert_tasks(cur, rows)
        known.remember(new_queues)
    else:
        # The insert is one statement, atomic by itself (a parent check or duplicate look-up
        # around it needs no shared snapshot).
        async with single_statement(state.pool) as cur:
            outs = await insert_tasks(cur, rows)
    state.metrics.sent(rows, outs)
    return outs

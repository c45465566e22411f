"""Flow control on the send side and the named limits (docs/flow-control.md).

A send with a concurrency key or rate limits is checked and shaped here, in the send's
transaction: keys read from the args, limit names checked, a fair tag reserved per task
(round robin across keys), and the key strategies applied (``cancel_in_progress`` cancels the
key's earlier tasks, ``cancel_newest`` folds the send into the key's task already there). The
claim side is ``flow_claim.py``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ... import protocol as P
from ..store import limits as store
from ..store import tasks as task_store
from ..store.limits import RateLimitRow
from ..store.tasks import SendOutcome
from .errors import InvalidInput, NotFound
from .tx import Cursor, transaction

if TYPE_CHECKING:
    from ..state import ServerState

_FLOW_FIELDS = ("concurrency_key", "concurrency_key_path", "rate_limits")


def resolve_path(args: Any, path: str, what: str = "key") -> str:
    """The value at dotted ``path`` in ``args`` as a key: a string, or an integer or boolean
    written out. A path that is not there (or leads to an object, a list or null) is a 4xx."""
    value = args
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise InvalidInput(f"{what} path {path!r} is not in the task's args",
                               {"path": path}, code="key_path_missing")
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (str, int)) and not isinstance(value, bool):
        text = str(value)
    else:
        raise InvalidInput(f"{what} path {path!r} leads to a {type(value).__name__}, not a "
                           "string or integer", {"path": path}, code="key_path_missing")
    if not text or len(text) > P.KEY_MAX or "\x00" in text:
        raise InvalidInput(f"the {what} read at {path!r} is empty, has a NUL or is over "
                           f"{P.KEY_MAX} characters", {"path": path}, code="key_too_long")
    return text


def has_flow(rows: Sequence[Mapping[str, Any]]) -> bool:
    """Whether any row of a send uses a concurrency key or a rate limit."""
    return any(row.get(f) for row in rows for f in _FLOW_FIELDS)


@dataclass(slots=True)
class FlowPrep:
    """What the flow step decided: ``folded`` maps a row's position to the answer of a send
    that creates no task (cancel_newest); ``flagged`` is True when a queue became a flow
    queue (the caller drops its cached queue settings after commit)."""

    folded: dict[int, SendOutcome] = field(default_factory=dict)
    flagged: bool = False


def _shape(row: dict[str, Any]) -> None:
    """Resolve the row's keys from its args (in place) into the columns the insert writes."""
    path = row.pop("concurrency_key_path", None)
    if path is not None:
        row["concurrency_key"] = resolve_path(row.get("args"), path, "concurrency key")
    if row.get("concurrency_key") is not None and row.get("concurrency_limit") is None \
            and row.get("concurrency_strategy") in ("cancel_in_progress", "cancel_newest"):
        row["concurrency_limit"] = 1
    uses = []
    for use in row.get("rate_limits") or ():
        key = use.get("key")
        if use.get("key_path") is not None:
            key = resolve_path(row.get("args"), use["key_path"], f"rate limit {use['limit']} key")
        uses.append({"limit": use["limit"], "key": key or "", "units": use.get("units", 1)})
    row["rate_limits"] = uses or None


def _check_limits(rows: Sequence[dict[str, Any]], known: Mapping[str, RateLimitRow]) -> None:
    for i, row in enumerate(rows):
        for use in row.get("rate_limits") or ():
            limit = known.get(use["limit"])
            if limit is None:
                raise InvalidInput(f"task {i} uses rate limit {use['limit']!r}, which does not "
                                   "exist (create it with PUT /v1/rate-limits/{name})",
                                   {"limit": use["limit"]}, code="unknown_rate_limit")
            if use["units"] > limit["burst"] + 1:
                raise InvalidInput(
                    f"task {i} takes {use['units']} units of {use['limit']!r} at once, more "
                    f"than it ever grants at once (burst + 1 = {limit['burst'] + 1})",
                    {"limit": use["limit"], "units": use["units"]}, code="units_over_burst")


async def prepare_flow(cur: Cursor, rows: list[dict[str, Any]]) -> FlowPrep:
    """In the send's transaction, before the insert: shape and check the flow rows, reserve
    their fair tags (locking each key's row, which serialises racing sends of a key), apply
    the key strategies and mark their queues. Refusals raise before anything is written."""
    flow = [i for i, row in enumerate(rows) if any(row.get(f) for f in _FLOW_FIELDS)]
    for i in flow:
        _shape(rows[i])
    names = {u["limit"] for i in flow for u in rows[i].get("rate_limits") or ()}
    if names:
        _check_limits(rows, await store.get_limits(cur, names))
    prep = FlowPrep()
    by_queue: dict[str, list[int]] = defaultdict(list)
    for i in flow:
        by_queue[rows[i]["queue"]].append(i)
    for queue, positions in sorted(by_queue.items()):
        counts = Counter(rows[i]["concurrency_key"] for i in positions
                         if rows[i].get("concurrency_key") is not None)
        last, clock = await store.take_tags(cur, queue, counts)
        next_tag = {k: last[k] - n + 1 for k, n in counts.items()}
        for i in positions:
            row = rows[i]
            key = row.get("concurrency_key")
            if key is None:
                row["fair_tag"] = clock + 1
                continue
            row["fair_tag"] = next_tag[key]
            next_tag[key] += 1
            strategy = row.get("concurrency_strategy")
            if strategy == "cancel_newest":
                active = await store.key_active_ids(cur, queue, key)
                if active:
                    prep.folded[i] = SendOutcome(id=active[0], duplicate=False,
                                                 folded_into=active[0])
            elif strategy == "cancel_in_progress":
                active = await store.key_active_ids(cur, queue, key)
                if active:
                    await task_store.cancel(cur, active)
    keyed = {rows[i]["queue"] for i in flow if rows[i].get("concurrency_limit") is not None}
    prep.flagged = await store.flag_flow(cur, sorted(by_queue), sorted(keyed))
    return prep


# --- named limits (the HTTP API's use cases) ----------------------------------------------

async def put_limit(state: ServerState, name: str, units: int, period_seconds: float,
                    burst: int) -> RateLimitRow:
    """Create or change a named limit; waiting claims of every queue look again."""
    async with transaction(state.pool) as cur:
        row = await store.upsert_limit(cur, name, units, float(period_seconds), burst)
    state.notifier.wake_all()
    return row


async def delete_limit(state: ServerState, name: str) -> None:
    async with transaction(state.pool) as cur:
        if not await store.delete_limit(cur, name):
            raise NotFound.of("rate limit", name)
    state.caches.queue_settings.invalidate()
    state.notifier.wake_all()


async def list_limits(state: ServerState) -> list[RateLimitRow]:
    async with transaction(state.pool) as cur:
        return await store.list_limits(cur)


async def get_limit(state: ServerState, name: str) -> dict[str, Any]:
    """A limit with each key's bucket: when it is full again (``full_at``)."""
    async with transaction(state.pool) as cur:
        row = (await store.get_limits(cur, [name])).get(name)
        if row is None:
            raise NotFound.of("rate limit", name)
        buckets = await store.bucket_use(cur, name)
    return {**row, "buckets": [{"key": b["key"], "full_at": b["tat"]} for b in buckets]}


async def set_queue_limit(state: ServerState, queue: str, limit: str | None) -> dict[str, Any]:
    """Make every task of ``queue`` consume one unit of ``limit`` (None: lift it)."""
    async with transaction(state.pool) as cur:
        if limit is not None and not await store.get_limits(cur, [limit]):
            raise InvalidInput(f"rate limit {limit!r} does not exist", {"limit": limit},
                               code="unknown_rate_limit")
        await store.set_queue_limit(cur, queue, limit)
    state.caches.queue_settings.invalidate()
    return {"queue": queue, "rate_limit": limit}

"""Send windows (docs/flow-control.md): debounce, and idempotency keys that expire or hold
only while their task is unfinished. The send use case (``send.py``) calls these.

Every guarantee here is the database's, not this process's: racing sends from any number of
threads and replicas fold into one debounced task through the unique index
``tasks_debounce_idx``, a while-active key is unique through ``tasks_unique_active_idx``,
and an expiring key is taken over under the lock of its ``task_unique_keys`` row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..store import tasks as task_store
from ..store.tasks import SendOutcome
from .limits import resolve_path
from .tx import Cursor

# Send fields that only shape the row (``unique_for``, ``debounce_max_seconds`` stay: the
# send statements read them).
_SHAPING_FIELDS = ("debounce_seconds", "debounce_key_path", "unique_while")


def shape(row: dict[str, Any]) -> dict[str, Any]:
    """Turn the send fields of the windows into the columns the statements write.

    ``unique_for``/``unique_while`` move the idempotency key to ``unique_key`` (the forever
    keys keep ``idempotency_key`` and its index); a debounced send gets its key (given, or
    read from the args) and starts its window: ``delay_seconds`` is the debounce, or its
    maximum wait when that is shorter (SEND_SQL stores the deadline the folds respect)."""
    if row.get("unique_for") is not None or row.get("unique_while") is not None:
        row["unique_key"], row["idempotency_key"] = row.get("idempotency_key"), None
    seconds = row.get("debounce_seconds")
    if seconds is not None:
        path = row.get("debounce_key_path")
        if path is not None:
            row["debounce_key"] = resolve_path(row.get("args"), path, "debounce key")
        most = row.get("debounce_max_seconds")
        row["delay_seconds"] = seconds if most is None else min(seconds, most)
    for name in _SHAPING_FIELDS:
        row.pop(name, None)
    return row


def first_of_each_key(items: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]],
                                                                 dict[int, int]]:
    """Expiring keys repeated within one batch: the first item of each (name, key) is sent,
    the later ones answer as its duplicates (one statement cannot take a key row twice).
    Returns the items to send and later idx -> first idx."""
    first: dict[tuple[str, str], int] = {}
    repeats: dict[int, int] = {}
    kept = []
    for item in items:
        if item.get("unique_for") is None:
            kept.append(item)
            continue
        key = (item["name"], item["unique_key"])
        if key in first:
            repeats[item["idx"]] = first[key]
        else:
            first[key] = item["idx"]
            kept.append(item)
    return kept, repeats


async def insert_debounced(cur: Cursor,
                           items: Sequence[dict[str, Any]]) -> dict[int, SendOutcome]:
    """Insert or fold the debounced items (each with ``idx``); idx -> outcome. Within one
    batch the last item of a (name, key) carries the args, the earlier ones fold into it."""
    last: dict[tuple[str, str], dict[str, Any]] = {}
    for item in items:
        last[(item["name"], item["debounce_key"])] = item
    sent = sorted(last.values(), key=lambda i: i["idx"])  # the statement answers in idx order
    rows = await task_store.insert_debounced(cur, sent)
    by_key: dict[tuple[str, str], SendOutcome] = {}
    for item, row in zip(sent, rows, strict=True):
        folded = None if row["inserted"] else row["id"]
        by_key[(item["name"], item["debounce_key"])] = SendOutcome(
            id=row["id"], duplicate=False, debounced=True, folded_into=folded)
    outs: dict[int, SendOutcome] = {}
    for item in items:
        key = (item["name"], item["debounce_key"])
        out = by_key[key]
        if last[key] is not item:
            out = SendOutcome(id=out.id, duplicate=False, debounced=True, folded_into=out.id)
        outs[item["idx"]] = out
    return outs

"""Flow control in use, for the studio's Limits page and the gauges of ``/metrics``: each rate
limit's units in use and its next free unit, each concurrency key's running count, and the
tasks held back and by what (docs/flow-control.md).

Units in use are read off the GCRA buckets with helper A's own functions
(``store/limits.emission_us``, ``next_free``), so the page, the metrics, "why" and the claim
agree on when a unit is free.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ..store import limits as limit_store
from ..store import why as why_store
from ..store.why import BucketUseRow
from .paging import Db, connection

KEYS_PER_LIMIT = 20  # the busiest keys a limit lists on the page


def bucket_state(b: BucketUseRow) -> dict[str, Any]:
    """One bucket: units in use (they drain one per step) and when one unit is free again
    (None: now)."""
    step = limit_store.emission_us(b["period_seconds"], b["units"])
    outstanding = (b["tat"] - b["now"]).total_seconds() * 1_000_000
    used = min(b["burst"] + 1, max(0, -(-int(outstanding) // step)))
    return {"key": b["key"] or None, "used": used,
            "next_free_at": limit_store.next_free(b["tat"], b["now"], 1, step, b["burst"])}


def _limit_rows(limits: list[dict[str, Any]], buckets: list[BucketUseRow]) -> list[dict[str, Any]]:
    by_limit: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for b in buckets:
        by_limit[b["limit_name"]].append(bucket_state(b))
    rows = []
    for lim in limits:
        keys = by_limit.get(lim["name"], [])
        waits = [k["next_free_at"] for k in keys if k["next_free_at"] is not None]
        rows.append({**lim, "capacity": lim["burst"] + 1, "keys_in_use": len(keys),
                     "keys_exhausted": len(waits), "units_used": sum(k["used"] for k in keys),
                     "next_free_at": min(waits) if waits else None,
                     "keys": keys[:KEYS_PER_LIMIT]})
    return rows


def _key_rows(rows: list[why_store.KeyUseRow]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        full = r["limit"] is not None and r["running"] >= r["limit"]
        out.append({**r, "full": full, "held": r["ready"] if full else 0})
    return out


async def flow_state(db: Db) -> dict[str, Any]:
    """``{"rate_limits", "keys", "held", "now"}``: every named limit with its use, the
    concurrency keys with unfinished tasks, and per queue the due tasks held back."""
    async with connection(db) as conn:
        async with conn.cursor() as cur:
            limits = [dict(r) for r in await limit_store.list_limits(cur)]
        now = await why_store.db_now(conn)
        buckets = await why_store.bucket_use(conn)
        keys = await why_store.key_use(conn)
        held = await why_store.held_back(conn)
    return {"rate_limits": _limit_rows(limits, buckets), "keys": _key_rows(keys),
            "held": [dict(h) for h in held], "now": now}


async def limits_page(db: Db) -> dict[str, Any]:
    """The studio's Limits page: ``flow_state`` with the key list cut to what a page shows."""
    state = await flow_state(db)
    state["keys_total"] = len(state["keys"])
    state["keys"] = state["keys"][:why_store.KEYS_SHOWN]
    return state


def gauges_of(state: dict[str, Any]) -> dict[str, Any]:
    """The per-limit and per-queue aggregates ``/metrics`` exports (no per-key series: keys
    are per customer, unbounded)."""
    queues: dict[str, dict[str, int]] = defaultdict(lambda: {"keys": 0, "full": 0,
                                                             "running": 0})
    for k in state["keys"]:
        q = queues[k["queue"]]
        q["keys"] += 1
        q["full"] += int(k["full"])
        q["running"] += k["running"]
    now = state["now"]
    limits = [{"name": r["name"], "units_used": r["units_used"], "capacity": r["capacity"],
               "keys_in_use": r["keys_in_use"], "keys_exhausted": r["keys_exhausted"],
               "next_unit_seconds": max(0.0, (r["next_free_at"] - now).total_seconds())
               if r["next_free_at"] is not None else 0.0} for r in state["rate_limits"]]
    return {"limits": limits, "keys": dict(queues), "held": state["held"]}


async def flow_gauges(db: Db) -> dict[str, Any]:
    return gauges_of(await flow_state(db))

"""What several store modules share, importing nothing from the store: JSON parameters,
the NOTIFY channel's payload format and the statement that sends it.

Every other store module imports only this one, so no cycle can form between them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson
from psycopg import AsyncCursor

# The LISTEN/NOTIFY channel: a payload names a queue that has work ready now, or with a
# time when work becomes ready (``encode``); the notifier (the LISTEN side) decodes it.
CHANNEL = "branchwork_queue"
# Sent when a queue's settings change (limit, pause); no queue name can start with "!".
CONFIG_CHANGED = "!queues"


class UnstorableValue(ValueError):
    """A value JSON cannot carry (the caller's input); the API answers 422 ``invalid_value``."""


def dumps(value: Any) -> str:
    """Encode for a ``%s::jsonb`` parameter; values JSON cannot carry are the caller's error."""
    try:
        return orjson.dumps(value).decode()
    except (orjson.JSONEncodeError, TypeError) as exc:
        raise UnstorableValue(f"value cannot be stored as JSON: {exc}") from exc


def encode(queue: str, run_at_epoch: float | None = None) -> str:
    return queue if run_at_epoch is None else f"{queue}\t{run_at_epoch:.3f}"


def decode(payload: str) -> tuple[str, float | None]:
    queue, _, when = payload.partition("\t")
    return queue, (float(when) if when else None)


def payloads(rows: Iterable[tuple[str, datetime | None]]) -> list[str]:
    """One payload per queue: ready now, or the earliest future time something becomes ready."""
    now_queues: set[str] = set()
    later: dict[str, float] = {}
    for queue, run_at in rows:
        if run_at is None:
            now_queues.add(queue)
        else:
            ts = run_at.timestamp()
            later[queue] = min(ts, later.get(queue, ts))
    out = [encode(q) for q in sorted(now_queues)]
    out += [encode(q, ts) for q, ts in sorted(later.items()) if q not in now_queues]
    return out


async def notify(cur: AsyncCursor[Any], rows: Iterable[tuple[str, datetime | None]]) -> None:
    """NOTIFY once per transaction, for the distinct queues it made work ready in."""
    messages = payloads(rows)
    if messages:
        await cur.execute(
            "SELECT pg_notify(%s, m) FROM unnest(%s::text[]) AS m", (CHANNEL, messages)
        )


async def notify_config_changed(cur: AsyncCursor[Any]) -> None:
    """Every replica drops its cached queue settings (on commit)."""
    await cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, CONFIG_CHANGED))


async def listen(conn: Any) -> None:
    """Subscribe ``conn`` (an autocommit connection) to the channel."""
    await conn.execute(f"LISTEN {CHANNEL}")


async def ping(conn: Any) -> None:
    """A round trip that touches no table (the health check)."""
    await conn.execute("SELECT 1")

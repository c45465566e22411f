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
# time when work becomes ready, and how many tasks (``encode``); the notifier (the LISTEN
# side) decodes it and wakes that many waiting claims.
CHANNEL = "branchwork_queue"
# Sent when a queue's settings change (limit, pause); no queue name can start with "!".
CONFIG_CHANGED = "!queues"


# Stuck tasks (docs/operations.md): a running attempt's stuck_after (and stuck_action) is its
# own, else its queue's, else the server's, which ``open_pool`` gives every connection as the
# session settings ``branchwork.stuck_after_seconds`` (empty: off) and ``branchwork.stuck_action``.
SERVER_STUCK_AFTER = "NULLIF(current_setting('branchwork.stuck_after_seconds', true), '')::float8"
SERVER_STUCK_ACTION = "NULLIF(current_setting('branchwork.stuck_action', true), '')"


def _stuck(queue_after: str) -> str:
    after = f"COALESCE(tasks.stuck_after_seconds, {queue_after}, {SERVER_STUCK_AFTER})"
    return (f"(CASE WHEN tasks.status = 'running' THEN COALESCE(tasks.last_progress_at "
            f"< now() - make_interval(secs => {after}), false) ELSE false END)")


# For reads of a few rows, over ``tasks`` unaliased: the queue's setting by primary key, and
# only for running rows.
STUCK_SQL = _stuck("(SELECT q.stuck_after_seconds FROM queues q WHERE q.name = tasks.queue)")
# For passes over every running row: ``FROM tasks LEFT JOIN queues sq ON sq.name = tasks.queue``
# (``STUCK_JOIN``) joins the queues once instead of looking one up per row.
STUCK_JOIN = "LEFT JOIN queues sq ON sq.name = tasks.queue"
STUCK_JOINED_SQL = _stuck("sq.stuck_after_seconds")
STUCK_AFTER_JOINED_SQL = (
    f"COALESCE(tasks.stuck_after_seconds, sq.stuck_after_seconds, {SERVER_STUCK_AFTER})")
STUCK_ACTION_JOINED_SQL = (
    f"COALESCE(tasks.stuck_action, sq.stuck_action, {SERVER_STUCK_ACTION}, 'mark')")


class UnstorableValue(ValueError):
    """A value JSON cannot carry (the caller's input); the API answers 422 ``invalid_value``."""


def dumps(value: Any) -> str:
    """Encode for a ``%s::jsonb`` parameter; values JSON cannot carry are the caller's error."""
    try:
        return orjson.dumps(value).decode()
    except (orjson.JSONEncodeError, TypeError) as exc:
        raise UnstorableValue(f"value cannot be stored as JSON: {exc}") from exc


def encode(queue: str, run_at_epoch: float | None = None, count: int | None = None) -> str:
    """``queue``, ``queue<TAB>when`` or ``queue<TAB>[when]<TAB>count``: the tasks made ready
    (or due at ``when``), so that as many waiting claims are woken; no count wakes every one."""
    when = "" if run_at_epoch is None else f"{run_at_epoch:.3f}"
    if count is None:
        return queue if run_at_epoch is None else f"{queue}\t{when}"
    return f"{queue}\t{when}\t{count}"


def decode(payload: str) -> tuple[str, float | None, int | None]:
    queue, _, rest = payload.partition("\t")
    when, _, count = rest.partition("\t")
    return queue, (float(when) if when else None), (int(count) if count else None)


def payloads(rows: Iterable[tuple[str, datetime | None]]) -> list[str]:
    """One payload per queue, with how many rows it got: ready now, or the earliest future
    time something becomes ready."""
    now_counts: dict[str, int] = {}
    later: dict[str, tuple[float, int]] = {}
    for queue, run_at in rows:
        if run_at is None:
            now_counts[queue] = now_counts.get(queue, 0) + 1
        else:
            ts = run_at.timestamp()
            first, n = later.get(queue, (ts, 0))
            later[queue] = (min(ts, first), n + 1)
    out = [encode(q, None, n) for q, n in sorted(now_counts.items())]
    out += [encode(q, ts, n) for q, (ts, n) in sorted(later.items()) if q not in now_counts]
    return out


async def notify(cur: AsyncCursor[Any], rows: Iterable[tuple[str, datetime | None]]) -> None:
    """NOTIFY once per transaction, for the distinct queues it made work ready in."""
    messages = payloads(rows)
    if messages:
        await cur.execute(
            "SELECT pg_notify(%s, m) FROM unnest(%s::text[]) AS m", (CHANNEL, messages)
        )


async def notify_all(cur: AsyncCursor[Any], queue: str) -> None:
    """Wake every waiting claim on ``queue`` (a resumed queue or a raised limit)."""
    await cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, encode(queue)))


async def notify_config_changed(cur: AsyncCursor[Any]) -> None:
    """Every replica drops its cached queue settings (on commit)."""
    await cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, CONFIG_CHANGED))


async def listen(conn: Any) -> None:
    """Subscribe ``conn`` (an autocommit connection) to the channel."""
    await conn.execute(f"LISTEN {CHANNEL}")


async def ping(conn: Any) -> None:
    """A round trip that touches no table (the health check)."""
    await conn.execute("SELECT 1")

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


# The workflow runs of some tasks (the id array ``{ids}``), locked in id order: a run is
# locked before its tasks (the advancer's lock order). No "workflow_run_id IS NOT NULL" here:
# it can tempt the planner into the partial run index (all workflow tasks) instead of the
# primary key (only these tasks). Shared by store.workflows and the report statement.
RUNS_OF_TASKS_SQL = """SELECT r.id FROM workflow_runs r WHERE r.id IN (
        SELECT t.workflow_run_id FROM tasks t WHERE t.id = ANY({ids}))
    ORDER BY r.id FOR UPDATE OF r"""


# What an outcome statement (a report, a suspension) answers, one row per item: whether it
# was applied and the new status, and the task as the statement found it (its snapshot), from
# which ``engine/report.verdict`` tells a repeat from a stale lease, and its parent (which
# never changes: a report finds a durable parent's wait through it, engine/children.py).
# The statement names its input ``x`` (with ``idx``, ``id``, ``lease_token``) and its update
# ``upd``.
OUTCOME_ROWS_SQL = """
SELECT x.idx, x.id, upd.id IS NOT NULL AS applied, upd.status AS new_status, upd.queue,
    CASE WHEN upd.status = 'queued' AND upd.run_at > now() THEN upd.run_at END AS wake_at,
    upd.workflow_run_id, upd.name, upd.run_seconds, cur.status AS current_status,
    (cur.lease_token = x.lease_token) AS same_lease, cur.parent_id
FROM x
LEFT JOIN upd ON upd.id = x.id
-- by primary key (the array), not a hash join over the whole table
LEFT JOIN tasks cur ON cur.id = x.id AND cur.id = ANY(ARRAY(SELECT id FROM x))
ORDER BY x.idx
"""


# Writing an attempt's logs. A run that follows a suspension of the same attempt (durable
# tasks, docs/durable.md) appends to what the runs before it wrote; the last ``max_log``
# characters are kept. (Only such a run meets an existing row: any other attempt has a
# number of its own, and a repeated report is not applied.)
LOGS_UPSERT_SQL = """ON CONFLICT (task_id, attempt) DO UPDATE
        SET output = right(task_logs.output || EXCLUDED.output, %(max_log)s), at = now()"""


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


# Rows due later are announced per due time, to this resolution (seconds), at most this many
# times per queue and transaction: tasks due at different times (durable sleeps, retries)
# each wake a claim on time (the notifier keeps a timer per due time). Past the cap, the
# latest times fold into the last one announced.
DUE_RESOLUTION = 0.05
MAX_DUE_PAYLOADS = 100


def payloads(rows: Iterable[tuple[str, datetime | None]]) -> list[str]:
    """Per queue: one payload with how many rows are ready now, and one per future time
    something becomes ready (with how many)."""
    now_counts: dict[str, int] = {}
    later: dict[str, dict[int, tuple[float, int]]] = {}
    for queue, run_at in rows:
        if run_at is None:
            now_counts[queue] = now_counts.get(queue, 0) + 1
        else:
            ts = run_at.timestamp()
            slots = later.setdefault(queue, {})
            slot = int(ts // DUE_RESOLUTION)
            first, n = slots.get(slot, (ts, 0))
            slots[slot] = (min(ts, first), n + 1)
    out = [encode(q, None, n) for q, n in sorted(now_counts.items())]
    for q, slots in sorted(later.items()):
        due = [slots[k] for k in sorted(slots)]
        if len(due) > MAX_DUE_PAYLOADS:
            keep, rest = due[:MAX_DUE_PAYLOADS - 1], due[MAX_DUE_PAYLOADS - 1:]
            due = [*keep, (rest[-1][0], sum(n for _, n in rest))]
        out += [encode(q, ts, n) for ts, n in due]
    return out


# Commit without waiting for the WAL flush, for writes whose loss in a crash is harmless:
# claims and heartbeats (store/leases.py says why) and prune batches (a lost delete is done
# again by the next pass).
ASYNC_COMMIT = "SELECT set_config('synchronous_commit', 'off', true)"

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

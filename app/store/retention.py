"""Retention statements: delete finished tasks, finished workflow runs and expired KV entries
in small batches (docs/operations.md, "Retention").

Every delete statement locks the rows it removes with ``FOR UPDATE SKIP LOCKED`` and touches
only finished rows, so a claim (which locks queued rows) never waits for a prune, and two
replicas pruning at once divide the rows between them. A task goes with its history
(``task_events``) and logs (``task_logs``); a run with its nodes, channel and tasks.

What is old enough is the ``policy``: per queue and finished status, the queue's retention
(``queues.retention_<status>_seconds``), else the server default; 0 keeps rows forever. An
``older_than`` given by the caller (the prune API) replaces every retention.

Trees: a task is deleted only when its whole tree (every task with its ``root_id``) is finished
and old enough, so a tree is never cut while any of it runs or is kept; a task of a workflow
run is deleted only with its run, and so is a tree hanging off a node task.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncCursor

from ...protocol import TERMINAL_STATUSES as FINISHED
from .sql import ASYNC_COMMIT

Cursor = AsyncCursor[Any]

# The cutoff of each queue and finished status: rows that finished before ``before`` are due;
# NULL keeps them. Parameters: the server defaults (``succeeded``, ``failed``, ``cancelled``,
# seconds, 0: forever), the caller's override (``older``: seconds, or NULL) and ``queue`` (one
# queue, or NULL for all).
POLICY_CTE = """policy AS (
    SELECT q.name AS queue, s.status, CASE
        WHEN %(older)s::float8 IS NOT NULL THEN now() - make_interval(secs => %(older)s::float8)
        WHEN k.keep > 0 THEN now() - make_interval(secs => k.keep) END AS before
    FROM queues q
    CROSS JOIN (VALUES ('succeeded'), ('failed'), ('cancelled')) AS s(status)
    CROSS JOIN LATERAL (SELECT CASE s.status
        WHEN 'succeeded' THEN COALESCE(q.retention_succeeded_seconds, %(succeeded)s::float8)
        WHEN 'failed' THEN COALESCE(q.retention_failed_seconds, %(failed)s::float8)
        ELSE COALESCE(q.retention_cancelled_seconds, %(cancelled)s::float8) END AS keep) k
    WHERE %(queue)s::text IS NULL OR q.name = %(queue)s::text
)"""

# A task is "due" when finished before its policy's cutoff and no workflow run holds it (a
# run's tasks go with the run; a task whose run is gone is on its own).
DUE = """EXISTS (SELECT 1 FROM policy p WHERE p.queue = {t}.queue AND p.status = {t}.status
        AND {t}.finished_at < p.before)
    AND ({t}.workflow_run_id IS NULL
         OR NOT EXISTS (SELECT 1 FROM workflow_runs wr WHERE wr.id = {t}.workflow_run_id))"""

# ... and so is every other task of its tree (a single task is a tree of one).
WHOLE_TREE = f"""NOT EXISTS (SELECT 1 FROM tasks m WHERE m.root_id = c.root_id
        AND m.id <> c.id AND NOT ({DUE.format(t="m")}))"""

# Due tasks read through tasks_finished_idx, one (queue, status) at a time, oldest first;
# ``{limit}`` bounds each. Tasks that are old but not due (a tree still running) are passed
# over, so they never fill a batch.
DUE_TASKS = f"""SELECT c.id FROM policy p CROSS JOIN LATERAL (
        SELECT c.id FROM tasks c
        WHERE c.queue = p.queue AND c.status = p.status AND c.finished_at < p.before
          AND c.status IN {FINISHED}  -- lets the planner use the partial index
          AND (c.workflow_run_id IS NULL OR NOT EXISTS (
              SELECT 1 FROM workflow_runs wr WHERE wr.id = c.workflow_run_id))
          AND {WHOLE_TREE}
        ORDER BY c.finished_at {{limit}}) c
    WHERE p.before IS NOT NULL"""

PRUNE_TASKS_SQL = f"""
WITH {POLICY_CTE}, cand AS (
    {DUE_TASKS.format(limit="LIMIT %(batch)s")}
    LIMIT %(batch)s
), locked AS (
    SELECT t.id FROM tasks t
    WHERE t.id IN (SELECT id FROM cand) AND t.status IN {FINISHED}
    FOR UPDATE SKIP LOCKED
), del AS (
    DELETE FROM tasks t USING locked WHERE t.id = locked.id RETURNING t.id
), ev AS (
    DELETE FROM task_events e USING del WHERE e.task_id = del.id
), lg AS (
    DELETE FROM task_logs g USING del WHERE g.task_id = del.id
)
SELECT count(*) AS deleted FROM del
"""

COUNT_TASKS_SQL = f"""
WITH {POLICY_CTE}
SELECT count(*) AS n FROM ({DUE_TASKS.format(limit="")}) d
"""

# A run's retention is its queue's for the run's final status; it goes when no task it
# takes with it (its node tasks and the trees under them) is unfinished.
RUN_DUE = """r.status <> 'running' AND EXISTS (SELECT 1 FROM policy p
        WHERE p.queue = r.queue AND p.status = r.status AND r.finished_at < p.before)"""

RUN_TASKS = """SELECT t.id, t.status FROM tasks t WHERE t.workflow_run_id = r.id
    UNION ALL
    SELECT d.id, d.status FROM tasks n JOIN tasks d ON d.root_id = n.id AND d.id <> n.id
    WHERE n.workflow_run_id = r.id"""

RUN_IDLE = f"""NOT EXISTS (SELECT 1 FROM ({RUN_TASKS}) x WHERE x.status NOT IN {FINISHED})"""

PRUNE_RUNS_SQL = f"""
WITH {POLICY_CTE}, locked AS (
    SELECT r.id FROM workflow_runs r
    WHERE {RUN_DUE} AND {RUN_IDLE}
    ORDER BY r.finished_at LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
), ids AS (
    -- Waits for a task row another transaction holds (briefly: it is finished), and drops
    -- it if that transaction queued it again; the task is then on its own.
    SELECT t.id FROM tasks t
    WHERE t.id IN (SELECT x.id FROM locked r CROSS JOIN LATERAL ({RUN_TASKS}) x)
      AND t.status IN {FINISHED}
    ORDER BY t.id FOR UPDATE
), del_tasks AS (
    DELETE FROM tasks t USING ids WHERE t.id = ids.id RETURNING t.id
), ev AS (
    DELETE FROM task_events e USING del_tasks d WHERE e.task_id = d.id
), lg AS (
    DELETE FROM task_logs g USING del_tasks d WHERE g.task_id = d.id
), nodes AS (
    DELETE FROM workflow_nodes n USING locked WHERE n.run_id = locked.id
), chan AS (
    DELETE FROM workflow_channel c USING locked WHERE c.run_id = locked.id
), runs AS (
    DELETE FROM workflow_runs r USING locked WHERE r.id = locked.id RETURNING r.id
)
SELECT (SELECT count(*) FROM runs) AS runs, (SELECT count(*) FROM del_tasks) AS tasks
"""

COUNT_RUNS_SQL = f"""
WITH {POLICY_CTE}, due AS (
    SELECT r.id FROM workflow_runs r WHERE {RUN_DUE} AND {RUN_IDLE}
)
SELECT (SELECT count(*) FROM due) AS runs,
    (SELECT count(*) FROM due r CROSS JOIN LATERAL ({RUN_TASKS}) x) AS tasks
"""

PRUNE_KV_SQL = """
WITH due AS (
    SELECT key FROM kv WHERE expires_at <= now() ORDER BY expires_at LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
)
DELETE FROM kv USING due WHERE kv.key = due.key AND kv.expires_at <= now()
"""

COUNT_KV_SQL = "SELECT count(*) AS n FROM kv WHERE expires_at <= now()"

# Only one replica prunes at a time: the others skip the round (the lock is the
# transaction's, so a crashed pruner holds nothing).
PRUNE_LOCK_KEY = 0x62770009  # "bw" and this feature's revision


def policy_params(defaults: dict[str, float], older_than: float | None,
                  queue: str | None, batch: int) -> dict[str, Any]:
    """The parameters of every statement here: ``defaults`` maps each finished status to
    the server's retention in seconds (0: forever)."""
    return {**{s: float(defaults[s]) for s in FINISHED}, "older": older_than,
            "queue": queue, "batch": batch}


async def batch_settings(cur: Cursor) -> None:
    """For this transaction: no JIT (the policy's unknown row counts make the planner's
    estimates huge, and compiling a batch statement would cost more than running it), and
    no wait for the WAL flush at commit (a delete lost in a crash is done again by the next
    pass; not waiting keeps the fsyncs for the reports)."""
    await cur.execute(f"SELECT set_config('jit', 'off', true), ({ASYNC_COMMIT})")


async def lock(cur: Cursor, *, wait: bool) -> bool:
    """Whether this transaction is now the one pruning (``wait``: until the other is done)."""
    await batch_settings(cur)
    if wait:
        await cur.execute("SELECT pg_advisory_xact_lock(%s)", (PRUNE_LOCK_KEY,))
        return True
    await cur.execute("SELECT pg_try_advisory_xact_lock(%s) AS held", (PRUNE_LOCK_KEY,))
    row = await cur.fetchone()
    return bool(row and row["held"])


async def prune_tasks(cur: Cursor, params: dict[str, Any]) -> int:
    """Delete up to ``batch`` due tasks (whole trees only) with their history and logs."""
    await cur.execute(PRUNE_TASKS_SQL, params)
    row = await cur.fetchone()
    return int(row["deleted"]) if row else 0


async def prune_runs(cur: Cursor, params: dict[str, Any]) -> tuple[int, int]:
    """Delete up to ``batch`` due finished runs with their nodes, channel and tasks:
    (runs deleted, tasks deleted)."""
    await batch_settings(cur)
    await cur.execute(PRUNE_RUNS_SQL, params)
    row = await cur.fetchone()
    assert row is not None
    return int(row["runs"]), int(row["tasks"])


async def prune_kv(cur: Cursor, batch: int) -> int:
    """Delete up to ``batch`` expired KV entries."""
    await cur.execute(PRUNE_KV_SQL, {"batch": batch})
    return cur.rowcount


async def count_due(cur: Cursor, params: dict[str, Any]) -> tuple[int, int, int]:
    """What a prune would delete now: (tasks, with those of due runs; runs; expired KV
    entries)."""
    await batch_settings(cur)
    await cur.execute(COUNT_TASKS_SQL, params)
    tasks = await cur.fetchone()
    await cur.execute(COUNT_RUNS_SQL, params)
    runs = await cur.fetchone()
    await cur.execute(COUNT_KV_SQL)
    kv = await cur.fetchone()
    assert tasks is not None and runs is not None and kv is not None
    return int(tasks["n"]) + int(runs["tasks"]), int(runs["runs"]), int(kv["n"])

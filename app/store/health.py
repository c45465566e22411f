"""Queue health statements: stuck attempts per queue, and what PostgreSQL says about the
things that slow a queue table down (a long open transaction pins the vacuum horizon, dead
tuples pile up in ``tasks`` and ``task_events``, autovacuum falls behind).

Grouped by purpose (like ``insights.py``): they read the statistics views, not one table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict, cast

from psycopg import AsyncConnection

from .sql import STUCK_JOIN, STUCK_JOINED_SQL

Conn = AsyncConnection[Any]

HOT_TABLES = ("tasks", "task_events")


class StuckCount(TypedDict):
    queue: str
    n: int


class OldestTransaction(TypedDict):
    pid: int
    state: str
    age_seconds: float
    application_name: str
    wait_event: str | None


class TableHealth(TypedDict):
    table: str
    live_tuples: int
    dead_tuples: int
    last_autovacuum: datetime | None
    last_vacuum: datetime | None
    autovacuum_count: int


async def stuck_counts(conn: Conn) -> list[StuckCount]:
    """Stuck attempts per queue (queues with none are left out)."""
    async with conn.cursor() as cur:
        await cur.execute(f"SELECT tasks.queue, count(*) AS n FROM tasks {STUCK_JOIN} "
                          f"WHERE tasks.status = 'running' AND {STUCK_JOINED_SQL} "
                          "GROUP BY tasks.queue ORDER BY tasks.queue")
        return cast(list[StuckCount], await cur.fetchall())


async def oldest_transaction(conn: Conn) -> OldestTransaction | None:
    """The oldest transaction open in this database (another session's; idle sessions have
    none). Its age is how long it has held back the vacuum horizon. No query text: /health
    is open to anyone who can reach it."""
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT pid, state, extract(epoch FROM clock_timestamp() - xact_start)::float8 "
            "AS age_seconds, application_name, wait_event FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND xact_start IS NOT NULL AND state IS DISTINCT FROM 'idle' "
            "AND backend_type = 'client backend' ORDER BY xact_start LIMIT 1")
        return cast(OldestTransaction | None, await cur.fetchone())


async def hot_tables(conn: Conn) -> list[TableHealth]:
    """Dead tuples and vacuum times of ``tasks`` and ``task_events`` (this schema)."""
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT relname AS table, n_live_tup AS live_tuples, n_dead_tup AS dead_tuples, "
            "last_autovacuum, last_vacuum, autovacuum_count FROM pg_stat_user_tables "
            "WHERE relname = ANY(%s) AND schemaname = current_schema() ORDER BY relname",
            (list(HOT_TABLES),))
        return cast(list[TableHealth], await cur.fetchall())

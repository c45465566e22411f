"""The process-wide psycopg connection pool and JSON adaptation."""

from __future__ import annotations

import select
from collections.abc import Awaitable, Callable, Mapping

import orjson
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool

set_json_loads(orjson.loads)
set_json_dumps(orjson.dumps)


def _quiet(conn: AsyncConnection) -> bool:
    """True when nothing is waiting on an idle connection's socket.

    An idle pooled connection receives nothing unless the server is going away: a terminated
    backend sends its FATAL error and closes the socket, which makes it readable at once.
    """
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


async def check_on_checkout(conn: AsyncConnection) -> None:
    """Replace dropped connections before a request uses them, without a round trip each.

    ``check_connection`` (an empty query) on every checkout cost about an eighth of the
    server's CPU under load; a zero-timeout ``select`` finds a closed or terminated connection
    just as well, and only then is the full check run (which fails, so the pool replaces it).
    """
    if not _quiet(conn):
        await AsyncConnectionPool.check_connection(conn)


def session_settings(values: Mapping[str, str]) -> Callable[[AsyncConnection], Awaitable[None]]:
    """A pool ``configure`` hook that sets custom session settings (``branchwork.*``) on each
    new connection: server settings that statements read with ``current_setting``."""

    async def configure(conn: AsyncConnection) -> None:
        for name, value in values.items():
            await conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        await conn.commit()

    return configure


async def open_pool(conninfo: str, min_size: int, max_size: int,
                    session: Mapping[str, str] | None = None) -> AsyncConnectionPool:
    pool = AsyncConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        kwargs={"row_factory": dict_row},
        open=False,
        check=check_on_checkout,
        configure=session_settings(session) if session else None,
        # A request waits this long for a connection during an outage, then gets a 503.
        timeout=10,
    )
    await pool.open(wait=True, timeout=30)
    return pool

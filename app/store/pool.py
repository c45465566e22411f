"""The process-wide psycopg connection pool and JSON adaptation."""

from __future__ import annotations

import orjson
from psycopg.rows import dict_row
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool

set_json_loads(orjson.loads)
set_json_dumps(orjson.dumps)


async def open_pool(conninfo: str, min_size: int, max_size: int) -> AsyncConnectionPool:
    pool = AsyncConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        kwargs={"row_factory": dict_row},
        open=False,
        check=AsyncConnectionPool.check_connection,
        # A request waits this long for a connection during an outage, then gets a 503.
        timeout=10,
    )
    await pool.open(wait=True, timeout=30)
    return pool

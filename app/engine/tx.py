"""How a use case opens its transaction: written once, two ways.

``transaction`` is the ordinary case (commit on success, roll back on an exception: the
pool's connection context). ``single_statement`` is for a use case that runs exactly one
statement, atomic by itself: autocommit saves the COMMIT round trip on the hot path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncCursor
from psycopg_pool import AsyncConnectionPool

Cursor = AsyncCursor[Any]


@asynccontextmanager
async def transaction(pool: AsyncConnectionPool) -> AsyncIterator[Cursor]:
    async with pool.connection() as conn, conn.cursor() as cur:
        yield cur


@asynccontextmanager
async def single_statement(pool: AsyncConnectionPool) -> AsyncIterator[Cursor]:
    async with pool.connection() as conn:
        await conn.set_autocommit(True)
        try:
            async with conn.cursor() as cur:
                yield cur
        finally:
            await conn.set_autocommit(False)

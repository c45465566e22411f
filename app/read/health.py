"""Whether the database answers this replica."""

from __future__ import annotations

from ..store.sql import ping
from .paging import Db, connection


async def database_answers(db: Db) -> bool:
    """True after a round trip; a database that is down raises (the caller bounds the wait)."""
    async with connection(db) as conn:
        await ping(conn)
    return True

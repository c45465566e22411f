"""The key-value store; every operation is one atomic statement."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict, cast

from psycopg import AsyncConnection, AsyncCursor

from ...protocol import escape_like

Conn = AsyncConnection[Any]
Cursor = AsyncCursor[Any]


class KVRow(TypedDict):
    key: str
    value: str
    updated_at: datetime


async def get(conn: Conn, key: str) -> str | None:
    async with conn.cursor() as cur:
        await cur.execute("SELECT value FROM kv WHERE key = %s", (key,))
        row = await cur.fetchone()
        return None if row is None else row["value"]


async def set_(cur: Cursor, key: str, value: str) -> None:
    await cur.execute(
        "INSERT INTO kv (key, value) VALUES (%s, %s) "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
        (key, value))


async def set_if_absent(cur: Cursor, key: str, value: str) -> bool:
    await cur.execute(
        "INSERT INTO kv (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING "
        "RETURNING key", (key, value))
    return await cur.fetchone() is not None


async def delete(cur: Cursor, key: str) -> bool:
    await cur.execute("DELETE FROM kv WHERE key = %s RETURNING key", (key,))
    return await cur.fetchone() is not None


async def increment(cur: Cursor, key: str, by: int) -> int | None:
    """Add ``by`` to a 64-bit integer value (absent counts as 0); None when it is no integer.

    bigint arithmetic makes an overflow a DataError (a 422), never a number JSON cannot carry.
    """
    await cur.execute(
        """INSERT INTO kv (key, value) VALUES (%(key)s, %(by)s::text)
           ON CONFLICT (key) DO UPDATE
             SET value = (kv.value::bigint + %(by)s)::text, updated_at = now()
             WHERE kv.value ~ '^-?[0-9]{1,19}$'
           RETURNING value""",
        {"key": key, "by": by})
    row = await cur.fetchone()
    return None if row is None else int(row["value"])


async def list_keys(conn: Conn, prefix: str, after: str | None, limit: int) -> list[KVRow]:
    """Keys starting with ``prefix``, in key order, after the key ``after`` (the cursor)."""
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT key, value, updated_at FROM kv WHERE key LIKE %(p)s "
            "AND (%(after)s::text IS NULL OR key > %(after)s) ORDER BY key LIMIT %(n)s",
            {"p": escape_like(prefix) + "%", "after": after, "n": limit})
        return cast(list[KVRow], await cur.fetchall())

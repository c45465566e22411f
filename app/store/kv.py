"""The key-value store; every operation is one atomic statement.

An entry may expire (``expires_at``, set by a write with a TTL): from then on every statement
here treats it as absent, and the retention service deletes it (``store/retention.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict, cast

from psycopg import AsyncConnection, AsyncCursor

from ...protocol import escape_like

Conn = AsyncConnection[Any]
Cursor = AsyncCursor[Any]

LIVE = "(expires_at IS NULL OR expires_at > now())"
EXPIRES = "now() + make_interval(secs => %(ttl)s::float8)"


class KVRow(TypedDict):
    key: str
    value: str
    updated_at: datetime


async def get(conn: Conn, key: str) -> str | None:
    async with conn.cursor() as cur:
        await cur.execute(f"SELECT value FROM kv WHERE key = %s AND {LIVE}", (key,))
        row = await cur.fetchone()
        return None if row is None else row["value"]


async def set_(cur: Cursor, key: str, value: str, ttl_seconds: float | None = None) -> None:
    """Write; ``ttl_seconds`` None keeps the entry until deleted (clearing an older TTL)."""
    await cur.execute(
        f"INSERT INTO kv (key, value, expires_at) VALUES (%(key)s, %(value)s, {EXPIRES}) "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now(), "
        "expires_at = EXCLUDED.expires_at",
        {"key": key, "value": value, "ttl": ttl_seconds})


async def set_if_absent(cur: Cursor, key: str, value: str,
                        ttl_seconds: float | None = None) -> bool:
    """Write only when the key is absent or expired; True if this call wrote it."""
    await cur.execute(
        f"INSERT INTO kv (key, value, expires_at) VALUES (%(key)s, %(value)s, {EXPIRES}) "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now(), "
        "expires_at = EXCLUDED.expires_at WHERE kv.expires_at <= now() RETURNING key",
        {"key": key, "value": value, "ttl": ttl_seconds})
    return await cur.fetchone() is not None


async def delete(cur: Cursor, key: str) -> bool:
    """True when there was a (live) value to delete."""
    await cur.execute(f"DELETE FROM kv WHERE key = %s RETURNING {LIVE} AS live", (key,))
    row = await cur.fetchone()
    return bool(row and row["live"])


async def increment(cur: Cursor, key: str, by: int) -> int | None:
    """Add ``by`` to a 64-bit integer value (absent counts as 0); None when it is no integer.

    bigint arithmetic makes an overflow a DataError (a 422), never a number JSON cannot carry.
    """
    await cur.execute(
        """INSERT INTO kv (key, value) VALUES (%(key)s, %(by)s::text)
           ON CONFLICT (key) DO UPDATE
             SET value = CASE WHEN kv.expires_at <= now() THEN %(by)s::text
                              ELSE (kv.value::bigint + %(by)s)::text END,
                 updated_at = now(),
                 expires_at = CASE WHEN kv.expires_at <= now() THEN NULL ELSE kv.expires_at END
             WHERE kv.value ~ '^-?[0-9]{1,19}$' OR kv.expires_at <= now()
           RETURNING value""",
        {"key": key, "by": by})
    row = await cur.fetchone()
    return None if row is None else int(row["value"])


async def list_keys(conn: Conn, prefix: str, after: str | None, limit: int) -> list[KVRow]:
    """Keys starting with ``prefix``, in key order, after the key ``after`` (the cursor)."""
    async with conn.cursor() as cur:
        await cur.execute(
            f"SELECT key, value, updated_at FROM kv WHERE key LIKE %(p)s AND {LIVE} "
            "AND (%(after)s::text IS NULL OR key > %(after)s) ORDER BY key LIMIT %(n)s",
            {"p": escape_like(prefix) + "%", "after": after, "n": limit})
        return cast(list[KVRow], await cur.fetchall())

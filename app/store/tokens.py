"""Access token rows (``api_tokens``): only the SHA-256 of each secret is stored."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict, cast

from psycopg import AsyncCursor

from .sql import notify_config_changed

Cursor = AsyncCursor[Any]

PUBLIC_COLUMNS = "id, name, role, queues, names, created_at, last_used_at, revoked_at"


class LiveToken(TypedDict):
    """What authentication needs of a live (not revoked) token."""

    id: int
    name: str
    role: str
    queues: list[str]
    names: list[str]
    secret_sha256: str


class TokenRow(TypedDict):
    """What a listing shows: never the hash."""

    id: int
    name: str
    role: str
    queues: list[str]
    names: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


async def lock(cur: Cursor) -> None:
    """Serialize token changes (creates and revokes), so the "keep an admin" rule cannot be
    raced by two revokes at once; readers are not blocked."""
    await cur.execute("LOCK TABLE api_tokens IN SHARE ROW EXCLUSIVE MODE")


async def insert(cur: Cursor, name: str, role: str, queues: list[str], names: list[str],
                 secret_sha256: str) -> TokenRow | None:
    """The new row, or None when a live token already has this name."""
    await cur.execute(
        f"""INSERT INTO api_tokens (name, role, queues, names, secret_sha256)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (name) WHERE revoked_at IS NULL DO NOTHING
            RETURNING {PUBLIC_COLUMNS}""",
        (name, role, queues, names, secret_sha256))
    row = await cur.fetchone()
    if row is not None:
        await notify_config_changed(cur)  # every replica reloads its token cache on commit
    return cast(TokenRow | None, row)


async def revoke(cur: Cursor, name: str) -> TokenRow | None:
    """Revoke the live token called ``name``; None when there is none."""
    await cur.execute(
        f"""UPDATE api_tokens SET revoked_at = now()
            WHERE name = %s AND revoked_at IS NULL RETURNING {PUBLIC_COLUMNS}""", (name,))
    row = await cur.fetchone()
    if row is not None:
        await notify_config_changed(cur)
    return cast(TokenRow | None, row)


async def live_admins(cur: Cursor) -> list[str]:
    await cur.execute(
        "SELECT name FROM api_tokens WHERE role = 'admin' AND revoked_at IS NULL ORDER BY id")
    return [r["name"] for r in await cur.fetchall()]


async def live(cur: Cursor) -> tuple[list[LiveToken], bool]:
    """Every live token, and whether any token (revoked ones too) was ever created."""
    await cur.execute(
        "SELECT id, name, role, queues, names, secret_sha256 FROM api_tokens "
        "WHERE revoked_at IS NULL")
    rows = cast(list[LiveToken], await cur.fetchall())
    if rows:
        return rows, True
    await cur.execute("SELECT EXISTS (SELECT 1 FROM api_tokens) AS any")
    found = await cur.fetchone()
    return rows, bool(found and found["any"])


async def listing(cur: Cursor, include_revoked: bool) -> list[TokenRow]:
    await cur.execute(
        f"SELECT {PUBLIC_COLUMNS} FROM api_tokens "
        "WHERE %s OR revoked_at IS NULL ORDER BY name, id", (include_revoked,))
    return cast(list[TokenRow], await cur.fetchall())


async def touch(cur: Cursor, ids: list[int]) -> None:
    """Record use; at most once a minute per token, so a busy token costs no write per call."""
    await cur.execute(
        """UPDATE api_tokens SET last_used_at = now()
           WHERE id = ANY(%s) AND (last_used_at IS NULL
                                   OR last_used_at < now() - interval '60 seconds')""",
        (ids,))

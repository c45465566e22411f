"""Leader election through one row per role: a lease the holder renews, anyone takes when it
has run out."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from psycopg import AsyncConnection


class LeaseRow(TypedDict):
    name: str
    holder: str
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime
    live: bool

ACQUIRE_SQL = """
INSERT INTO leader_leases (name, holder, expires_at)
VALUES (%(name)s, %(me)s, now() + make_interval(secs => %(lease)s))
ON CONFLICT (name) DO UPDATE SET
    holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at, renewed_at = now(),
    acquired_at = CASE WHEN leader_leases.holder = EXCLUDED.holder
                       THEN leader_leases.acquired_at ELSE now() END
WHERE leader_leases.holder = EXCLUDED.holder OR leader_leases.expires_at <= now()
RETURNING holder, acquired_at, expires_at
"""


async def acquire(conn: AsyncConnection, name: str, me: str, lease_seconds: float) -> bool:
    """Take or renew the lease; False while someone else holds a live one."""
    async with conn.cursor() as cur:
        await cur.execute(ACQUIRE_SQL, {"name": name, "me": me, "lease": lease_seconds})
        return await cur.fetchone() is not None


async def release(conn: AsyncConnection, name: str, me: str) -> None:
    async with conn.cursor() as cur:
        await cur.execute("DELETE FROM leader_leases WHERE name = %s AND holder = %s", (name, me))


async def leases(conn: AsyncConnection) -> list[LeaseRow]:
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT name, holder, acquired_at, renewed_at, expires_at, expires_at > now() AS live "
            "FROM leader_leases ORDER BY name")
        return await cur.fetchall()  # type: ignore[return-value]

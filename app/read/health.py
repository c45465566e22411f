"""Whether the database answers this replica, and the queue health report: stuck attempts,
the oldest open transaction and the hot tables' dead tuples (docs/operations.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..store import health as health_store
from ..store.sql import ping
from .paging import Db, connection


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Past these, the report carries a warning (and the studio shows its banner)."""

    transaction_age_seconds: float
    dead_tuples: int

    @classmethod
    def of(cls, settings: Any) -> Thresholds:
        """From the server settings (``BRANCHWORK_HEALTH_*``)."""
        return cls(settings.health_transaction_age_seconds, settings.health_dead_tuples)


async def database_answers(db: Db) -> bool:
    """True after a round trip; a database that is down raises (the caller bounds the wait)."""
    async with connection(db) as conn:
        await ping(conn)
    return True


async def queue_health(db: Db, limits: Thresholds) -> dict[str, Any]:
    """``{ok, warnings, oldest_transaction, tables, stuck}``: what slows claims down on a
    shared PostgreSQL, read from its statistics views (a few cheap catalog reads)."""
    async with connection(db) as conn:
        oldest = await health_store.oldest_transaction(conn)
        tables = await health_store.hot_tables(conn)
        stuck = await health_store.stuck_counts(conn)
    warnings: list[str] = []
    if oldest is not None and oldest["age_seconds"] > limits.transaction_age_seconds:
        warnings.append(
            f"a transaction has been open for {oldest['age_seconds']:.0f} s (pid "
            f"{oldest['pid']}, {oldest['state']}): it holds back vacuum of the task tables "
            f"(threshold {limits.transaction_age_seconds:g} s)")
    for t in tables:
        if t["dead_tuples"] > limits.dead_tuples:
            warnings.append(f"{t['table']} has {t['dead_tuples']} dead tuples (threshold "
                            f"{limits.dead_tuples}); last autovacuum "
                            f"{t['last_autovacuum'] or 'never'}")
    stuck_total = sum(r["n"] for r in stuck)
    if stuck_total:
        warnings.append(f"{stuck_total} running task(s) stuck (no progress past stuck_after)")
    return {"ok": not warnings, "warnings": warnings, "oldest_transaction": oldest,
            "tables": {t["table"]: {k: v for k, v in t.items() if k != "table"}
                       for t in tables},
            "stuck": {r["queue"]: r["n"] for r in stuck}}

"""Approvals as readers see them: the pending list (the API's ``GET /v1/approvals`` and the
studio's Approvals page) and one task's approval state (the studio's task page)."""

from __future__ import annotations

from typing import Any

from ..store import approvals as store
from .paging import Db, Page, connection, page_of


def _pending(row: store.PendingRow) -> dict[str, Any]:
    detail = row["detail"] or {}
    return {"task_id": row["task_id"], "task_name": row["task_name"], "queue": row["queue"],
            "step": row["step"], "question": detail.get("question"),
            "since": row["since"], "deadline": row["deadline"], "root_id": row["root_id"],
            "workflow_run_id": row["workflow_run_id"]}


async def list_pending(db: Db, *, cursor: int | None = None, limit: int = 100,
                       queue: str | None = None) -> Page[dict[str, Any]]:
    """Tasks waiting for an approval, newest first; the cursor is the last ``task_id``."""
    async with connection(db) as conn:
        rows = await store.pending(conn, before_id=cursor, limit=limit, queue=queue)
    return page_of([_pending(r) for r in rows], limit, lambda r: r["task_id"])


async def of_task(db: Db, task_id: int) -> dict[str, Any]:
    """``{pending, decisions}``: the approval the task waits for now (or None) and the
    decisions it recorded, in order (each the value the task read back)."""
    async with connection(db) as conn:
        async with conn.cursor() as cur:
            row = await store.pending_of(cur, task_id)
        decided = await store.decisions(conn, task_id)
    return {"pending": None if row is None else _pending(row),
            "decisions": [{"step": d["step"], **((d["result"] or {}).get("value") or {})}
                          for d in decided if not (d["result"] or {}).get("timed_out")]}

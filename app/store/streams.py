"""``task_streams`` and ``task_stream_chunks``: a task's live progress and its streamed text.

A write is one statement, fenced by the lease token: it changes something only while the
task is running under that token, and it holds the task row (``FOR SHARE``) until it commits,
so a report cannot finish the task between a batch's check and its insert. Readers see a
task's chunks in ``seq`` order; ``seq`` counts from 1 per task, allotted by the row update of
``task_streams`` (which serialises writers of one task).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

from psycopg import AsyncConnection, AsyncCursor


class StreamState(TypedDict):
    task_id: int
    progress: float | None
    message: str | None
    chunks: int
    bytes: int
    updated_at: datetime


class Chunk(TypedDict):
    seq: int
    attempt: int
    data: str
    at: datetime


WRITE_SQL = """
WITH t AS (
    SELECT id, attempts FROM tasks
    WHERE id = %(id)s AND status = 'running' AND lease_token = %(token)s
    FOR SHARE
), s AS (
    INSERT INTO task_streams AS s (task_id, progress, message, chunks, bytes, updated_at)
    SELECT id, %(progress)s, %(message)s, %(n)s, %(bytes)s, now() FROM t
    -- A batch that names its first seq goes on only from that seq: as the first batch (1),
    -- or through the conflict branch below, which checks it against the row.
    WHERE %(bytes)s <= %(max_bytes)s AND (COALESCE(%(first)s::int, 1) = 1
        OR EXISTS (SELECT 1 FROM task_streams WHERE task_id = %(id)s))
    ON CONFLICT (task_id) DO UPDATE SET
        progress = COALESCE(EXCLUDED.progress, s.progress),
        message = COALESCE(EXCLUDED.message, s.message),
        chunks = s.chunks + EXCLUDED.chunks, bytes = s.bytes + EXCLUDED.bytes,
        updated_at = now()
    WHERE s.bytes + EXCLUDED.bytes <= %(max_bytes)s
        AND (%(first)s::int IS NULL OR s.chunks = %(first)s::int - 1)
    RETURNING chunks, bytes
), ins AS (
    INSERT INTO task_stream_chunks (task_id, seq, attempt, data)
    SELECT t.id, s.chunks - %(n)s + c.ord, t.attempts, c.data
    FROM t, s, unnest(%(chunks)s::text[]) WITH ORDINALITY AS c(data, ord)
)
SELECT EXISTS (SELECT 1 FROM t) AS fenced,
    (SELECT chunks FROM s) AS chunks, (SELECT bytes FROM s) AS bytes
"""


async def write(cur: AsyncCursor, task_id: int, lease_token: str, chunks: list[str],
                nbytes: int, progress: float | None, message: str | None,
                max_bytes: int, first_seq: int | None = None) -> dict[str, Any]:
    """Append ``chunks`` (``nbytes`` UTF-8 bytes in all) and set the progress. ``first_seq``:
    the seq the writer expects its first chunk to get (None: the next one). Answers
    ``fenced`` (the lease holds) and ``chunks`` (the task's count now; None when the batch
    was not applied: over the task's byte limit, or ``first_seq`` is not the next seq)."""
    await cur.execute(WRITE_SQL, {
        "id": task_id, "token": lease_token, "chunks": chunks, "n": len(chunks),
        "bytes": nbytes, "progress": progress, "message": message, "max_bytes": max_bytes,
        "first": first_seq})
    row = await cur.fetchone()
    assert row is not None
    return row


async def state(conn: AsyncConnection, task_id: int) -> StreamState | None:
    async with conn.cursor() as cur:
        await cur.execute("SELECT task_id, progress, message, chunks, bytes, updated_at "
                          "FROM task_streams WHERE task_id = %s", (task_id,))
        return await cur.fetchone()  # type: ignore[return-value]


async def chunks_after(conn: AsyncConnection, task_id: int, after: int,
                       limit: int) -> list[Chunk]:
    async with conn.cursor() as cur:
        await cur.execute("SELECT seq, attempt, data, at FROM task_stream_chunks "
                          "WHERE task_id = %s AND seq > %s ORDER BY seq LIMIT %s",
                          (task_id, after, limit))
        return await cur.fetchall()  # type: ignore[return-value]


async def task_status(conn: AsyncConnection, task_id: int) -> dict[str, Any] | None:
    """The task's ``status``, ``name`` and ``queue`` (None: no such task)."""
    async with conn.cursor() as cur:
        await cur.execute("SELECT status, name, queue FROM tasks WHERE id = %s", (task_id,))
        return await cur.fetchone()


async def chunks_tail(conn: AsyncConnection, task_id: int, limit: int) -> list[Chunk]:
    """The last ``limit`` chunks, in order."""
    async with conn.cursor() as cur:
        await cur.execute("SELECT seq, attempt, data, at FROM (SELECT * FROM task_stream_chunks "
                          "WHERE task_id = %s ORDER BY seq DESC LIMIT %s) c ORDER BY seq",
                          (task_id, limit))
        return await cur.fetchall()  # type: ignore[return-value]

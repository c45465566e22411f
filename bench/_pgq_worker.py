"""One PgQueuer QueueManager draining no-ops: the process ``compare.py`` measures.

    python bench/_pgq_worker.py DSN BATCH CONCURRENCY

runs a QueueManager with a no-op entrypoint ``noop`` over one asyncpg connection, in drain
mode (it exits once the queue is empty), on uvloop as PgQueuer's own ``pgq run`` does. It
imports nothing of Branchwork's. Versions 1.3.2 and 1.6.0 take ``QueueManager(Queries(driver))``;
a version whose QueueManager takes the driver itself is handled too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import sys
from typing import Any

ENTRYPOINT = "noop"


async def _worker(dsn: str, batch: int, concurrency: int) -> None:
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.qm import QueueManager
    from pgqueuer.queries import Queries
    from pgqueuer.types import QueueExecutionMode

    conn = await asyncpg.connect(dsn)
    if "queries" in {f.name for f in dataclasses.fields(QueueManager)}:
        qm = QueueManager(Queries(AsyncpgDriver(conn)))
    else:
        qm = QueueManager(AsyncpgDriver(conn))

    @qm.entrypoint(ENTRYPOINT)
    async def noop(job: Any) -> None:
        return None

    options: dict[str, Any] = {"batch_size": batch, "max_concurrent_tasks": concurrency,
                               "mode": QueueExecutionMode.drain}
    accepted = inspect.signature(qm.run).parameters
    await qm.run(**{k: v for k, v in options.items() if k in accepted})
    await conn.close()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    job = _worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
    try:  # as PgQueuer's own command line (`pgq run`) runs its workers
        import uvloop

        uvloop.run(job)
    except ImportError:
        asyncio.run(job)

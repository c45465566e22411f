"""The stuck sweeper: fails attempts stuck past their ``stuck_after`` where configured.

It is the rescuer with another statement: a pass ends attempts the same way (rows shaped like
a sweep's), so the rescuer's hooks (workflow advance, metrics) apply to it unchanged."""

from __future__ import annotations

import logging

from ..engine.stuck import fail_stuck
from ..store.tasks import SweptRow
from .rescuer import Rescuer


class StuckSweeper(Rescuer):
    task_name = "branchwork-stuck-sweeper"
    failure_message = "stuck sweep failed; retrying"
    log = logging.getLogger("branchwork.stuck")

    async def end_attempts(self) -> list[SweptRow]:
        return await fail_stuck(self.pool)

    def say(self, rows: list[SweptRow]) -> None:
        self.log.warning("failed %d stuck attempt(s): %s", len(rows),
                         ", ".join(str(r["id"]) for r in rows[:20]))

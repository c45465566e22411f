"""The children sweeper: the safety net that resumes durable parents whose children have all
finished in a way no report saw (cancelled, failed by the rescuer). Reports resume parents
at once (``app/engine/children.py``); this pass only bounds the latency of the rest."""

from __future__ import annotations

import logging

from ..engine.children import SWEEP_BATCH, sweep
from .periodic import PeriodicService


class ChildrenSweeper(PeriodicService):
    task_name = "branchwork-children-sweeper"
    failure_message = "children wait pass failed; retrying"
    log = logging.getLogger("branchwork.waits")

    async def step(self) -> bool:
        resumed = await sweep(self.pool)
        if resumed:
            self.log.info("%d parent(s) resumed: their children have finished", resumed)
        return resumed >= SWEEP_BATCH

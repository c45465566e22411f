"""What the worker knows about one attempt it holds, from claim to report (or release)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from branchwork.worker_api import RunnableTask, TaskContext

from . import capture
from .procpool import Child


@dataclass(eq=False)
class Running:
    """One attempt held by this worker, from claim to report (or release)."""

    task: dict[str, Any]
    definition: RunnableTask | None
    ctx: TaskContext
    deadline: float | None
    buffer: capture.OutputBuffer
    handle: asyncio.Task[None] | None = None
    child: Child | None = None
    lost: bool = False
    releasing: bool = False
    progress_slot: int | None = None
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)


class UnknownTask(Exception):
    """The claimed task's name is not in this worker's registry."""

"""``WorkerOptions`` (what ``run-worker``'s flags set) and the worker's identity."""

from __future__ import annotations

import os
import secrets
import socket
import sys
from dataclasses import dataclass
from typing import Any, Literal

from branchwork.protocol import check_queue_selector

from .capture import DEFAULT_LIMIT


def make_worker_id() -> str:
    """hostname-pid-random: readable in the studio, unique across restarts and hosts."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass
class WorkerOptions:
    spec: str
    url: str
    queues: list[str] | None = None
    concurrency: int = 10
    processes: int | None = None  # sync tasks at once in process isolation; default concurrency
    batch_size: int = 100
    isolation: Literal["process", "thread"] = "process"
    grace_seconds: float = 30.0
    cancel_grace_seconds: float = 5.0
    wait_seconds: float = 10.0
    log_limit: int = DEFAULT_LIMIT
    report_batch: int = 500
    report_interval: float = 0.005

    def __post_init__(self) -> None:
        # Checked before start: a selector the server refuses would fail every claim.
        for queue in self.queues or ():
            check_queue_selector(queue)

    def info(self) -> dict[str, Any]:
        """What the worker tells the server about itself (shown in the studio)."""
        return {"hostname": socket.gethostname(), "pid": os.getpid(), "language": "python",
                "python": sys.version.split()[0], "registry": self.spec,
                "concurrency": self.concurrency, "isolation": self.isolation,
                "batch_size": self.batch_size}

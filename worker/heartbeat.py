"""The heartbeat process: keeps the worker's leases alive whatever its tasks do.

Task code runs in the worker process (async tasks on its event loop, sync tasks in threads
or child processes). A task that hogs the CPU, blocks the loop, or holds the GIL inside C code
would starve a heartbeat *thread* of that process; a separate process cannot be starved that
way. So the worker starts this small program (no user code is ever imported here) and tells it,
line by line on its stdin, which leases it holds:

    {"add": [[id, lease_token], ...]}   {"remove": [id, ...]}   {"stop": true}

With ``--progress-fd`` (the worker's progress board, ``progress.py``) each lease it sends
carries ``idle_seconds``, how long its attempt has not shown progress.

It heartbeats all of them every ``lease_seconds / 3`` and writes what it learns to stdout, one
JSON object per line: ``{"lease_seconds": 30.0}``, ``{"cancel": [ids]}``, ``{"lost": [ids]}``.
It speaks ``/v1/heartbeat`` through the client's ``Client.heartbeat`` (the same call and error
mapping as every other request), without the client's retries: its own loop retries.

When the worker dies, even by ``kill -9``, its end of the stdin pipe closes; this process then
exits at once, so the leases lapse and the server hands the tasks to another worker.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from typing import Any

import orjson

from branchwork import ApiError, BranchworkError, Client
from branchwork.protocol import MAX_LEASES_PER_CALL

from .progress import ProgressBoard, inherited

MIN_INTERVAL = 0.2
MAX_INTERVAL = 10.0
DEFAULT_LEASE = 30.0


class Leases:
    """The leases to extend, shared by the stdin reader and the heartbeat loop."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: dict[int, str] = {}
        self.wake = threading.Event()
        self.stop = False

    def apply(self, message: dict[str, Any]) -> None:
        with self.lock:
            for task_id, token in message.get("add", ()):
                self.items[int(task_id)] = str(token)
            for task_id in message.get("remove", ()):
                self.items.pop(int(task_id), None)
        if message.get("stop"):
            self.stop = True
            self.wake.set()

    def snapshot(self, idle: dict[int, float]) -> list[dict[str, Any]]:
        with self.lock:
            return [{"id": i, "lease_token": t, "idle_seconds": idle.get(i)}
                    for i, t in self.items.items()]

    def drop(self, ids: list[int]) -> None:
        with self.lock:
            for task_id in ids:
                self.items.pop(task_id, None)


def _read_commands(leases: Leases) -> None:
    for line in sys.stdin:
        line = line.strip()
        if line:
            leases.apply(orjson.loads(line))
    # stdin closed: the worker is gone (or done). Never outlive it with its leases.
    os._exit(0)


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _beat(client: Client, worker_id: str, leases: Leases, interval: float,
          board: ProgressBoard | None = None) -> float:
    """Heartbeat every held lease (in chunks the server takes) → the next interval. With the
    worker's progress board, each lease carries how long its attempt has been idle."""
    held = leases.snapshot(board.idle() if board is not None else {})
    # The server takes a bounded number of leases per heartbeat; an empty one says "alive".
    for start in range(0, max(len(held), 1), MAX_LEASES_PER_CALL):
        try:
            body = client.heartbeat(worker_id, held[start:start + MAX_LEASES_PER_CALL])
        except ApiError as exc:
            print(f"branchwork heartbeat: {exc}", file=sys.stderr, flush=True)
            continue
        except (BranchworkError, ValueError) as exc:
            print(f"branchwork heartbeat: {exc!r}", file=sys.stderr, flush=True)
            interval = min(interval, 1.0)  # try again soon while the lease holds
            continue
        lease = float(body.get("lease_seconds") or DEFAULT_LEASE)
        interval = min(MAX_INTERVAL, max(MIN_INTERVAL, lease / 3))
        _emit({"lease_seconds": lease})
        if body.get("lost"):
            leases.drop(body["lost"])
            _emit({"lost": body["lost"]})
        if body.get("cancel"):
            _emit({"cancel": body["cancel"]})
    return interval


def run(url: str, worker_id: str, token: str | None,
        board: ProgressBoard | None = None) -> None:
    leases = Leases()
    threading.Thread(target=_read_commands, args=(leases,), daemon=True).start()
    interval = 1.0
    # No retries inside a call: this loop is the retry, on a schedule the lease allows.
    with Client(url, token, timeout=10.0, retries=0) as client:
        while not leases.stop:
            started = time.monotonic()
            interval = _beat(client, worker_id, leases, interval, board)
            leases.wake.wait(max(0.0, interval - (time.monotonic() - started)))


def main() -> None:
    # The worker decides when to stop; signals sent to the whole process group are its business.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parser = argparse.ArgumentParser(description="branchwork heartbeat process")
    parser.add_argument("--url", required=True)
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--progress-fd", type=int, default=None)
    args = parser.parse_args()
    run(args.url, args.worker_id, os.environ.get("BRANCHWORK_API_TOKEN") or None,
        inherited(args.progress_fd))


if __name__ == "__main__":
    main()

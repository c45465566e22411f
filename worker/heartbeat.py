"""The heartbeat process: keeps the worker's leases alive whatever its tasks do.

Task code runs in the worker process (async tasks on its event loop, sync tasks in threads
or child processes). A task that hogs the CPU, blocks the loop, or holds the GIL inside C code
would starve a heartbeat *thread* of that process; a separate process cannot be starved that
way. So the worker starts this small program (no user code is ever imported here) and tells it,
line by line on its stdin, which leases it holds:

    {"add": [[id, lease_token], ...]}   {"remove": [id, ...]}   {"stop": true}

It heartbeats all of them every ``lease_seconds / 3`` and writes what it learns to stdout, one
JSON object per line: ``{"lease_seconds": 30.0}``, ``{"cancel": [ids]}``, ``{"lost": [ids]}``.

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

import httpx

MIN_INTERVAL = 0.2
MAX_INTERVAL = 10.0
CHUNK = 10_000


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

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return [{"id": i, "lease_token": t} for i, t in self.items.items()]

    def drop(self, ids: list[int]) -> None:
        with self.lock:
            for task_id in ids:
                self.items.pop(task_id, None)


def _read_commands(leases: Leases) -> None:
    for line in sys.stdin:
        line = line.strip()
        if line:
            leases.apply(json.loads(line))
    # stdin closed: the worker is gone (or done). Never outlive it with its leases.
    os._exit(0)


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def run(url: str, worker_id: str, token: str | None) -> None:
    leases = Leases()
    threading.Thread(target=_read_commands, args=(leases,), daemon=True).start()
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    interval = 1.0
    with httpx.Client(base_url=url, headers=headers, timeout=10.0) as http:
        while not leases.stop:
            started = time.monotonic()
            held = leases.snapshot()
            # The server takes up to 10,000 leases per heartbeat; an empty one still says "alive".
            for start in range(0, max(len(held), 1), CHUNK):
                try:
                    answer = http.post("/v1/heartbeat", json={
                        "worker_id": worker_id, "tasks": held[start:start + CHUNK]})
                    if answer.status_code == 200:
                        body = answer.json()
                        lease = float(body.get("lease_seconds") or 30.0)
                        interval = min(MAX_INTERVAL, max(MIN_INTERVAL, lease / 3))
                        _emit({"lease_seconds": lease})
                        if body.get("lost"):
                            leases.drop(body["lost"])
                            _emit({"lost": body["lost"]})
                        if body.get("cancel"):
                            _emit({"cancel": body["cancel"]})
                    else:
                        print(f"branchwork heartbeat: HTTP {answer.status_code}: "
                              f"{answer.text[:300]}", file=sys.stderr, flush=True)
                except (httpx.HTTPError, ValueError) as exc:
                    print(f"branchwork heartbeat: {exc!r}", file=sys.stderr, flush=True)
                    interval = min(interval, 1.0)  # try again soon while the lease holds
            leases.wake.wait(max(0.0, interval - (time.monotonic() - started)))


def main() -> None:
    # The worker decides when to stop; signals sent to the whole process group are its business.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parser = argparse.ArgumentParser(description="branchwork heartbeat process")
    parser.add_argument("--url", required=True)
    parser.add_argument("--worker-id", required=True)
    args = parser.parse_args()
    run(args.url, args.worker_id, os.environ.get("BRANCHWORK_API_TOKEN") or None)


if __name__ == "__main__":
    main()

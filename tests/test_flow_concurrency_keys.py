"""Concurrency keys (docs/flow-control.md): at most N running per key across replicas and
workers, fair turns across keys, and the two "latest wins" strategies, racing sends included."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import httpx

from flow_helpers import claim, tasks_of, workers
from worker_helpers import wait_for, wait_status


def _send(api: httpx.Client, **body: Any) -> dict[str, Any]:
    r = api.post("/v1/tasks", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def test_key_limit_of_two_never_has_three_running(make_server) -> None:
    one, two = make_server(), make_server()
    body = [{"name": "hold", "queue": "keyed", "args": {"customer": c, "seconds": 0.2},
             "concurrency_key_path": "customer", "concurrency_limit": 2}
            for _ in range(16) for c in ("acme", "globex")]
    seen: Counter[str] = Counter()
    stop = threading.Event()

    def sample(api: httpx.Client) -> None:
        # Each read is one snapshot of the running tasks: the most per key at any instant.
        while not stop.is_set():
            running = Counter(t["args"]["customer"] for t in tasks_of(api, "keyed", "running"))
            for key, n in running.items():
                seen[key] = max(seen[key], n)
            time.sleep(0.02)

    with httpx.Client(base_url=one.url, timeout=30) as api, ExitStack() as stack:
        api.post("/v1/tasks/batch", json={"tasks": body}).raise_for_status()
        sampler = threading.Thread(target=sample, args=(api,), daemon=True)
        sampler.start()
        workers(stack, [one.url, two.url], 3, "keyed", concurrency=4)
        try:
            wait_for(lambda: len(tasks_of(api, "keyed", "succeeded")) == len(body),
                     timeout=60, interval=0.5)
        finally:
            stop.set()
            sampler.join(5)
    # Both keys reached their limit (12 slots offered), none went past it.
    assert seen == {"acme": 2, "globex": 2}


def test_fair_turns_a_small_key_is_not_stuck_behind_a_big_one(api: httpx.Client) -> None:
    def batch(customer: str, n: int) -> list[dict[str, Any]]:
        return [{"name": "hold", "queue": "keyed", "args": {"customer": customer, "seconds": 0},
                 "concurrency_key_path": "customer", "concurrency_limit": 1000}
                for _ in range(n)]

    for _ in range(5):
        api.post("/v1/tasks/batch", json={"tasks": batch("big", 1000)}).raise_for_status()
    api.post("/v1/tasks/batch", json={"tasks": batch("small", 10)}).raise_for_status()
    claimed: list[str] = []
    for _ in range(3):  # three batches of 10
        claimed += [t["args"]["customer"] for t in claim(api, "keyed", 10)]
    assert claimed.count("small") == 10  # all ten, though 5,000 were sent before them
    assert len(claimed) == 30


def test_cancel_in_progress_stops_the_running_task_and_runs_the_new_one(make_server) -> None:
    server = make_server()
    key = {"concurrency_key_path": "doc", "concurrency_strategy": "cancel_in_progress"}
    with httpx.Client(base_url=server.url, timeout=30) as api, ExitStack() as stack:
        workers(stack, [server.url], 1, "latest")
        old = _send(api, name="edit", queue="latest", args={"doc": "d1", "version": 1}, **key)
        wait_status(api, old["id"], "running")
        new = _send(api, name="edit", queue="latest",
                    args={"doc": "d1", "version": 2, "seconds": 0.2}, **key)
        assert wait_status(api, old["id"])["status"] == "cancelled"
        done = wait_status(api, new["id"])
        assert (done["status"], done["result"]) == ("succeeded", 2)


def test_cancel_in_progress_racing_sends_leave_only_the_last(api: httpx.Client) -> None:
    def send(i: int) -> int:
        return _send(api, name="edit", queue="latest", args={"doc": "race", "version": i},
                     concurrency_key="race", concurrency_strategy="cancel_in_progress")["id"]

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(send, range(16)))
    statuses = {t["id"]: t["status"] for t in tasks_of(api, "latest")}
    assert len(statuses) == 16
    survivors = [i for i, s in statuses.items() if s != "cancelled"]
    assert survivors == [max(ids)]  # sends of one key take turns: the last one wins


def test_cancel_newest_folds_sends_into_the_task_already_there(api: httpx.Client) -> None:
    key = {"concurrency_key": "doc-7", "concurrency_strategy": "cancel_newest"}
    first = _send(api, name="edit", queue="latest", args={"doc": "7", "version": 1}, **key)
    assert first.get("folded_into") is None
    again = _send(api, name="edit", queue="latest", args={"doc": "7", "version": 2}, **key)
    assert again["id"] == again["folded_into"] == first["id"]
    assert len(tasks_of(api, "latest")) == 1  # the dropped send created no task
    # Running counts as "there" too; once the task is finished a send creates a new one.
    [leased] = claim(api, "latest", 10)
    assert _send(api, name="edit", queue="latest", args={"doc": "7", "version": 3},
                 **key)["folded_into"] == first["id"]
    api.post(f"/v1/tasks/{leased['id']}/complete",
             json={"lease_token": leased["lease_token"], "result": 1}).raise_for_status()
    later = _send(api, name="edit", queue="latest", args={"doc": "7", "version": 4}, **key)
    assert later.get("folded_into") is None and later["id"] != first["id"]


def test_cancel_newest_racing_sends_create_one_task(api: httpx.Client) -> None:
    def send(i: int) -> dict[str, Any]:
        return _send(api, name="edit", queue="latest", args={"doc": "r", "version": i},
                     concurrency_key="r", concurrency_strategy="cancel_newest")

    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(send, range(16)))
    [task] = tasks_of(api, "latest")
    assert {o["id"] for o in outs} == {task["id"]}
    assert sum(o.get("folded_into") is None for o in outs) == 1

"""Uniqueness windows (docs/flow-control.md): idempotency keys that expire (``unique_for``)
or hold only while their task is queued or running (``unique_while="active"``), beside the
keys that hold forever — each checked at its boundary, and against racing sends."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

import branchwork
from branchwork import InvalidArgs, Registry
from flow_windows_app import runs
from servers import ThreadServer
from worker_helpers import python_worker, task, wait_for, wait_status


def _send(api: httpx.Client, key: str, name: str = "hold", **extra: Any) -> dict[str, Any]:
    body = {"name": name, "queue": "windows", "args": {"seconds": 0.0, "label": key},
            "idempotency_key": key, **extra}
    response = api.post("/v1/tasks", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _db_now(api: httpx.Client) -> datetime:
    """The database's clock, as a fresh task's created_at (the window is measured on it)."""
    probe = api.post("/v1/tasks", json={"name": "clock_probe", "args": None})
    return datetime.fromisoformat(task(api, probe.json()["id"])["created_at"])


def test_forever_keys_still_hold_after_the_task_finished(api: httpx.Client) -> None:
    first = _send(api, "forever")
    assert api.post(f"/v1/tasks/{first['id']}/cancel").status_code == 200
    again = _send(api, "forever")
    assert again == {"id": first["id"], "duplicate": True}
    row = task(api, first["id"])
    assert row["idempotency_key"] == "forever" and row["unique_key"] is None


def test_expiring_key_holds_until_its_time_then_a_new_task(api: httpx.Client) -> None:
    first = _send(api, "exp", unique_for=5.0)
    assert first["duplicate"] is False
    row = task(api, first["id"])
    until = datetime.fromisoformat(row["unique_until"])
    created = datetime.fromisoformat(row["created_at"])
    assert 4.9 <= (until - created).total_seconds() <= 5.1
    assert row["unique_key"] == "exp" and row["idempotency_key"] is None
    # Before the boundary (checked on the database's clock): the same task, even finished.
    assert api.post(f"/v1/tasks/{first['id']}/cancel").status_code == 200
    again = _send(api, "exp", unique_for=5.0)
    assert (until - _db_now(api)).total_seconds() > 0, "the check ran after the boundary"
    assert again["id"] == first["id"] and again["duplicate"] is True
    # After the boundary: a new task takes the key, and holds it for its own window.
    wait_for(lambda: _db_now(api) > until, timeout=10, what="the key to expire")
    second = _send(api, "exp", unique_for=5.0)
    assert second["id"] != first["id"] and second["duplicate"] is False
    third = _send(api, "exp", unique_for=5.0)
    assert third["id"] == second["id"] and third["duplicate"] is True


def test_racing_sends_after_expiry_make_exactly_one_new_task(
        make_server: Callable[..., ThreadServer]) -> None:
    one, two = make_server(), make_server()
    with httpx.Client(base_url=one.url, timeout=30) as a, \
            httpx.Client(base_url=two.url, timeout=30) as b:
        first = _send(a, "race-exp", unique_for=1.0)
        time.sleep(1.2)
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda i: _send((a, b)[i % 2], "race-exp",
                                                    unique_for=60.0), range(100)))
        fresh = [x for x in answers if not x["duplicate"]]
        assert len(fresh) == 1 and fresh[0]["id"] != first["id"]
        assert {x["id"] for x in answers} == {fresh[0]["id"]}


def test_while_active_key_holds_while_queued_and_running_then_frees(
        make_server: Callable[..., ThreadServer], tmp_path: Path) -> None:
    server = make_server()
    with httpx.Client(base_url=server.url, timeout=30) as api:
        body = {"seconds": 2.0, "label": "a1"}
        first = api.post("/v1/tasks", json={"name": "hold", "queue": "windows", "args": body,
                                            "idempotency_key": "act",
                                            "unique_while": "active"}).json()
        queued = _send(api, "act", unique_while="active")
        assert queued["id"] == first["id"] and queued["duplicate"] is True
        with python_worker(server.url, "flow_windows_app:reg", "-q", "windows",
                           BW_TEST_DIR=str(tmp_path)):
            wait_status(api, first["id"], "running")
            running = _send(api, "act", unique_while="active")
            assert running["id"] == first["id"] and running["duplicate"] is True
            wait_status(api, first["id"], "succeeded")
            after = _send(api, "act", unique_while="active")
            assert after["id"] != first["id"] and after["duplicate"] is False
            wait_status(api, after["id"], "succeeded")
        assert [r["label"] for r in runs(tmp_path, "hold")] == ["a1", "act"]
        # The same key with another task name is another key.
        other = _send(api, "act", name="hold_other", unique_while="active")
        assert other["duplicate"] is False


def test_while_active_key_frees_on_cancel_and_blocks_a_retry_while_held(
        api: httpx.Client) -> None:
    first = _send(api, "cx", unique_while="active")
    assert api.post(f"/v1/tasks/{first['id']}/cancel").status_code == 200
    second = _send(api, "cx", unique_while="active")
    assert second["id"] != first["id"] and second["duplicate"] is False
    # Queuing the cancelled one again would make two active holders: refused, nothing changes.
    refused = api.post(f"/v1/tasks/{first['id']}/retry")
    assert refused.status_code == 409 and refused.json()["code"] == "key_held"
    assert task(api, first["id"])["status"] == "cancelled"
    assert api.post(f"/v1/tasks/{second['id']}/cancel").status_code == 200
    assert api.post(f"/v1/tasks/{first['id']}/retry").status_code == 200
    assert _send(api, "cx", unique_while="active")["id"] == first["id"]


def test_racing_while_active_sends_on_two_replicas_make_one_task(
        make_server: Callable[..., ThreadServer]) -> None:
    one, two = make_server(), make_server()
    with httpx.Client(base_url=one.url, timeout=30) as a, \
            httpx.Client(base_url=two.url, timeout=30) as b:
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda i: _send((a, b)[i % 2], "race-act",
                                                    unique_while="active"), range(100)))
        assert len({x["id"] for x in answers}) == 1
        assert sum(not x["duplicate"] for x in answers) == 1


def test_a_batch_repeating_a_windowed_key_makes_one_task(api: httpx.Client) -> None:
    for extra in ({"unique_for": 60.0}, {"unique_while": "active"}):
        key = f"batch-{next(iter(extra))}"
        item = {"name": "hold", "queue": "windows", "args": {"seconds": 0, "label": key},
                "idempotency_key": key, **extra}
        response = api.post("/v1/tasks/batch", json={"tasks": [item, item, item]})
        assert response.status_code == 201, response.text
        out = response.json()["tasks"]
        assert len({x["id"] for x in out}) == 1
        assert [x["duplicate"] for x in out] == [False, True, True]


def test_the_python_client_sends_windowed_keys(server: ThreadServer) -> None:
    reg = Registry()

    @reg.task(queue="windows")
    def hold(seconds: float, label: str) -> str:
        return label

    branchwork.configure(url=server.url)
    try:
        active = hold.with_config(idempotency_key="py-act", unique_while="active")
        first, again = active.send(0, "a"), active.send(0, "b")
        assert again.id == first.id and again.duplicate and not first.duplicate
        hourly = hold.with_config(idempotency_key="py-exp", unique_for=timedelta(hours=1))
        one, two = hourly.send(0, "a"), hourly.send(0, "b")
        assert two.id == one.id and two.duplicate
        assert one.refresh().task["unique_key"] == "py-exp"
        with pytest.raises(InvalidArgs, match="idempotency_key"):
            hold.with_config(unique_for=60).send(0, "c")
        with pytest.raises(InvalidArgs, match="unique_while"):
            hold.with_config(idempotency_key="k", unique_while="queued")
        with pytest.raises(InvalidArgs, match="unique_for"):
            hold.with_config(idempotency_key="k", unique_for=-1)
    finally:
        branchwork.configure()

"""Debounce (docs/flow-control.md): sends with the same key inside the window fold into one
task that runs once, after the window has been quiet, with the latest args — across two
server replicas and racing threads, decided by the database."""

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
from branchwork import (
    Debounce,
    DefinitionError,
    InvalidArgs,
    Registry,
    TaskContext,
    task_context,
)
from flow_windows_app import runs
from servers import ThreadServer
from worker_helpers import python_worker, task, wait_status

WINDOW = 4.0  # seconds; generous so that a loaded machine still sends 50 inside it


def _send(api: httpx.Client, version: int, doc: str = "d1", **extra: Any) -> dict[str, Any]:
    body = {"name": "reindex", "queue": "windows", "args": {"doc": doc, "version": version},
            "debounce_seconds": WINDOW, "debounce_key": f"doc:{doc}", **extra}
    response = api.post("/v1/tasks", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _tasks_named(api: httpx.Client, name: str) -> list[dict[str, Any]]:
    response = api.get("/v1/tasks", params={"name": name, "limit": 1000})
    assert response.status_code == 200, response.text
    return response.json()["tasks"]


def test_fifty_sends_on_two_replicas_run_once_with_the_last_args(
        make_server: Callable[..., ThreadServer], tmp_path: Path) -> None:
    one, two = make_server(), make_server()
    with httpx.Client(base_url=one.url, timeout=30) as a, \
            httpx.Client(base_url=two.url, timeout=30) as b, \
            python_worker(one.url, "flow_windows_app:reg", "-q", "windows",
                          BW_TEST_DIR=str(tmp_path)):
        started = time.monotonic()
        answers = [_send((a, b)[i % 2], i) for i in range(50)]
        elapsed = time.monotonic() - started
        assert elapsed < WINDOW, f"the 50 sends took {elapsed:.2f} s, longer than the window"
        task_id = answers[0]["id"]
        assert answers[0] == {"id": task_id, "duplicate": False, "debounced": True,
                              "folded_into": None}
        assert all(x == {"id": task_id, "duplicate": False, "debounced": True,
                         "folded_into": task_id} for x in answers[1:]), answers
        # Queued, waiting for the window to be quiet: run_at pushed out past the last send.
        row = task(a, task_id)
        assert row["status"] == "queued" and row["args"] == {"doc": "d1", "version": 49}
        done = wait_status(a, task_id, "succeeded", timeout=30)
        assert done["result"] == 49
        time.sleep(WINDOW + 1)  # nothing else becomes due
        assert runs(tmp_path, "reindex") == [{"doc": "d1", "version": 49}]
        assert [t["id"] for t in _tasks_named(b, "reindex")] == [task_id]
        folds = [e for e in done["history"] if e["event"] == "send_folded"]
        assert len(folds) == 49


def test_racing_sends_from_many_threads_and_two_replicas_make_one_task(
        make_server: Callable[..., ThreadServer]) -> None:
    one, two = make_server(), make_server()
    with httpx.Client(base_url=one.url, timeout=30) as a, \
            httpx.Client(base_url=two.url, timeout=30) as b:
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda i: _send((a, b)[i % 2], i, doc="race"), range(200)))
        ids = {x["id"] for x in answers}
        assert len(ids) == 1, ids
        assert sum(x["folded_into"] is None for x in answers) == 1
        assert all(x["debounced"] and not x["duplicate"] for x in answers)
        [row] = _tasks_named(a, "reindex")
        assert row["status"] == "queued"


def test_window_reopens_once_the_task_has_started(make_server: Callable[..., ThreadServer],
                                                  tmp_path: Path) -> None:
    server = make_server()
    with httpx.Client(base_url=server.url, timeout=30) as api, \
            python_worker(server.url, "flow_windows_app:reg", "-q", "windows",
                          BW_TEST_DIR=str(tmp_path)):
        first = _send(api, 1, debounce_seconds=0.5)
        wait_status(api, first["id"], "succeeded")
        second = _send(api, 2, debounce_seconds=0.5)
        assert second["id"] != first["id"] and second["folded_into"] is None
        wait_status(api, second["id"], "succeeded")
        assert runs(tmp_path, "reindex") == [{"doc": "d1", "version": 1},
                                             {"doc": "d1", "version": 2}]


def test_other_keys_and_other_task_names_do_not_fold(api: httpx.Client) -> None:
    x = _send(api, 1, doc="x")
    y = _send(api, 1, doc="y")
    assert x["id"] != y["id"] and y["folded_into"] is None
    other = api.post("/v1/tasks", json={"name": "reindex_other", "args": {},
                                        "debounce_seconds": 5, "debounce_key": "doc:x"})
    assert other.status_code == 201 and other.json()["folded_into"] is None


def test_key_read_from_the_args(api: httpx.Client) -> None:
    body = {"name": "reindex", "queue": "windows", "debounce_seconds": WINDOW,
            "debounce_key_path": "doc.id"}
    first = api.post("/v1/tasks", json={**body, "args": {"doc": {"id": 7}, "version": 1}})
    again = api.post("/v1/tasks", json={**body, "args": {"doc": {"id": 7}, "version": 2}})
    other = api.post("/v1/tasks", json={**body, "args": {"doc": {"id": 8}, "version": 1}})
    assert first.status_code == again.status_code == other.status_code == 201
    assert again.json()["folded_into"] == first.json()["id"]
    assert other.json()["folded_into"] is None
    assert task(api, first.json()["id"])["args"] == {"doc": {"id": 7}, "version": 2}


def test_a_batch_folds_its_own_repeats_and_keeps_plain_sends(api: httpx.Client) -> None:
    deb = {"name": "reindex", "queue": "windows", "debounce_seconds": WINDOW,
           "debounce_key": "doc:batch"}
    response = api.post("/v1/tasks/batch", json={"tasks": [
        {**deb, "args": {"doc": "batch", "version": 1}},
        {"name": "plain", "args": {"n": 1}},
        {**deb, "args": {"doc": "batch", "version": 2}},
    ]})
    assert response.status_code == 201, response.text
    first, plain, last = response.json()["tasks"]
    assert first["id"] == last["id"] and first["folded_into"] == first["id"]
    assert last["folded_into"] is None and last["debounced"]
    assert "debounced" not in plain and plain["id"] != first["id"]
    assert task(api, first["id"])["args"] == {"doc": "batch", "version": 2}
    # The next batch folds into the same open window.
    response = api.post("/v1/tasks/batch", json={"tasks": [
        {**deb, "args": {"doc": "batch", "version": 3}}]})
    assert response.json()["tasks"][0]["folded_into"] == first["id"]


def test_folding_pushes_the_start_out(api: httpx.Client) -> None:
    first = _send(api, 1, doc="late", debounce_seconds=2.0)
    before = task(api, first["id"])["run_at"]
    time.sleep(0.3)
    _send(api, 2, doc="late", debounce_seconds=2.0)
    after = task(api, first["id"])["run_at"]
    assert after > before


def test_the_python_client_debounces_and_checks_before_sending(server: ThreadServer) -> None:
    reg = Registry()

    @reg.task(queue="windows", debounce=Debounce(600, key_path="doc"))
    def reindex(doc: str, version: int) -> int:
        return version

    branchwork.configure(url=server.url)
    try:
        first = reindex.send("d9", 1)
        again = reindex.send("d9", 2)
        custom = reindex.with_config(debounce=Debounce(timedelta(minutes=10), key="custom"))
        other = custom.send("d9", 3)
        assert first.debounced and first.folded_into is None and not first.duplicate
        assert again.id == first.id and again.folded_into == first.id
        assert not again.duplicate and again.debounced
        assert other.id != first.id and other.folded_into is None
        assert first.refresh().task["args"] == {"doc": "d9", "version": 2}
        # Refused where it is written, before anything is sent.
        with pytest.raises(InvalidArgs, match="delay"):
            reindex.with_config(delay=5).send("d9", 4)
        with pytest.raises(InvalidArgs, match="debounce"):
            reindex.with_config(debounce="5 seconds")
        with pytest.raises(DefinitionError):
            Debounce(0, key="x")
        with pytest.raises(DefinitionError):
            Debounce(5)
        with pytest.raises(DefinitionError):
            Debounce(5, key="x", key_path="doc")
        assert first.refresh().task["args"] == {"doc": "d9", "version": 2}
    finally:
        branchwork.configure()


def test_debounced_sends_from_inside_a_task_keep_the_parent_and_fold(
        server: ThreadServer, api: httpx.Client) -> None:
    parent = api.post("/v1/tasks", json={"name": "parent"}).json()["id"]
    reg = Registry()

    @reg.task(queue="windows", debounce=Debounce(600, key="child"))
    def child(n: int) -> int:
        return n

    branchwork.configure(url=server.url)
    try:
        with task_context(TaskContext(task_id=parent, task_name="parent")):
            first, again = child.send(1), child.send(2)
    finally:
        branchwork.configure()
    assert again.id == first.id and again.folded_into == first.id
    row = task(api, first.id)
    assert row["parent_id"] == parent and row["spawn_key"] is None
    assert row["idempotency_key"] is None and row["args"] == {"n": 2}


def test_a_maximum_wait_runs_the_task_while_sends_keep_coming(
        make_server: Callable[..., ThreadServer], tmp_path: Path) -> None:
    server = make_server()
    with httpx.Client(base_url=server.url, timeout=30) as api, \
            python_worker(server.url, "flow_windows_app:reg", "-q", "windows",
                          BW_TEST_DIR=str(tmp_path)):
        answers = []
        started = time.monotonic()
        version = 0
        while time.monotonic() - started < 6.0:  # a send every 0.3 s: never quiet for 1 s
            answers.append(_send(api, version, doc="busy", debounce_seconds=1.0,
                                 debounce_max_seconds=2.5))
            version += 1
            time.sleep(0.3)
        ids = list(dict.fromkeys(a["id"] for a in answers))
        assert len(ids) >= 2, "the first window never closed while sends kept coming"
        first = wait_status(api, ids[0], "succeeded")
        waited = _at(first["started_at"]) - _at(first["created_at"])
        assert waited.total_seconds() < 2.5 + 1.5, waited  # its deadline, not the sends' end
        last = wait_status(api, ids[-1], "succeeded")
        assert last["args"]["version"] == version - 1
        assert [r["version"] for r in runs(tmp_path, "reindex")][-1] == version - 1
        assert len(runs(tmp_path, "reindex")) == len(ids)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)

"""Why isn't it running? Every reason the server gives is produced here by building its
situation for real (docs/flow-control.md), and read through the API, the Python client (the
handle's ``why()`` and ``Client.why``) and once through the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

import branchwork
from branchwork import Client, Registry
from cli_helpers import bw, user_env
from servers import ThreadServer
from worker_helpers import task

WORKER = "why-worker"


@pytest.fixture
def client(server: ThreadServer) -> Iterator[Client]:
    with Client(server.url) as c:
        yield c


def _send(api: httpx.Client, queue: str, name: str = "job", **extra: Any) -> int:
    response = api.post("/v1/tasks", json={"name": name, "queue": queue, "args": {}, **extra})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _why(api: httpx.Client, task_id: int) -> dict[str, Any]:
    response = api.get(f"/v1/tasks/{task_id}/why")
    assert response.status_code == 200, response.text
    return response.json()


def _codes(answer: dict[str, Any]) -> list[str]:
    return [r["code"] for r in answer["reasons"]]


def _reason(answer: dict[str, Any], code: str) -> dict[str, Any]:
    [reason] = [r for r in answer["reasons"] if r["code"] == code]
    assert reason["message"]
    return reason


def _claim(api: httpx.Client, queue: str, worker: str = WORKER, **extra: Any) -> list[dict]:
    response = api.post("/v1/claim", json={"worker_id": worker, "queues": [queue], **extra})
    assert response.status_code == 200, response.text
    return response.json()["tasks"]


def _register(api: httpx.Client, queue: str, names: list[str], worker: str = WORKER) -> None:
    response = api.post("/v1/workers/register", json={
        "worker_id": worker, "queues": [queue], "tasks": [{"name": n, "queue": queue}
                                                          for n in names]})
    assert response.status_code == 200, response.text


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_scheduled_for_later_and_no_worker_online(api: httpx.Client,
                                                  client: Client) -> None:
    task_id = _send(api, "why-later", delay_seconds=600)
    answer = _why(api, task_id)
    assert answer["status"] == "queued" and answer["running"] is False
    assert _codes(answer) == ["scheduled", "no_worker"]
    until = _at(_reason(answer, "scheduled")["until"])
    assert until == _at(task(api, task_id)["run_at"])
    assert _reason(answer, "no_worker")["queue"] == "why-later"
    # The same answer through the Python client, and the task read links to it.
    assert _codes(client.why(task_id)) == ["scheduled", "no_worker"]
    assert task(api, task_id)["why"] == f"/v1/tasks/{task_id}/why"


def test_no_worker_for_the_task_name_then_ready_once_one_serves_it(api: httpx.Client) -> None:
    first = _send(api, "why-names", name="other")
    task_id = _send(api, "why-names")
    _register(api, "why-names", ["other"])
    reason = _reason(_why(api, task_id), "no_worker")
    assert reason["on_queue"] == 1 and "none runs task 'job'" in reason["message"]
    _register(api, "why-names", ["other", "job"])
    answer = _why(api, task_id)
    assert _codes(answer) == ["ready"]
    assert _reason(answer, "ready")["ahead"] == 1  # "other" was sent first, same priority
    assert _codes(_why(api, first)) == ["ready"]


def test_retry_backoff_until_the_next_attempt(api: httpx.Client, client: Client) -> None:
    task_id = _send(api, "why-retry", max_retries=3)
    [claimed] = _claim(api, "why-retry")
    failed = api.post(f"/v1/tasks/{task_id}/fail", json={
        "lease_token": claimed["lease_token"], "retry_delay_seconds": 600,
        "error": {"type": "Boom", "message": "first attempt"}})
    assert failed.status_code == 200, failed.text
    answer = _why(api, task_id)
    reason = _reason(answer, "retry_backoff")
    assert _codes(answer)[0] == "retry_backoff" and reason["attempt"] == 1
    assert _at(reason["until"]) == _at(task(api, task_id)["run_at"])
    assert _codes(client.why(task_id))[0] == "retry_backoff"


def test_queue_paused(api: httpx.Client) -> None:
    task_id = _send(api, "why-paused")
    _claim(api, "why-paused", limit=1)  # a worker serves the queue (and takes that task)
    held = _send(api, "why-paused")
    assert api.put("/v1/queues/why-paused", json={"paused": True}).status_code == 200
    answer = _why(api, held)
    assert _codes(answer) == ["queue_paused"]
    assert _reason(answer, "queue_paused")["queue"] == "why-paused"
    assert _why(api, task_id)["running"] is True and _why(api, task_id)["reasons"] == []


def test_queue_limit_full_names_its_holders_and_the_stuck_ones(api: httpx.Client) -> None:
    assert api.put("/v1/queues/why-full", json={"concurrency_limit": 1}).status_code == 200
    holder = _send(api, "why-full", stuck_after_seconds=1.0)
    [claimed] = _claim(api, "why-full")
    assert claimed["id"] == holder
    waiting = _send(api, "why-full")
    answer = _why(api, waiting)
    assert _codes(answer) == ["queue_limit_full"]
    reason = _reason(answer, "queue_limit_full")
    assert reason["held_by"] == [holder] and reason["limit"] == 1 and reason["running"] == 1
    # The holder stops showing progress (its heartbeat says idle for 100 s): it is stuck.
    beat = api.post("/v1/heartbeat", json={"worker_id": WORKER, "tasks": [{
        "id": holder, "lease_token": claimed["lease_token"], "idle_seconds": 100.0}]})
    assert beat.status_code == 200, beat.text
    answer = _why(api, waiting)
    assert _codes(answer) == ["queue_limit_full", "stuck_holders"]
    assert _reason(answer, "stuck_holders")["stuck_ids"] == [holder]


def test_key_limit_full_names_the_key_and_its_holders(api: httpx.Client) -> None:
    flow = {"concurrency_key": "customer-7", "concurrency_limit": 1}
    holder = _send(api, "why-key", **flow)
    assert [t["id"] for t in _claim(api, "why-key")] == [holder]
    waiting = _send(api, "why-key", **flow)
    other_key = _send(api, "why-key", concurrency_key="customer-8", concurrency_limit=1)
    answer = _why(api, waiting)
    assert _codes(answer) == ["key_limit_full"]
    reason = _reason(answer, "key_limit_full")
    assert reason["key"] == "customer-7" and reason["held_by"] == [holder]
    assert reason["limit"] == 1
    assert _codes(_why(api, other_key)) == ["ready"]


def test_rate_limited_says_which_limit_and_when_the_next_unit_frees(api: httpx.Client) -> None:
    put = api.put("/v1/rate-limits/why-api", json={"units": 1, "period_seconds": 600})
    assert put.status_code == 200, put.text
    uses = {"rate_limits": [{"limit": "why-api"}]}
    first = _send(api, "why-rate", **uses)
    assert [t["id"] for t in _claim(api, "why-rate")] == [first]
    limited = _send(api, "why-rate", **uses)
    answer = _why(api, limited)
    assert _codes(answer) == ["rate_limited"]
    reason = _reason(answer, "rate_limited")
    assert reason["limit"] == "why-api" and reason["key"] is None
    checked = _at(answer["checked_at"])
    next_unit = _at(reason["next_unit_at"])
    assert checked + timedelta(seconds=500) < next_unit <= checked + timedelta(seconds=601)


def test_debouncing_until_the_window_is_quiet(api: httpx.Client) -> None:
    task_id = _send(api, "why-debounce", debounce_seconds=600, debounce_key="doc-1")
    reason = _reason(_why(api, task_id), "debouncing")
    assert reason["key"] == "doc-1"
    assert _at(reason["until"]) == _at(task(api, task_id)["run_at"])


def test_waiting_for_an_event_with_its_children_unfinished(api: httpx.Client) -> None:
    parent = _send(api, "why-wait")
    [claimed] = _claim(api, "why-wait")
    child = _send(api, "why-wait-children", parent_id=parent, spawn_key="c1")
    suspended = api.post("/v1/tasks/report", json={"results": [{
        "id": parent, "lease_token": claimed["lease_token"], "outcome": "suspended",
        "wait": {"kind": "event", "step": "order-paid", "key": "order.paid"}}]})
    assert suspended.status_code == 200, suspended.text
    answer = _why(api, parent)
    assert answer["status"] == "waiting"
    assert _codes(answer) == ["waiting_for_event", "waiting_on_children"]
    event = _reason(answer, "waiting_for_event")
    assert event["key"] == "order.paid" and event["step"] == "order-paid"
    assert _reason(answer, "waiting_on_children")["children"] == [child]


def test_a_durable_sleep(api: httpx.Client) -> None:
    task_id = _send(api, "why-sleep")
    [claimed] = _claim(api, "why-sleep")
    slept = api.post("/v1/tasks/report", json={"results": [{
        "id": task_id, "lease_token": claimed["lease_token"], "outcome": "suspended",
        "wait": {"kind": "sleep", "step": "nap", "seconds": 600}}]})
    assert slept.status_code == 200, slept.text
    answer = _why(api, task_id)
    assert _codes(answer)[0] == "sleeping"


def test_running_and_finished_tasks_have_no_reasons(api: httpx.Client) -> None:
    task_id = _send(api, "why-run")
    [claimed] = _claim(api, "why-run")
    assert _why(api, task_id) | {"checked_at": None} == {
        "task_id": task_id, "name": "job", "queue": "why-run", "status": "running",
        "running": True, "reasons": [], "checked_at": None}
    done = api.post(f"/v1/tasks/{task_id}/complete", json={"lease_token": claimed["lease_token"]})
    assert done.status_code == 200
    assert _why(api, task_id)["reasons"] == []
    assert api.get("/v1/tasks/999999/why").status_code == 404


def test_the_handle_and_the_cli_ask_why(server: ThreadServer) -> None:
    reg = Registry()

    @reg.task(queue="why-handle")
    def job() -> None: ...

    branchwork.configure(url=server.url)
    try:
        run = job.with_config(delay=600).send()
        answer = run.why()
    finally:
        branchwork.configure()
    assert answer["task_id"] == run.id and _codes(answer) == ["scheduled", "no_worker"]
    out = bw("tasks", "why", str(run.id), env=user_env(server.url))
    assert out.returncode == 0, out.stderr
    assert "scheduled" in out.stdout and "no_worker" in out.stdout
    assert "no worker online serves queue 'why-handle'" in out.stdout

"""Flows: each multi-step operation is written once and run by either driver
(``Client.run`` / ``AsyncClient.run``); handles keep the client they came from."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

import branchwork
from branchwork import (
    AsyncClient,
    Channel,
    Client,
    ClientSettings,
    KVStore,
    NotFound,
    Queue,
    Registry,
    TaskRun,
    WorkflowRun,
)
from branchwork import _calls as calls
from branchwork._flow import Flow, Once, Sleep

URL = "http://flows.test"
OTHER = "http://other.test"
FAST = ClientSettings(url=URL, backoff=0.001, max_backoff=0.002, retries=2)


def _two_reads(task_id: int) -> Flow[list[str]]:
    first = yield calls.get_task(task_id)
    yield Sleep(0)
    try:
        yield calls.get_task(task_id + 1)
    except NotFound:
        second = {"status": "missing"}
    return [first["status"], second["status"]]


def _mock(mock: respx.MockRouter) -> None:
    mock.get("/v1/tasks/1").mock(return_value=httpx.Response(200, json={"status": "queued"}))
    mock.get("/v1/tasks/2").mock(return_value=httpx.Response(
        404, json={"code": "not_found", "message": "no task 2", "details": None}))


def test_one_flow_two_drivers() -> None:
    with respx.mock(base_url=URL) as mock, Client(settings=FAST) as client:
        _mock(mock)
        assert client.run(_two_reads(1)) == ["queued", "missing"]


async def test_one_flow_two_drivers_async() -> None:
    with respx.mock(base_url=URL) as mock:
        _mock(mock)
        async with AsyncClient(settings=FAST) as client:
            assert await client.run(_two_reads(1)) == ["queued", "missing"]


def test_once_is_once_per_client() -> None:
    def flow() -> Flow[None]:
        yield Once("k", lambda: calls.configure_queue("q", concurrency_limit=2))

    with respx.mock(base_url=URL) as mock:
        route = mock.put("/v1/queues/q").mock(return_value=httpx.Response(200, json={}))
        with Client(settings=FAST) as a, Client(settings=FAST) as b:
            a.run(flow())
            a.run(flow())
            b.run(flow())
    assert route.call_count == 2
    assert json.loads(route.calls[0].request.content) == {"concurrency_limit": 2}


@pytest.fixture
def defaults() -> Iterator[None]:
    branchwork.configure(url=URL, backoff=0.001, max_backoff=0.002, retries=2)
    yield
    branchwork.configure()


def test_queue_limit_is_written_once_per_client_before_sends(defaults: None) -> None:
    reg = Registry()

    @reg.task(queue=Queue("limited", concurrency_limit=3))
    def job() -> None: ...

    with respx.mock(base_url=URL) as mock:
        limit = mock.put("/v1/queues/limited").mock(return_value=httpx.Response(200, json={}))
        sent = mock.post("/v1/tasks").mock(side_effect=[
            httpx.Response(201, json={"id": 1, "duplicate": False}),
            httpx.Response(201, json={"id": 2, "duplicate": False})])
        assert [job.send().id, job.send().id] == [1, 2]
    assert limit.call_count == 1 and sent.call_count == 2


def _run_body(status: str) -> dict[str, Any]:
    return {"id": 5, "workflow_name": "wf", "status": status, "nodes": [], "finished": True}


def test_handles_keep_their_client(defaults: None) -> None:
    """A handle made with an explicit client talks to that client's server, not the
    default's (respx fails any request to the default URL: nothing is mocked there)."""
    with respx.mock(base_url=OTHER, assert_all_called=False) as mock, \
            Client(OTHER, retries=0) as other:
        mock.get("/v1/workflow-runs/5").mock(
            return_value=httpx.Response(200, json=_run_body("running")))
        mock.get("/v1/workflow-runs/5/wait").mock(
            return_value=httpx.Response(200, json=_run_body("succeeded")))
        mock.get("/v1/workflow-runs/5/channel/k").mock(
            return_value=httpx.Response(200, json={"key": "k", "value": 7}))
        mock.get("/v1/tasks/9").mock(
            return_value=httpx.Response(200, json={"id": 9, "status": "succeeded",
                                                   "result": 3}))
        mock.get("/v1/kv/a").mock(return_value=httpx.Response(200, json={"value": "x"}))
        run = WorkflowRun(5, client=other)
        assert run.refresh().status == "running"
        assert run.result(timeout=5) == {}
        assert run.channel.get("k") == 7
        assert Channel(5, client=other).get("k") == 7
        assert TaskRun(9, client=other).result(timeout=5) == 3
        assert KVStore(client=other).get("a") == "x"

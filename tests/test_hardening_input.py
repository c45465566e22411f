"""Issue 9, items 2, 3, 7 and 9: hostile input refused with a 4xx JSON body, nothing stored.

2. One nesting limit (``MAX_JSON_DEPTH``, counted over the whole body) on every JSON body: at
   the limit a value is stored and every read of it answers; one past it is ``422 too_deep``.
3. A path that is not UTF-8 once percent-decoded is refused, never read as U+FFFD.
7. NaN and infinities, top level or nested, are refused by the server (``400 malformed_json``:
   they are not JSON, like a number that overflows a double) and nothing is stored.
9. 401 carries ``WWW-Authenticate: Bearer``, 405 carries ``Allow``; channel keys with ``/``
   work on every channel route; worker ``info`` has a size limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from branchwork import Client
from branchwork import _calls as calls
from branchwork.app.jsonutil import depth
from branchwork.protocol import MAX_JSON_DEPTH, MAX_WORKER_INFO_BYTES
from orchestration_helpers import register_workflow, start_run


def nest(levels: int) -> Any:
    """A value nested ``levels`` deep (``1`` when 0)."""
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def sized(body: Callable[[Any], dict[str, Any]], total: int) -> dict[str, Any]:
    """``body(value)`` with ``value`` nested so that the whole body is ``total`` deep."""
    for levels in range(total):
        built = body(nest(levels))
        if depth(built) == total:
            return built
    raise AssertionError(f"no body of depth {total}")


def _worker(value: Any) -> dict[str, Any]:
    return {"worker_id": "w", "info": {"k": value}}


def _task(value: Any) -> dict[str, Any]:
    return {"name": "t", "args": value}


def _batch(value: Any) -> dict[str, Any]:
    return {"tasks": [{"name": "t", "args": value}]}


def _schedule(value: Any) -> dict[str, Any]:
    return {"target": "t", "cron": "0 0 * * *", "args": value}


def _channel(value: Any) -> dict[str, Any]:
    return {"value": value}


def _run(value: Any) -> dict[str, Any]:
    return {"args": value}


def _workflow(value: Any) -> dict[str, Any]:
    return {"name": "deep", "nodes": [{"name": "a", "task": "a"}], "edges": [],
            "args_schema": {"type": "object", "default": value}}


@pytest.mark.parametrize(("write", "body", "read"), [
    ("POST /v1/tasks", _task, "/v1/tasks"),
    ("POST /v1/tasks/batch", _batch, "/v1/tasks"),
    ("PUT /v1/schedules/s", _schedule, "/v1/schedules"),
    ("POST /v1/workers/register", _worker, "/v1/workers"),
    ("PUT /v1/workflows/deep", _workflow, "/v1/workflows/deep"),
    ("POST /v1/workflows/flow/runs", _run, "/v1/workflow-runs"),
    ("PUT /v1/workflow-runs/{run}/channel/k", _channel, "/v1/workflow-runs/{run}"),
])
def test_depth_limit_at_the_limit_and_one_past(api: httpx.Client, write: str, body: Any,
                                               read: str) -> None:
    register_workflow(api, "flow", [{"name": "a", "task": "a"}], [])
    run = start_run(api, "flow")
    method, path = write.split(" ")
    path, read = path.format(run=run), read.format(run=run)
    before = api.get(read).json()
    past = api.request(method, path, json=sized(body, MAX_JSON_DEPTH + 1))
    assert past.status_code == 422, past.text
    assert past.json()["code"] == "too_deep"
    assert past.json()["details"] == {"limit": MAX_JSON_DEPTH}
    assert api.get(read).json() == before  # nothing stored
    at = api.request(method, path, json=sized(body, MAX_JSON_DEPTH))
    assert at.status_code in (200, 201), at.text
    # what was stored can be read back, by the API and the studio
    assert api.get(read).status_code == 200
    assert api.get("/studio/", follow_redirects=True).status_code == 200


def test_deep_report_result_is_refused_and_changes_nothing(api: httpx.Client) -> None:
    tid = api.post("/v1/tasks", json={"name": "t"}).json()["id"]
    [t] = api.post("/v1/claim", json={"worker_id": "w"}).json()["tasks"]

    def report(value: Any) -> dict[str, Any]:
        return {"results": [{"id": tid, "lease_token": t["lease_token"],
                             "outcome": "succeeded", "result": value}]}

    past = api.post("/v1/tasks/report", json=sized(report, MAX_JSON_DEPTH + 1))
    assert past.status_code == 422 and past.json()["code"] == "too_deep"
    assert api.get(f"/v1/tasks/{tid}").json()["status"] == "running"
    assert api.post("/v1/tasks/report", json=sized(report, MAX_JSON_DEPTH)).status_code == 200
    assert api.get(f"/v1/tasks/{tid}").json()["status"] == "succeeded"


def test_brackets_inside_strings_do_not_count(api: httpx.Client) -> None:
    args = {"text": "[" * 300 + "{" * 300, "more": "]]]]}}}}" * 50}
    r = api.post("/v1/tasks", json={"name": "t", "args": args})
    assert r.status_code == 201, r.text
    assert api.get(f"/v1/tasks/{r.json()['id']}").json()["args"] == args


@pytest.mark.parametrize("path", ["/v1/kv/%FF", "/v1/kv/%FE", "/v1/kv/a%C3", "/v1/schedules/%FF"])
def test_invalid_utf8_in_a_path_is_refused(api: httpx.Client, path: str) -> None:
    body = {"value": "x"} if "/kv/" in path else {"target": "t", "cron": "0 0 * * *"}
    put = api.put(path, json=body)
    assert put.status_code == 400, put.text
    assert put.json()["code"] == "invalid_path"
    assert api.get(path).status_code == 400
    assert api.get("/v1/kv").json()["items"] == []
    assert api.get("/v1/schedules").json()["schedules"] == []
    # the studio too
    assert api.get("/studio/schedules/%FF").status_code == 400


def test_valid_utf8_in_a_path_still_works(api: httpx.Client) -> None:
    assert api.put("/v1/kv/%C3%A9t%C3%A9", json={"value": "summer"}).status_code == 200
    assert api.get("/v1/kv/%C3%A9t%C3%A9").json()["value"] == "summer"
    assert [k["key"] for k in api.get("/v1/kv").json()["items"]] == ["été"]


@pytest.mark.parametrize("text", [
    '{"name": "t", "args": NaN}',
    '{"name": "t", "args": {"n": NaN}}',
    '{"name": "t", "args": {"a": [1, {"b": Infinity}]}}',
    '{"name": "t", "args": [-Infinity]}',
])
def test_non_finite_numbers_are_refused_by_the_server(api: httpx.Client, text: str) -> None:
    r = api.post("/v1/tasks", content=text, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "malformed_json"
    assert api.get("/v1/tasks").json()["tasks"] == []


def test_the_words_nan_and_infinity_in_strings_are_fine(api: httpx.Client) -> None:
    r = api.post("/v1/tasks", json={"name": "t", "args": {"NaN": "Infinity"}})
    assert r.status_code == 201, r.text


def test_401_says_bearer(make_server) -> None:
    server = make_server(api_token="s3cret")
    with httpx.Client(base_url=server.url) as c:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "Basic eA=="}):
            r = c.get("/v1/tasks", headers=headers)
            assert r.status_code == 401
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert r.json()["code"] == "unauthorized"


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("DELETE", "/v1/tasks", {"GET", "POST"}),
    ("PUT", "/v1/tasks/1/cancel", {"POST"}),
    ("POST", "/v1/kv", {"GET"}),
])
def test_405_says_allow(api: httpx.Client, method: str, path: str, allowed: set[str]) -> None:
    r = api.request(method, path)
    assert r.status_code == 405
    assert r.json()["code"] == "method_not_allowed"
    assert {m.strip() for m in r.headers["allow"].split(",")} >= allowed


def test_channel_keys_with_a_slash_work_on_every_route(api: httpx.Client, server) -> None:
    register_workflow(api, "flow", [{"name": "a", "task": "a"}], [])
    run = start_run(api, "flow")
    base = f"/v1/workflow-runs/{run}/channel"
    assert api.put(f"{base}/a/b", json={"value": 1}).status_code == 200
    assert api.get(f"{base}/a%2Fb").json()["value"] == 1
    assert api.post(f"{base}/a/b/increment", json={"by": 2}).json()["value"] == 3
    assert api.get(f"{base}/a/b").json()["value"] == 3
    assert [e["key"] for e in api.get(base).json()["entries"]] == ["a/b"]
    with Client(url=server.url, retries=0) as client:
        client.execute(calls.channel_set(run, "x/y", {"deep": True}))
        assert client.execute(calls.channel_get(run, "x/y"))["value"] == {"deep": True}
        assert client.execute(calls.channel_increment(run, "c/n", 5)) == 5


def test_worker_info_has_a_size_limit(api: httpx.Client) -> None:
    big = {"blob": "x" * MAX_WORKER_INFO_BYTES}
    r = api.post("/v1/workers/register", json={"worker_id": "w", "info": big})
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "payload_too_large"
    assert api.get("/v1/workers").json()["workers"] == []
    fine = {"blob": "x" * (MAX_WORKER_INFO_BYTES - 100)}
    assert api.post("/v1/workers/register",
                    json={"worker_id": "w", "info": fine}).status_code == 200

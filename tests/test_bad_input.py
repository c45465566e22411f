"""Bad input gets a 4xx with the JSON error body and changes nothing (never a 500)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

import pg
from servers import ThreadServer, thread_server

TABLES = ("tasks", "task_events", "task_logs", "queues", "workers", "task_definitions", "kv")
PAYLOAD_LIMIT = 2048


def snapshot(db_url: str) -> dict[str, str]:
    return pg.fingerprint(db_url, TABLES)


@pytest.fixture(scope="module")
def shared(pg_server: str, template_db: str) -> Iterator[tuple[ThreadServer, str]]:
    """One server and database for the whole module: the cases are many and change nothing."""
    name = pg.clone(pg_server, template_db)
    url = pg.with_database(pg_server, name)
    with thread_server(url, max_payload_bytes=PAYLOAD_LIMIT, max_request_bytes=200_000,
                       max_batch=50, lease_seconds=3600) as server:
        yield server, url
    pg.drop(pg_server, name)


@pytest.fixture(scope="module")
def running(shared: tuple[ThreadServer, str]) -> dict:
    """A task running under a known lease, and one that succeeded."""
    server, _ = shared
    with httpx.Client(base_url=server.url) as c:
        c.put("/v1/kv/existing", json={"value": "1"})
        c.put("/v1/kv/big", json={"value": str(2**62 + 2**61)})
        c.put("/v1/kv/huge", json={"value": "9" * 19})
        done = c.post("/v1/tasks", json={"name": "done"}).json()["id"]
        [t] = c.post("/v1/claim", json={"worker_id": "w", "task_names": ["done"]}).json()["tasks"]
        c.post(f"/v1/tasks/{done}/complete", json={"lease_token": t["lease_token"]})
        tid = c.post("/v1/tasks", json={"name": "held"}).json()["id"]
        [t] = c.post("/v1/claim", json={"worker_id": "w", "task_names": ["held"]}).json()["tasks"]
        return {"id": tid, "token": t["lease_token"], "done": done}


def raw(body: str) -> dict:
    return {"content": body.encode(), "headers": {"content-type": "application/json"}}


BIG = "x" * (PAYLOAD_LIMIT + 10)

CASES: list[tuple[str, str, str, dict, int, str | None]] = [
    # (id, method, path, request kwargs, status, code)
    ("malformed-json", "POST", "/v1/tasks", raw('{"name": "x",'), 400, "malformed_json"),
    ("not-an-object", "POST", "/v1/tasks", raw('[1, 2]'), 422, "validation_error"),
    ("empty-body", "POST", "/v1/tasks", raw(""), 422, None),
    ("nan", "POST", "/v1/tasks", raw('{"name": "x", "args": NaN}'), 400, "malformed_json"),
    ("infinity", "POST", "/v1/tasks", raw('{"name": "x", "args": [Infinity]}'), 400,
     "malformed_json"),
    ("neg-infinity", "POST", "/v1/tasks", raw('{"name": "x", "args": -Infinity}'), 400,
     "malformed_json"),
    ("float-overflow", "POST", "/v1/tasks", raw('{"name": "x", "args": 1e400}'), 400,
     "malformed_json"),
    ("int-over-64-bits", "POST", "/v1/tasks", raw('{"name": "x", "args": {"n": 18446744073709551616}}'),
     400, "malformed_json"),
    ("int-under-64-bits", "POST", "/v1/tasks",
     raw('{"name": "x", "args": [-9223372036854775809]}'), 400, "malformed_json"),
    ("int-over-64-in-batch", "POST", "/v1/tasks/batch",
     raw('{"tasks": [{"name": "ok"}, {"name": "x", "args": 99999999999999999999999}]}'), 400,
     "malformed_json"),
    ("lone-surrogate", "POST", "/v1/tasks", raw('{"name": "x", "args": "\\ud800"}'), 400,
     "malformed_json"),
    ("invalid-utf8", "POST", "/v1/tasks",
     {"content": b'{"name": "x", "args": "\xff\xfe"}',
      "headers": {"content-type": "application/json"}}, 400, "malformed_json"),
    ("deep-nesting", "POST", "/v1/tasks",
     raw('{"name": "x", "args": ' + "[" * 5000 + "]" * 5000 + "}"), 400, "malformed_json"),
    ("nul-in-args", "POST", "/v1/tasks", raw('{"name": "x", "args": "a\\u0000b"}'), 422,
     "nul_character"),
    ("nul-in-key", "POST", "/v1/tasks", raw('{"name": "x", "args": {"a\\u0000": 1}}'), 422,
     "nul_character"),
    ("nul-in-name", "POST", "/v1/tasks", raw('{"name": "x\\u0000"}'), 422, "nul_character"),
    ("raw-nul-byte", "POST", "/v1/tasks",
     {"content": b'{"name": "x\x00"}', "headers": {"content-type": "application/json"}}, 400,
     "malformed_json"),
    ("wrong-content-type", "POST", "/v1/tasks",
     {"content": b'{"name": "x"}', "headers": {"content-type": "text/plain"}}, 415,
     "unsupported_media_type"),
    ("form-content-type", "POST", "/v1/tasks",
     {"content": b"name=x", "headers": {"content-type": "application/x-www-form-urlencoded"}},
     415, "unsupported_media_type"),
    ("unknown-field", "POST", "/v1/tasks", {"json": {"name": "x", "priorty": 9}}, 422,
     "validation_error"),
    ("wrong-type-name", "POST", "/v1/tasks", {"json": {"name": 5}}, 422, "validation_error"),
    ("wrong-type-priority", "POST", "/v1/tasks", {"json": {"name": "x", "priority": "high"}},
     422, "validation_error"),
    ("string-priority", "POST", "/v1/tasks", {"json": {"name": "x", "priority": "5"}}, 422,
     "validation_error"),
    ("bool-priority", "POST", "/v1/tasks", {"json": {"name": "x", "priority": True}}, 422,
     "validation_error"),
    ("string-delay", "POST", "/v1/tasks", {"json": {"name": "x", "delay_seconds": "1"}}, 422,
     "validation_error"),
    ("string-parent", "POST", "/v1/tasks", {"json": {"name": "x", "parent_id": "1"}}, 422,
     "validation_error"),
    ("claim-string-limit", "POST", "/v1/claim", {"json": {"worker_id": "w", "limit": "5"}},
     422, "validation_error"),
    ("queue-string-paused", "PUT", "/v1/queues/q", {"json": {"paused": "yes"}}, 422,
     "validation_error"),
    ("float-priority", "POST", "/v1/tasks", {"json": {"name": "x", "priority": 2.5}}, 422,
     "validation_error"),
    ("bool-max-retries", "POST", "/v1/tasks", {"json": {"name": "x", "max_retries": [1]}},
     422, "validation_error"),
    ("priority-0", "POST", "/v1/tasks", {"json": {"name": "x", "priority": 0}}, 422,
     "validation_error"),
    ("priority-11", "POST", "/v1/tasks", {"json": {"name": "x", "priority": 11}}, 422,
     "validation_error"),
    ("priority-huge", "POST", "/v1/tasks", {"json": {"name": "x", "priority": 2**63}}, 400,
     "malformed_json"),
    ("empty-name", "POST", "/v1/tasks", {"json": {"name": ""}}, 422, "validation_error"),
    ("long-name", "POST", "/v1/tasks", {"json": {"name": "n" * 201}}, 422, "validation_error"),
    ("name-with-space", "POST", "/v1/tasks", {"json": {"name": "a b"}}, 422,
     "validation_error"),
    ("missing-name", "POST", "/v1/tasks", {"json": {"args": 1}}, 422, "validation_error"),
    ("empty-queue", "POST", "/v1/tasks", {"json": {"name": "x", "queue": ""}}, 422,
     "validation_error"),
    ("long-queue", "POST", "/v1/tasks", {"json": {"name": "x", "queue": "q" * 101}}, 422,
     "validation_error"),
    ("negative-delay", "POST", "/v1/tasks", {"json": {"name": "x", "delay_seconds": -1}}, 422,
     "validation_error"),
    ("delay-and-run-at", "POST", "/v1/tasks",
     {"json": {"name": "x", "delay_seconds": 1, "run_at": "2030-01-01T00:00:00Z"}}, 422,
     "validation_error"),
    ("bad-run-at", "POST", "/v1/tasks", {"json": {"name": "x", "run_at": "tomorrow"}}, 422,
     "validation_error"),
    ("bad-backoff", "POST", "/v1/tasks", {"json": {"name": "x", "retry_backoff": "random"}},
     422, "validation_error"),
    ("zero-timeout", "POST", "/v1/tasks", {"json": {"name": "x", "timeout_seconds": 0}}, 422,
     "validation_error"),
    ("spawn-key-no-parent", "POST", "/v1/tasks", {"json": {"name": "x", "spawn_key": "k"}},
     422, "validation_error"),
    ("unknown-parent", "POST", "/v1/tasks", {"json": {"name": "x", "parent_id": 777777}}, 422,
     "unknown_parent"),
    ("huge-parent", "POST", "/v1/tasks", {"json": {"name": "x", "parent_id": 2**64}}, 400,
     "malformed_json"),
    ("args-too-large", "POST", "/v1/tasks", {"json": {"name": "x", "args": BIG}}, 413,
     "payload_too_large"),
    ("args-too-large-in-batch", "POST", "/v1/tasks/batch",
     {"json": {"tasks": [{"name": "x"}, {"name": "x", "args": [BIG]}]}}, 413,
     "payload_too_large"),
    ("request-too-large", "POST", "/v1/tasks/batch",
     {"json": {"tasks": [{"name": "x", "args": "y" * 1000} for _ in range(300)]}}, 413,
     "payload_too_large"),
    ("batch-over-limit", "POST", "/v1/tasks/batch",
     {"json": {"tasks": [{"name": "x"} for _ in range(51)]}}, 413, "batch_too_large"),
    ("empty-batch", "POST", "/v1/tasks/batch", {"json": {"tasks": []}}, 422,
     "validation_error"),
    ("unknown-task", "GET", "/v1/tasks/123456789", {}, 404, "not_found"),
    ("huge-task-id", "GET", "/v1/tasks/99999999999999999999999999", {}, 422,
     "validation_error"),
    ("negative-task-id", "GET", "/v1/tasks/-1", {}, 422, "validation_error"),
    ("text-task-id", "GET", "/v1/tasks/abc", {}, 422, "validation_error"),
    ("huge-id-cancel", "POST", "/v1/tasks/9223372036854775808/cancel", {}, 422,
     "validation_error"),
    ("unknown-cancel", "POST", "/v1/tasks/9223372036854775807/cancel", {}, 404, "not_found"),
    ("unknown-retry", "POST", "/v1/tasks/9223372036854775807/retry", {}, 404, "not_found"),
    ("nul-in-query", "GET", "/v1/tasks?name=a%00b", {}, 400, "nul_character"),
    ("bad-status-filter", "GET", "/v1/tasks?status=done", {}, 422, "validation_error"),
    ("huge-cursor", "GET", "/v1/tasks?cursor=99999999999999999999", {}, 422,
     "validation_error"),
    ("limit-0", "GET", "/v1/tasks?limit=0", {}, 422, "validation_error"),
    ("claim-no-worker", "POST", "/v1/claim", {"json": {"queues": ["default"]}}, 422,
     "validation_error"),
    ("claim-empty-worker", "POST", "/v1/claim", {"json": {"worker_id": ""}}, 422,
     "validation_error"),
    ("claim-limit-0", "POST", "/v1/claim", {"json": {"worker_id": "w", "limit": 0}}, 422,
     "validation_error"),
    ("claim-negative-wait", "POST", "/v1/claim", {"json": {"worker_id": "w", "wait_seconds": -1}},
     422, "validation_error"),
    ("claim-no-queues", "POST", "/v1/claim", {"json": {"worker_id": "w", "queues": []}}, 422,
     "validation_error"),
    ("claim-bad-queue", "POST", "/v1/claim", {"json": {"worker_id": "w", "queues": ["a b"]}},
     422, "validation_error"),
    ("claim-bracket-glob", "POST", "/v1/claim",
     {"json": {"worker_id": "w", "queues": ["reports.[ab]"]}}, 422, "validation_error"),
    ("heartbeat-bad-token", "POST", "/v1/heartbeat",
     {"json": {"worker_id": "w", "tasks": [{"id": 1, "lease_token": "nope"}]}}, 422,
     "validation_error"),
    ("complete-bad-token", "POST", "/v1/tasks/1/complete", {"json": {"lease_token": "zz"}},
     422, "validation_error"),
    ("complete-unknown-task", "POST", "/v1/tasks/123456789/complete",
     {"json": {"lease_token": str(uuid.uuid4())}}, 404, "not_found"),
    ("report-empty", "POST", "/v1/tasks/report", {"json": {"results": []}}, 422,
     "validation_error"),
    ("report-bad-outcome", "POST", "/v1/tasks/report", {"json": {"results": [
        {"id": 1, "lease_token": str(uuid.uuid4()), "outcome": "maybe"}]}}, 422,
     "validation_error"),
    ("kv-nul-in-key", "PUT", "/v1/kv/a%00b", {"json": {"value": "v"}}, 400, "nul_character"),
    ("kv-nul-in-value", "PUT", "/v1/kv/k", raw('{"value": "a\\u0000"}'), 422,
     "nul_character"),
    ("kv-long-key", "PUT", "/v1/kv/" + "k" * 513, {"json": {"value": "v"}}, 422,
     "validation_error"),
    ("kv-value-too-large", "PUT", "/v1/kv/k", {"json": {"value": BIG}}, 413,
     "payload_too_large"),
    ("kv-value-not-string", "PUT", "/v1/kv/k", {"json": {"value": 5}}, 422, "validation_error"),
    ("kv-increment-beyond-limit", "POST", "/v1/kv/existing/increment", {"json": {"by": 2**62 + 1}},
     422, "validation_error"),
    ("kv-increment-overflow", "POST", "/v1/kv/big/increment", {"json": {"by": 2**62}}, 422,
     "invalid_value"),
    ("kv-increment-huge-value", "POST", "/v1/kv/huge/increment", {"json": {"by": 1}}, 422,
     "invalid_value"),
    ("kv-increment-not-int", "POST", "/v1/kv/existing/increment", {"json": {"by": 1.5}}, 422,
     "validation_error"),
    ("kv-increment-huge", "POST", "/v1/kv/existing/increment", {"json": {"by": 2**63}}, 400,
     "malformed_json"),
    ("queue-negative-limit", "PUT", "/v1/queues/q", {"json": {"concurrency_limit": -1}}, 422,
     "validation_error"),
    ("queue-bad-name", "PUT", "/v1/queues/a%20b", {"json": {"paused": True}}, 422,
     "validation_error"),
    ("unknown-route", "GET", "/v1/nothing-here", {}, 404, "not_found"),
    ("wrong-method", "DELETE", "/v1/tasks", {}, 405, "method_not_allowed"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "code"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_and_changes_nothing(
    shared: tuple[ThreadServer, str], running: dict, method: str, path: str, kwargs: dict,
    status: int, code: str | None,
) -> None:
    server, db_url = shared
    before = snapshot(db_url)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        resp = c.request(method, path, **kwargs)
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"code", "message", "details"}, body
    assert isinstance(body["message"], str) and body["message"]
    if code is not None:
        assert body["code"] == code, body
    assert snapshot(db_url) == before


LEASE_CASES = [
    ("complete", lambda r: (f"/v1/tasks/{r['id']}/complete",
                            {"lease_token": str(uuid.uuid4()), "result": 1})),
    ("fail", lambda r: (f"/v1/tasks/{r['id']}/fail", {"lease_token": str(uuid.uuid4())})),
    ("complete-finished", lambda r: (f"/v1/tasks/{r['done']}/complete",
                                     {"lease_token": str(uuid.uuid4())})),
    ("result-too-large", lambda r: (f"/v1/tasks/{r['id']}/complete",
                                    {"lease_token": r["token"], "result": BIG})),
    ("result-int-over-64", lambda r: (f"/v1/tasks/{r['id']}/complete", None)),
    ("report-duplicate-ids", lambda r: ("/v1/tasks/report", {"results": [
        {"id": r["id"], "lease_token": r["token"], "outcome": "succeeded"},
        {"id": r["id"], "lease_token": r["token"], "outcome": "failed"}]})),
]


@pytest.mark.parametrize("case", [c[1] for c in LEASE_CASES], ids=[c[0] for c in LEASE_CASES])
def test_bad_reports_change_nothing(shared: tuple[ThreadServer, str], running: dict,
                                   case) -> None:
    server, db_url = shared
    path, body = case(running)
    before = snapshot(db_url)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        if body is None:
            token = running["token"]
            resp = c.post(path, **raw(f'{{"lease_token": "{token}", "result": 1844674407370955161600}}'))
        else:
            resp = c.post(path, json=body)
    assert 400 <= resp.status_code < 500, resp.text
    assert set(resp.json()) == {"code", "message", "details"}
    assert snapshot(db_url) == before
    # the task is still held by its worker
    with httpx.Client(base_url=server.url) as c:
        assert c.get(f"/v1/tasks/{running['id']}").json()["status"] == "running"


def test_stale_heartbeat_and_release_change_nothing(shared: tuple[ThreadServer, str],
                                                    running: dict) -> None:
    server, db_url = shared
    stale = [{"id": running["id"], "lease_token": str(uuid.uuid4())}]
    with httpx.Client(base_url=server.url) as c:
        c.post("/v1/heartbeat", json={"worker_id": "w", "tasks": []})  # register w once
        before = snapshot(db_url)
        released = c.post("/v1/tasks/release", json={"worker_id": "w", "tasks": stale})
        assert released.json() == {"released": []}
        assert snapshot(db_url) == before
        hb = c.post("/v1/heartbeat", json={"worker_id": "w", "tasks": stale}).json()
        assert hb["lost"] == [running["id"]]

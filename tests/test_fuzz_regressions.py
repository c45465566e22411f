"""Regressions found by fuzzing the API (schemathesis and hand-made nasty input).

Each case once got a 500 or a 2xx for input the API's rules refuse; now it must get a 4xx with
the error body ``{code, message, details}`` and leave every table as it was.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

import pg

# Every table a request could write to (leader_leases changes on its own and is left out).
TABLES = ("tasks", "task_events", "task_logs", "queues", "workers", "task_definitions", "kv",
          "workflows", "workflow_runs", "workflow_nodes", "workflow_channel", "schedules")


def snapshot(db_url: str) -> dict[str, str]:
    return pg.fingerprint(db_url, TABLES)


def assert_refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == code
    assert body["message"]
    return body


SCHEDULE = {"target": "report", "cron": "0 3 * * *", "paused": True}


@pytest.mark.parametrize("timezone", ["America", "Etc", "Europe"])
def test_schedule_time_zone_folder_is_refused(api: httpx.Client, db_url: str,
                                              timezone: str) -> None:
    # "America" is a folder of the zone database: ZoneInfo raised IsADirectoryError, a 500.
    assert api.put("/v1/schedules/existing", json=SCHEDULE).status_code == 200
    before = snapshot(db_url)
    r = api.put("/v1/schedules/existing", json={**SCHEDULE, "timezone": timezone})
    body = assert_refused(r, 422, "validation_error")
    assert body["details"][0]["loc"] == ["body", "timezone"]
    r = api.post("/v1/schedules/register", json={"schedules": [
        {**SCHEDULE, "name": "from-worker", "timezone": timezone}]})
    assert_refused(r, 422, "validation_error")
    assert snapshot(db_url) == before
    assert api.get("/v1/schedules/existing").json()["timezone"] == "UTC"


@pytest.mark.parametrize("cron", ["0 0 31 2 *", "0 0 30 2 *", "0 12 31 4,6,9,11 *",
                                  "* * 31 2 * 5"])
def test_schedule_cron_that_never_fires_is_refused(api: httpx.Client, db_url: str,
                                                   cron: str) -> None:
    # Valid syntax, no such date: croniter failed only when asked for the next fire (a 500).
    assert api.put("/v1/schedules/existing", json=SCHEDULE).status_code == 200
    before = snapshot(db_url)
    body = assert_refused(api.put("/v1/schedules/existing", json={**SCHEDULE, "cron": cron}),
                          422, "validation_error")
    assert "never fires" in body["details"][0]["msg"]
    r = api.post("/v1/schedules/register", json={"schedules": [
        {**SCHEDULE, "name": "from-worker", "cron": cron}]})
    assert_refused(r, 422, "validation_error")
    assert snapshot(db_url) == before
    assert api.get("/v1/schedules/existing").json()["cron"] == SCHEDULE["cron"]


def test_schedule_feb_29_still_accepted(api: httpx.Client) -> None:
    """The never-fires check must not refuse a rare but real date."""
    r = api.put("/v1/schedules/leap", json={**SCHEDULE, "cron": "0 0 29 2 *"})
    assert r.status_code == 200, r.text
    assert r.json()["next_fire_at"][5:10] == "02-29"


def test_worker_register_with_a_task_name_twice_is_refused(api: httpx.Client,
                                                           db_url: str) -> None:
    # One upsert statement cannot write a row twice: CardinalityViolation, a 500.
    ok = api.post("/v1/workers/register", json={"worker_id": "w1", "tasks": [
        {"name": "a", "queue": "q1"}]})
    assert ok.status_code == 200
    before = snapshot(db_url)
    r = api.post("/v1/workers/register", json={"worker_id": "w1", "queues": ["q2"], "tasks": [
        {"name": "a", "queue": "q2"}, {"name": "b"}, {"name": "a", "queue": "q3"}]})
    body = assert_refused(r, 422, "validation_error")
    assert "repeated: a" in body["details"][0]["msg"]
    assert snapshot(db_url) == before
    [definition] = api.get("/v1/task-definitions").json()["definitions"]
    assert (definition["name"], definition["queue"]) == ("a", "q1")


NODE = {"name": "a", "task": "t"}
WORKFLOW = {"name": "wf", "nodes": [NODE]}

# Numbers and booleans in bodies must be JSON numbers and booleans (docs/api.md, Conventions):
# these were coerced (false to 0.0, "3" to 3, "yes" to true) and accepted with a 200.
LAX_BODIES = [
    ("PUT", "/v1/workflows/wf", {**WORKFLOW, "nodes": [{**NODE, "retry_max_delay_seconds": False}]}),
    ("PUT", "/v1/workflows/wf", {**WORKFLOW, "nodes": [{**NODE, "max_retries": "3"}]}),
    ("PUT", "/v1/workflows/wf", {**WORKFLOW, "nodes": [{**NODE, "max_cycles": True}]}),
    ("PUT", "/v1/workflows/wf", {**WORKFLOW, "nodes": [{**NODE, "timeout_seconds": "5"}]}),
    ("PUT", "/v1/workflows/wf", {**WORKFLOW, "timeout_seconds": "60"}),
    ("POST", "/v1/workflows/wf/runs", {"timeout_seconds": "60"}),
    ("PUT", "/v1/schedules/s", {**SCHEDULE, "paused": "yes"}),
    ("PUT", "/v1/schedules/s", {**SCHEDULE, "grace_seconds": "5"}),
    ("PUT", "/v1/schedules/s", {**SCHEDULE, "options": {"max_retries": "3"}}),
    ("PUT", "/v1/schedules/s", {**SCHEDULE, "options": {"retry_delay_seconds": True}}),
]


def test_workflow_and_schedule_bodies_do_not_guess_types(api: httpx.Client,
                                                         db_url: str) -> None:
    assert api.put("/v1/workflows/wf", json=WORKFLOW).status_code == 200
    before = snapshot(db_url)
    for method, path, body in LAX_BODIES:
        r = api.request(method, path, json=body)
        assert_refused(r, 422, "validation_error")
    assert snapshot(db_url) == before
    # The same fields with JSON numbers and booleans are accepted (ints where seconds go, too).
    r = api.put("/v1/workflows/wf", json={**WORKFLOW, "timeout_seconds": 60, "nodes": [
        {**NODE, "max_retries": 3, "retry_max_delay_seconds": 0, "timeout_seconds": 5.5}]})
    assert r.status_code == 200, r.text
    r = api.put("/v1/schedules/s", json={**SCHEDULE, "grace_seconds": 5,
                                         "options": {"max_retries": 3}})
    assert r.status_code == 200, r.text


def test_channel_increment_and_directive_do_not_guess_types(api: httpx.Client,
                                                            db_url: str) -> None:
    assert api.put("/v1/workflows/wf", json=WORKFLOW).status_code == 200
    run_id = api.post("/v1/workflows/wf/runs", json={}).json()["id"]
    assert api.put(f"/v1/workflow-runs/{run_id}/channel/n", json={"value": 1}).status_code == 200
    [task] = api.post("/v1/claim", json={"worker_id": "w", "task_names": ["t"],
                                         "wait_seconds": 5}).json()["tasks"]
    before = snapshot(db_url)
    for by in (True, "2", 1.0):
        r = api.post(f"/v1/workflow-runs/{run_id}/channel/n/increment", json={"by": by})
        assert_refused(r, 422, "validation_error")
    directive = {"task_id": task["id"], "lease_token": task["lease_token"], "action": "terminate"}
    for bad in ({"task_id": str(task["id"])}, {"goto": "true"}, {"goto": 1}):
        r = api.post(f"/v1/workflow-runs/{run_id}/directives", json={**directive, **bad})
        assert_refused(r, 422, "validation_error")
    assert snapshot(db_url) == before
    r = api.post(f"/v1/workflow-runs/{run_id}/channel/n/increment", json={"by": 2})
    assert r.json()["value"] == 3


def test_openapi_document_renders_and_tells_the_real_error_body(api: httpx.Client) -> None:
    assert api.get("/docs").status_code == 200
    r = api.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    operations = [(m, p, op) for p, ops in doc["paths"].items() for m, op in ops.items()]
    assert len(operations) > 40
    assert [f"{m} {p}" for m, p, op in operations if not op.get("summary")] == []
    error = {"$ref": "#/components/schemas/Error"}
    assert set(doc["components"]["schemas"]["Error"]["required"]) == {"code", "message",
                                                                       "details"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for method, path, op in operations:
        for status in ("4XX", *(s for s in op["responses"] if s.startswith("4"))):
            schema = op["responses"][status]["content"]["application/json"]["schema"]
            assert schema == error, (method, path, status)
    # JSON bodies are described as JSON, not as a string (they were: {"type": "string"}).
    send = doc["paths"]["/v1/tasks/{task_id}"]["get"]["responses"]["200"]
    assert send["content"]["application/json"]["schema"].get("type") != "string"


def test_refused_send_to_a_new_queue_leaves_no_queue_behind(api: httpx.Client,
                                                            db_url: str) -> None:
    # The queue row used to be committed on its own before the insert: a send refused for an
    # unknown parent still left an empty queue in GET /v1/queues and the studio.
    before = snapshot(db_url)
    r = api.post("/v1/tasks", json={"name": "t", "queue": "fresh", "parent_id": 777777})
    assert_refused(r, 422, "unknown_parent")
    r = api.post("/v1/tasks/batch", json={"tasks": [{"name": "t", "queue": "fresh2"},
                                                    {"name": "t", "parent_id": 777777}]})
    assert_refused(r, 422, "unknown_parent")
    assert snapshot(db_url) == before
    assert "fresh" not in {q["name"] for q in api.get("/v1/queues").json()["queues"]}
    # Accepted, the same send creates the queue with its task, and a glob claim finds both.
    tid = api.post("/v1/tasks", json={"name": "t", "queue": "fresh"}).json()["id"]
    [queue] = [q for q in api.get("/v1/queues").json()["queues"] if q["name"] == "fresh"]
    assert queue["queued"] == 1
    [task] = api.post("/v1/claim", json={"worker_id": "w", "queues": ["fre*"]}).json()["tasks"]
    assert task["id"] == tid

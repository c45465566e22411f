"""Bad flow-control input (docs/flow-control.md) gets a clear 4xx and changes nothing.

Helper A's part: rate limits and concurrency keys. (Debounce and uniqueness: further down.)"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

TOO_LONG = "k" * 513  # protocol.KEY_MAX is 512


def _state(api: httpx.Client) -> tuple[Any, Any, Any]:
    tasks = api.get("/v1/tasks").json()["tasks"]
    limits = api.get("/v1/rate-limits").json()["rate_limits"]
    queues = api.get("/v1/queues").json()["queues"]
    return tasks, limits, queues


BAD_LIMITS = [
    {"units": -1, "period_seconds": 1},
    {"units": 0, "period_seconds": 1},
    {"units": 10, "period_seconds": 0},
    {"units": 10, "period_seconds": -5},
    {"units": 10, "period_seconds": 1, "burst": -1},
    {"units": 10},
    {"units": "10", "period_seconds": 1},
    {"units": 10, "period_seconds": 1, "extra": True},
]


def test_bad_rate_limits_are_refused(api: httpx.Client) -> None:
    api.put("/v1/rate-limits/kept", json={"units": 5, "period_seconds": 1}).raise_for_status()
    before = _state(api)
    for body in BAD_LIMITS:
        r = api.put("/v1/rate-limits/kept", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["code"] and r.json()["message"]
    for name in ["has space", "x" * 101, "-dash-first"]:
        r = api.put(f"/v1/rate-limits/{name}", json={"units": 1, "period_seconds": 1})
        assert r.status_code == 422, (name, r.text)
    assert _state(api) == before


SEND = {"name": "tick", "queue": "rated", "args": {"customer": {"id": 7}, "list": [1]}}


BAD_SENDS: list[tuple[dict[str, Any], int, str | None]] = [
    ({"rate_limits": [{"limit": "missing"}]}, 422, "unknown_rate_limit"),
    ({"rate_limits": [{"limit": "known", "key_path": "customer.name"}]}, 422,
     "key_path_missing"),
    ({"rate_limits": [{"limit": "known", "key": TOO_LONG}]}, 422, None),
    ({"rate_limits": [{"limit": "known", "key": "a", "key_path": "customer.id"}]}, 422, None),
    ({"rate_limits": [{"limit": "known", "units": 0}]}, 422, None),
    ({"rate_limits": [{"limit": "known", "units": 3}]}, 422, "units_over_burst"),
    ({"concurrency_key_path": "customer.missing"}, 422, "key_path_missing"),
    ({"concurrency_key_path": "customer"}, 422, "key_path_missing"),  # an object, not a key
    ({"concurrency_key": TOO_LONG}, 422, None),
    ({"concurrency_key": "a", "concurrency_key_path": "customer.id"}, 422, None),
    ({"concurrency_limit": 2}, 422, None),  # a limit without a key
    ({"concurrency_key": "a", "concurrency_limit": 0}, 422, None),
    ({"concurrency_key": "a", "concurrency_limit": -1}, 422, None),
    ({"concurrency_key": "a", "concurrency_strategy": "newest"}, 422, None),
]


def test_bad_flow_options_of_a_send_change_nothing(api: httpx.Client) -> None:
    api.put("/v1/rate-limits/known", json={"units": 5, "period_seconds": 1,
                                           "burst": 1}).raise_for_status()
    before = _state(api)
    for extra, status, code in BAD_SENDS:
        r = api.post("/v1/tasks", json={**SEND, **extra})
        assert r.status_code == status, (extra, r.text)
        if code is not None:
            assert r.json()["code"] == code, (extra, r.text)
        # In a batch, one bad item refuses the whole batch.
        r = api.post("/v1/tasks/batch", json={"tasks": [
            {**SEND, "concurrency_key": "fine", "rate_limits": [{"limit": "known"}]},
            {**SEND, **extra}]})
        assert r.status_code == status, (extra, r.text)
    assert _state(api) == before


def test_a_key_read_from_the_args_over_the_size_limit_is_refused(api: httpx.Client) -> None:
    r = api.post("/v1/tasks", json={**SEND, "args": {"k": TOO_LONG},
                                    "concurrency_key_path": "k"})
    assert r.status_code == 422 and r.json()["code"] == "key_too_long"
    assert api.get("/v1/tasks").json()["tasks"] == []


def test_a_queue_rate_limit_must_name_a_limit(api: httpx.Client) -> None:
    r = api.put("/v1/queues/q/rate-limit", json={"limit": "nope"})
    assert r.status_code == 422 and r.json()["code"] == "unknown_rate_limit"
    assert api.put("/v1/queues/q/rate-limit", json={}).status_code == 422
    assert all(q["name"] != "q" for q in api.get("/v1/queues").json()["queues"])


def test_unknown_limits_are_404(api: httpx.Client) -> None:
    assert api.get("/v1/rate-limits/none").status_code == 404
    assert api.delete("/v1/rate-limits/none").status_code == 404


# -- helper B's part: debounce and uniqueness windows ----------------------------------------

WINDOWED = {"name": "reindex", "queue": "windows", "args": {"doc": {"id": 7}, "n": None}}


@pytest.mark.parametrize(("extra", "code"), [
    ({"debounce_seconds": 0, "debounce_key": "d"}, None),
    ({"debounce_seconds": -1, "debounce_key": "d"}, None),
    ({"debounce_seconds": 31_536_001, "debounce_key": "d"}, None),
    ({"debounce_seconds": "5", "debounce_key": "d"}, None),
    ({"debounce_seconds": 5}, None),  # no key
    ({"debounce_key": "d"}, None),  # a key without a window
    ({"debounce_seconds": 5, "debounce_key": "d", "debounce_key_path": "doc.id"}, None),
    ({"debounce_seconds": 5, "debounce_key": TOO_LONG}, None),
    ({"debounce_seconds": 5, "debounce_key": "d", "idempotency_key": "i"}, None),
    ({"debounce_seconds": 5, "debounce_key": "d", "delay_seconds": 3}, None),
    ({"debounce_seconds": 5, "debounce_key_path": "doc.missing"}, "key_path_missing"),
    ({"debounce_seconds": 5, "debounce_key_path": "doc"}, "key_path_missing"),  # an object
    ({"debounce_seconds": 5, "debounce_key_path": "n"}, "key_path_missing"),  # null
    ({"debounce_seconds": 5, "debounce_key_path": "doc..id"}, None),
    ({"debounce_max_seconds": 60}, None),  # a maximum without a window
    ({"debounce_seconds": 5, "debounce_key": "d", "debounce_max_seconds": 0}, None),
    ({"debounce_seconds": 5, "debounce_key": "d", "debounce_max_seconds": -1}, None),
    ({"unique_for": 60}, None),  # no idempotency key to shape
    ({"unique_while": "active"}, None),
    ({"idempotency_key": "i", "unique_for": 0}, None),
    ({"idempotency_key": "i", "unique_for": -5}, None),
    ({"idempotency_key": "i", "unique_while": "queued"}, None),
    ({"idempotency_key": "i", "unique_for": 60, "unique_while": "active"}, None),
])
def test_bad_send_windows_change_nothing(api: httpx.Client, extra: dict[str, Any],
                                         code: str | None) -> None:
    before = _state(api)
    r = api.post("/v1/tasks", json={**WINDOWED, **extra})
    assert r.status_code == 422, r.text
    assert r.json()["message"]
    if code is not None:
        assert r.json()["code"] == code
    # One bad item refuses the whole batch, the good debounced item included.
    r = api.post("/v1/tasks/batch", json={"tasks": [
        {**WINDOWED, "debounce_seconds": 5, "debounce_key": "fine"}, {**WINDOWED, **extra}]})
    assert r.status_code == 422, r.text
    assert _state(api) == before


def test_a_debounce_key_read_from_the_args_over_the_size_limit(api: httpx.Client) -> None:
    r = api.post("/v1/tasks", json={**WINDOWED, "args": {"k": TOO_LONG},
                                    "debounce_seconds": 5, "debounce_key_path": "k"})
    assert r.status_code == 422 and r.json()["code"] == "key_too_long"
    assert api.get("/v1/tasks").json()["tasks"] == []


def test_why_of_a_bad_task_id(api: httpx.Client) -> None:
    assert api.get("/v1/tasks/0/why").status_code == 422
    assert api.get("/v1/tasks/abc/why").status_code == 422
    r = api.get("/v1/tasks/424242/why")
    assert r.status_code == 404 and r.json()["code"] == "not_found"

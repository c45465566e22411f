"""Issue 14: the server's per-request and per-task shortcuts answer exactly as before.

- ``has_long_digits`` (the gate of the 64-bit integer check) agrees with ``\\d{19,}``;
- ``fields_of`` is ``model_dump()`` of a send's tasks and a report's results;
- a send that sets no send-window or flow-control field has no such problem, and one that
  does is still refused;
- ``Metrics.claimed``/``reported`` count and observe per (queue, name) as one call per task did;
- the worker protocol's router goes first: every declared route is still the route that
  answers its own method and path, under any router order;
- claims, heartbeats and reports through a real server, with a scoped worker token.
"""

from __future__ import annotations

import random
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from pydantic import ValidationError

from branchwork import protocol as P
from branchwork.app import main
from branchwork.app.api.schemas import (
    ResultIn,
    TaskBatchIn,
    TaskIn,
    fields_of,
)
from branchwork.app.jsonutil import has_long_digits, strict_loads
from branchwork.app.metrics import BUCKETS, Metrics

LONG_DIGITS = re.compile(rb"\d{19,}")


def test_long_digit_gate_agrees_with_the_regex() -> None:
    rng = random.Random(14)
    alphabet = b'0123456789 ,.:-+eE[]{}"ab\xc3\xa9\x00\xff'
    bodies = [b"", b"1" * 18, b"1" * 19, b"x" + b"9" * 19 + b"x", b"\xd9\xa0" * 20,
              b'{"n": 18446744073709551616}', b'{"s": "1234567890123456789"}']
    bodies += [bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
               for _ in range(3000)]
    bodies += [b"7" * rng.randint(15, 22) for _ in range(200)]
    for body in bodies:
        assert has_long_digits(body) == bool(LONG_DIGITS.search(body)), body


def test_strict_loads_still_refuses_integers_past_64_bits() -> None:
    assert strict_loads(b'{"n": 9223372036854775807}') == {"n": 2**63 - 1}
    assert strict_loads(b'{"s": "92233720368547758070"}') == {"s": "92233720368547758070"}
    for body in (b'{"n": 9223372036854775808}', b"[-9223372036854775809]",
                 b'{"n": 123456789012345678901234567890}'):
        with pytest.raises(ValueError, match="64-bit"):
            strict_loads(body)


FULL_TASK: dict[str, Any] = {
    "name": "resize", "args": {"path": "/a.png", "sizes": [1, 2], "deep": {"x": None}},
    "queue": "img", "priority": 3, "max_retries": 4, "retry_delay_seconds": 2.5,
    "retry_backoff": "linear", "retry_max_delay_seconds": 60.0, "timeout_seconds": 30.0,
    "stuck_after_seconds": 120.0, "stuck_action": "fail",
    "run_at": "2030-01-02T03:04:05+02:00", "idempotency_key": "k1",
    "concurrency_key": "customer-1", "concurrency_limit": 2,
    "concurrency_strategy": "fair",
    "rate_limits": [{"limit": "api", "key": "c1", "units": 2}, {"limit": "global"}],
}


@pytest.mark.parametrize("task", [FULL_TASK, {"name": "noop"},
                                  {"name": "n", "rate_limits": [], "args": [1, "x"]},
                                  {"name": "n", "debounce_seconds": 5, "debounce_key": "d"}])
def test_fields_of_is_model_dump_for_sends(task: dict[str, Any]) -> None:
    model = TaskIn.model_validate(orjson.loads(orjson.dumps(task)))
    assert fields_of(model) == model.model_dump()
    batch = TaskBatchIn.model_validate({"tasks": [task, task]})
    assert fields_of(batch) == batch.model_dump()


def test_fields_of_is_model_dump_for_report_results() -> None:
    token = str(uuid.uuid4())
    for item in ({"id": 1, "lease_token": token, "outcome": "succeeded", "result": {"a": [1]}},
                 {"id": 2, "lease_token": token, "outcome": "failed",
                  "error": {"type": "E", "message": "m"}, "retry_delay_seconds": 3},
                 {"id": 3, "lease_token": token, "outcome": "suspended",
                  "wait": {"kind": "event", "step": "paid", "key": "order.paid"}}):
        model = ResultIn.model_validate(item)
        assert fields_of(model) == model.model_dump()


def test_a_send_without_window_or_flow_fields_has_no_such_problem() -> None:
    """Every field but the window and flow ones set, each to a value that would matter if a
    rule read it: neither rule finds a problem, so the window rule's early exit changes no
    answer."""
    body = {name: ("x" if name not in ("delay_seconds", "parent_id") else 1)
            for name in TaskIn.model_fields}
    for name in (*P.SEND_WINDOW_FIELDS, "concurrency_key", "concurrency_key_path",
                 "concurrency_limit", "concurrency_strategy"):
        body[name] = None
    assert P.send_window_problem(body) is None
    assert P.flow_problem(body) is None


@pytest.mark.parametrize(("extra", "message"), [
    ({"unique_for": 5.0}, "shape an idempotency_key"),
    ({"unique_for": 5.0, "unique_while": "active", "idempotency_key": "k"}, "not both"),
    ({"debounce_key": "k"}, "needs debounce_seconds"),
    ({"debounce_seconds": 1.0}, "debounce_key or debounce_key_path"),
    ({"debounce_seconds": 1.0, "debounce_key": "k", "run_at": "2030-01-01T00:00:00Z"},
     "cannot be combined with run_at"),
    ({"concurrency_limit": 2}, "need a concurrency key"),
    ({"concurrency_key": "a", "concurrency_key_path": "b"}, "not both"),
])
def test_window_and_flow_problems_are_still_refused(extra: dict[str, Any],
                                                    message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TaskIn.model_validate({"name": "n", **extra})


def _expected_buckets(values: list[float]) -> list[int]:
    counts = [0] * (len(BUCKETS) + 1)
    for v in values:
        counts[next((i for i, b in enumerate(BUCKETS) if max(0.0, v) <= b), len(BUCKETS))] += 1
    return counts


def test_metrics_count_and_observe_each_task() -> None:
    m = Metrics()
    now = datetime.now(UTC)
    tasks = [{"queue": "a", "name": "x", "run_at": now - timedelta(seconds=2)},
             {"queue": "b", "name": "y", "run_at": now + timedelta(seconds=5)},  # not yet: 0
             {"queue": "a", "name": "x", "run_at": None},  # counted, not observed
             {"queue": "a", "name": "x", "run_at": now - timedelta(seconds=400)}]
    m.claimed(tasks)
    assert m.counters["claimed"] == {("a", "x"): 3, ("b", "y"): 1}
    ax = m.histograms["claim_wait_seconds"][("a", "x")]
    assert sum(ax.counts) == 2 and 400 < ax.sum < 403
    assert ax.counts[BUCKETS.index(2.5)] == 1 and ax.counts[BUCKETS.index(900.0)] == 1
    assert m.histograms["claim_wait_seconds"][("b", "y")].counts == _expected_buckets([0.0])

    rows = [{"applied": True, "queue": "a", "name": "x", "new_status": "succeeded",
             "run_seconds": 0.02},
            {"applied": True, "queue": "a", "name": "x", "new_status": "queued",
             "run_seconds": 7.0},  # a failed attempt with a retry to come
            {"applied": True, "queue": "a", "name": "x", "new_status": "failed",
             "run_seconds": None},
            {"applied": True, "queue": "b", "name": "y", "new_status": "cancelled",
             "run_seconds": 1.0},
            {"applied": False, "queue": "a", "name": "x", "new_status": None,
             "run_seconds": 3.0},  # stale: not counted
            {"applied": True, "queue": "a", "name": None, "new_status": "succeeded"}]
    m.reported(rows)
    assert m.counters["completed"] == {("a", "x"): 1}
    assert m.counters["failed"] == {("a", "x"): 2}
    assert m.counters["cancelled"] == {("b", "y"): 1}
    run = m.histograms["run_seconds"]
    assert run[("a", "x")].counts == _expected_buckets([0.02, 7.0])
    assert run[("a", "x")].sum == pytest.approx(7.02)
    assert run[("b", "y")].counts == _expected_buckets([1.0])


def _sample_path(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def _answering(routers: Any, method: str, path: str) -> Any:
    for router in routers:
        for route in router.routes:
            regex = getattr(route, "path_regex", None)
            if regex is not None and regex.match(path) and method in (route.methods or ()):
                return route
    return None


def test_every_route_answers_its_own_method_and_path_in_any_router_order() -> None:
    """No two routers hold routes that match the same request, so the order of ``ROUTERS``
    (the worker protocol first, for speed) decides nothing but how soon a route is found."""
    orders = [main.ROUTERS, tuple(reversed(main.ROUTERS))]
    orders += [tuple(random.Random(seed).sample(main.ROUTERS, len(main.ROUTERS)))
               for seed in range(5)]
    checked = 0
    for router in main.ROUTERS:
        for route in router.routes:
            if getattr(route, "path_regex", None) is None:
                continue
            for method in route.methods or ():
                path = _sample_path(route.path)
                if _answering([router], method, path) is not route:
                    continue  # shadowed within its own router (not the order's business)
                for order in orders:
                    assert _answering(order, method, path) is route, (method, route.path)
                checked += 1
    assert checked > 100
    assert main.ROUTERS[0].routes[0].path.startswith("/v1/workers")


def test_worker_protocol_through_a_server_with_a_scoped_token(make_server: Any) -> None:
    server = make_server(api_token="admin-secret")
    admin = {"authorization": "Bearer admin-secret"}
    with httpx.Client(base_url=server.url, timeout=30) as c:
        made = c.post("/v1/tokens", headers=admin,
                      json={"name": "w", "role": "worker", "queues": ["jobs.*"]})
        assert made.status_code in (200, 201), made.text
        worker = {"authorization": f"Bearer {made.json()['token']}"}
        sent = c.post("/v1/tasks/batch", headers=admin, json={"tasks": [
            {"name": "t", "queue": "jobs.a", "args": {"i": i}} for i in range(3)]})
        assert sent.status_code == 201, sent.text
        refused = c.post("/v1/claim", headers=worker,
                         json={"worker_id": "w1", "queues": ["other"], "limit": 3})
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
        claimed = c.post("/v1/claim", headers=worker,
                         json={"worker_id": "w1", "queues": ["jobs.*"], "limit": 3})
        assert claimed.status_code == 200, claimed.text
        tasks = claimed.json()["tasks"]
        assert sorted(t["args"]["i"] for t in tasks) == [0, 1, 2]
        beat = c.post("/v1/heartbeat", headers=worker, json={"worker_id": "w1", "tasks": [
            {"id": t["id"], "lease_token": t["lease_token"]} for t in tasks]})
        assert beat.status_code == 200 and beat.json()["lost"] == []
        results = [{"id": t["id"], "lease_token": t["lease_token"], "outcome": "succeeded",
                    "result": {"i": t["args"]["i"]}} for t in tasks]
        big = {"id": tasks[0]["id"], "lease_token": tasks[0]["lease_token"],
               "outcome": "succeeded", "result": 2**64}
        assert c.post("/v1/tasks/report", headers=worker,
                      json={"results": [big]}).status_code == 400  # past 64 bits
        reported = c.post("/v1/tasks/report", headers=worker,
                          json={"worker_id": "w1", "results": results})
        assert reported.status_code == 200, reported.text
        assert [r["outcome"] for r in reported.json()["results"]] == ["applied"] * 3
        again = c.post("/v1/tasks/report", headers=worker, json={"results": results[:1]})
        assert again.json()["results"][0]["outcome"] == "already_recorded"
        assert c.post("/v1/tasks/report", json={"results": results}).status_code == 401

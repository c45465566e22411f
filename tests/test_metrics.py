"""``/metrics`` in the Prometheus text format, fed by real sends, claims and reports."""

from __future__ import annotations

import re

import httpx

from branchwork.app.metrics import MAX_SERIES, OTHER, Metrics, escape_label
from orchestration_helpers import claim_one, complete, register_workflow, start_run, wait_for


def parse(text: str) -> dict[str, float]:
    """Sample lines as ``{'metric{labels}': value}``; also checks the line grammar."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            assert re.match(r"# (HELP|TYPE) branchwork_\w+ ", line) or not line, line
            continue
        m = re.fullmatch(r'(branchwork_\w+(?:\{[^}]*\})?) (\S+)', line)
        assert m, line
        out[m.group(1)] = float(m.group(2))
    return out


def test_counters_histograms_and_gauges(api: httpx.Client) -> None:
    ids = [api.post("/v1/tasks", json={"name": "send_email", "queue": "mail"}).json()["id"]
           for _ in range(3)]
    api.post("/v1/tasks", json={"name": "send_email", "queue": "mail",
                                "idempotency_key": "k"})
    api.post("/v1/tasks", json={"name": "send_email", "queue": "mail",
                                "idempotency_key": "k"})  # a duplicate is not a new send
    api.post("/v1/tasks/batch", json={"tasks": [{"name": "resize", "queue": "img"}] * 2})
    claimed = api.post("/v1/claim", json={"worker_id": "w1", "queues": ["mail"],
                                          "limit": 2}).json()["tasks"]
    assert [t["id"] for t in claimed] == ids[:2]
    api.post(f"/v1/tasks/{ids[0]}/complete", json={"lease_token": claimed[0]["lease_token"],
                                                   "result": 1})
    api.post(f"/v1/tasks/{ids[1]}/fail", json={"lease_token": claimed[1]["lease_token"],
                                               "error": {"type": "E", "message": "m"}})
    r = api.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    m = parse(r.text)
    mail = 'queue="mail",name="send_email"'
    assert m[f"branchwork_tasks_sent_total{{{mail}}}"] == 4
    assert m['branchwork_tasks_sent_total{queue="img",name="resize"}'] == 2
    assert m[f"branchwork_tasks_claimed_total{{{mail}}}"] == 2
    assert m[f"branchwork_tasks_completed_total{{{mail}}}"] == 1
    assert m[f"branchwork_tasks_failed_total{{{mail}}}"] == 1
    assert m[f"branchwork_task_claim_wait_seconds_count{{{mail}}}"] == 2
    assert m[f'branchwork_task_claim_wait_seconds_bucket{{{mail},le="+Inf"}}'] == 2
    assert m[f"branchwork_task_run_seconds_count{{{mail}}}"] == 2
    assert 0 <= m[f"branchwork_task_run_seconds_sum{{{mail}}}"] < 60
    assert m['branchwork_queue_depth{queue="mail",status="queued"}'] == 2
    assert m['branchwork_queue_depth{queue="mail",status="running"}'] == 0
    assert m['branchwork_queue_depth{queue="img",status="queued"}'] == 2
    assert m["branchwork_workers_online"] == 1
    buckets = [v for k, v in m.items()
               if k.startswith(f"branchwork_task_run_seconds_bucket{{{mail}")]
    assert buckets == sorted(buckets)  # cumulative


def test_metrics_need_the_token_when_one_is_set(make_server) -> None:
    server = make_server(api_token="t0k")
    assert httpx.get(f"{server.url}/metrics").status_code == 401
    r = httpx.get(f"{server.url}/metrics", headers={"authorization": "Bearer t0k"})
    assert r.status_code == 200 and "branchwork_workers_online 0" in r.text


def test_label_values_are_escaped_and_series_capped() -> None:
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    metrics = Metrics()

    class Out:
        duplicate = False

    names = [f"n{i}" for i in range(MAX_SERIES + 50)]
    metrics.sent([{"queue": "q", "name": n} for n in names], [Out()] * len(names))
    text = metrics.render({"depth": [], "workers_online": 0})
    samples = parse(text)
    sent = {k: v for k, v in samples.items() if k.startswith("branchwork_tasks_sent_total")}
    assert len(sent) <= MAX_SERIES + 1
    assert sum(sent.values()) == len(names)
    assert any(OTHER in k for k in sent)


def test_outcomes_decided_by_the_server_are_counted(make_server) -> None:  # type: ignore[no-untyped-def]
    """A lease that ran out and an attempt past its timeout end in the sweep, not in a route:
    they still count as failed attempts (and a cancel-requested one as cancelled)."""
    server = make_server(lease_seconds=0.5, sweep_interval_seconds=0.1)
    with httpx.Client(base_url=server.url, timeout=30) as api:
        lost = api.post("/v1/tasks", json={"name": "lost", "max_retries": 1}).json()["id"]
        slow = api.post("/v1/tasks", json={"name": "slow", "timeout_seconds": 0.3}).json()["id"]
        gone = api.post("/v1/tasks", json={"name": "gone"}).json()["id"]
        claimed = api.post("/v1/claim", json={"worker_id": "w", "limit": 3}).json()["tasks"]
        assert sorted(t["id"] for t in claimed) == sorted([lost, slow, gone])
        api.post(f"/v1/tasks/{gone}/cancel")  # running: cancel requested, never reported

        def swept() -> dict[str, float]:
            m = parse(api.get("/metrics").text)
            keys = ('branchwork_tasks_failed_total{queue="default",name="lost"}',
                    'branchwork_tasks_failed_total{queue="default",name="slow"}',
                    'branchwork_tasks_cancelled_total{queue="default",name="gone"}')
            return m if all(k in m for k in keys) else {}

        m = wait_for(swept, timeout=15)
        # The lost attempt had a retry left: it is queued again. The depth gauge is read from
        # a short-lived cache, so wait for it to show the re-queue.
        depth = 'branchwork_queue_depth{queue="default",status="queued"}'
        queued = wait_for(lambda: parse(api.get("/metrics").text).get(depth) == 1, timeout=15)
    assert queued
    assert m['branchwork_tasks_failed_total{queue="default",name="lost"}'] == 1
    assert m['branchwork_tasks_failed_total{queue="default",name="slow"}'] == 1
    assert m['branchwork_tasks_cancelled_total{queue="default",name="gone"}'] == 1
    assert 'branchwork_tasks_completed_total{queue="default",name="lost"}' not in m


def test_tasks_created_by_workflows_and_cron_count_as_sent(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(scheduler_interval_seconds=0.1, leader_lease_seconds=2.0)
    with httpx.Client(base_url=server.url, timeout=30) as api:
        register_workflow(api, "pipe", [{"name": "first", "task": "step_one"},
                                        {"name": "second", "task": "step_two"}],
                          [["first", "second"]], queue="wf")
        start_run(api, "pipe", {"n": 1})
        first = claim_one(api, queue="wf")
        complete(api, first, 1)  # the report queues the second node, in the server
        api.put("/v1/schedules/beat", json={"target": "heartbeat_job", "cron": "* * * * * *"})
        m = wait_for(lambda: (s := parse(api.get("/metrics").text)).get(
            'branchwork_tasks_sent_total{queue="default",name="heartbeat_job"}', 0) >= 2 and s,
            timeout=15)
        api.post("/v1/schedules/beat/pause")
    assert m['branchwork_tasks_sent_total{queue="wf",name="step_one"}'] == 1
    assert m['branchwork_tasks_sent_total{queue="wf",name="step_two"}'] == 1
    assert m['branchwork_tasks_claimed_total{queue="wf",name="step_one"}'] == 1

"""Queue health on a shared PostgreSQL (issue 9, item 11): a long transaction elsewhere in the
database pins the vacuum horizon; /health details, /metrics and the studio banner say so past a
threshold, and stop saying so once it ends. Real server, real PostgreSQL, a real transaction."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import psycopg

from servers import ThreadServer
from worker_helpers import wait_for


def gauge(api: httpx.Client, line: str) -> float:
    text = api.get("/metrics").text
    match = re.search(rf"^{re.escape(line)} (\S+)$", text, re.M)
    assert match, f"{line} not in /metrics"
    return float(match.group(1))


def banner(api: httpx.Client) -> str:
    response = api.get("/studio/partials/health")
    assert response.status_code == 200
    return response.text


def test_a_long_transaction_is_reported_and_clears_after_commit(
        make_server: Callable[..., ThreadServer], db_url: str) -> None:
    server = make_server(health_transaction_age_seconds=1.0)
    with httpx.Client(base_url=server.url, timeout=30) as api:
        health = api.get("/health").json()
        assert health["status"] == "ok" and health["queue_health"]["ok"] is True
        assert set(health["queue_health"]["tables"]) == {"tasks", "task_events"}
        assert "queue-health-warning" not in banner(api)
        with psycopg.connect(db_url, application_name="analytics") as conn:
            conn.execute("SELECT txid_current()")  # BEGIN; holds an xid from now on

            def reported() -> dict | None:
                qh = api.get("/health").json()["queue_health"]
                return qh if not qh["ok"] else None

            qh = wait_for(reported, timeout=15, what="the long transaction in /health")
            assert qh["oldest_transaction"]["age_seconds"] > 1.0
            assert qh["oldest_transaction"]["application_name"] == "analytics"
            assert any("transaction has been open" in w for w in qh["warnings"])
            assert "query" not in qh["oldest_transaction"]  # /health is open: no SQL text
            assert gauge(api, "branchwork_db_oldest_transaction_seconds") > 1.0
            assert gauge(api, "branchwork_queue_health_warnings") >= 1
            html = wait_for(lambda: (b := banner(api)) and "queue-health-warning" in b and b,
                            timeout=15, what="the studio banner")
            assert "transaction has been open" in html
            conn.commit()

            wait_for(lambda: api.get("/health").json()["queue_health"]["ok"], timeout=15,
                     what="the report to clear after commit")
            assert gauge(api, "branchwork_db_oldest_transaction_seconds") < 1.0
            assert gauge(api, "branchwork_queue_health_warnings") == 0
            wait_for(lambda: "queue-health-warning" not in banner(api), timeout=15,
                     what="the banner to clear")


def test_dead_tuples_past_the_threshold_are_reported(
        make_server: Callable[..., ThreadServer], db_url: str) -> None:
    server = make_server(health_dead_tuples=50)
    with httpx.Client(base_url=server.url, timeout=30) as api, \
            psycopg.connect(db_url) as conn:
        conn.execute("SELECT txid_current()")  # keeps vacuum from removing what we kill
        sent = api.post("/v1/tasks/batch", json={"tasks": [
            {"name": "t", "queue": "dead"} for _ in range(200)]})
        assert sent.status_code == 201, sent.text
        assert api.post("/v1/queues/dead/purge").json()["purged"] == 200

        def dead() -> dict | None:
            qh = api.get("/health").json()["queue_health"]
            return qh if qh["tables"]["tasks"]["dead_tuples"] > 50 else None

        qh = wait_for(dead, timeout=20, what="dead tuples in pg_stat_user_tables")
        assert any(w.startswith("tasks has") and "dead tuples" in w for w in qh["warnings"])
        assert gauge(api, 'branchwork_db_dead_tuples{table="tasks"}') > 50
        assert "dead tuples" in banner(api) or wait_for(
            lambda: "dead tuples" in banner(api), timeout=10, what="the banner")
        conn.rollback()


def test_health_stays_open_and_metrics_need_the_token(
        make_server: Callable[..., ThreadServer]) -> None:
    server = make_server(api_token="s3cret")
    with httpx.Client(base_url=server.url, timeout=30) as api:
        health = api.get("/health")
        assert health.status_code == 200 and "queue_health" in health.json()
        assert api.get("/metrics").status_code == 401
        assert api.get("/studio/partials/health").status_code in (303, 401)
        ok = api.get("/metrics", headers={"authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and "branchwork_db_oldest_transaction_seconds" in ok.text

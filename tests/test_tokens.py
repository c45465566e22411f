"""Scoped tokens: each role limited to its patterns, stored hashed, revoked on every replica
within about a second, the open server turning secure with its first token, and the
viewer's read-only studio."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time

import httpx
import psycopg

import pg
from tokens_helpers import ADMIN, bearer, create, studio_headers, studio_login
from worker_helpers import python_worker, send, wait_status, worker_env

TABLES = ("tasks", "queues", "workers")


def _send(url: str, token: str, name: str, queue: str = "default") -> httpx.Response:
    return httpx.post(f"{url}/v1/tasks", json={"name": name, "queue": queue},
                      headers=bearer(token), timeout=10)


def test_worker_token_is_limited_to_its_queue_patterns(make_server, db_url) -> None:
    server = make_server(api_token=ADMIN)
    url = server.url
    worker = create(url, "mailer", "worker", queues=["emails.*"])
    mine = _send(url, ADMIN, "send_mail", "emails.high").json()["id"]
    other = _send(url, ADMIN, "bill", "billing").json()["id"]
    h = bearer(worker)
    with httpx.Client(base_url=url, headers=h, timeout=10) as c:
        before = pg.fingerprint(db_url, TABLES)
        for queues in (["billing"], ["*"], ["emails.high", "billing"], ["e*"], ["emails"]):
            r = c.post("/v1/claim", json={"worker_id": "w1", "queues": queues})
            assert r.status_code == 403 and r.json()["code"] == "forbidden", queues
        r = c.post("/v1/workers/register", json={"worker_id": "w1", "queues": ["billing"]})
        assert r.status_code == 403
        assert c.put("/v1/queues/billing", json={"paused": True}).status_code == 403
        assert _send(url, worker, "child", "billing").status_code == 403
        assert c.get(f"/v1/tasks/{other}").status_code == 403
        assert c.post(f"/v1/tasks/{other}/cancel").status_code == 403
        assert c.get("/v1/tasks").status_code == 403
        assert pg.fingerprint(db_url, TABLES) == before  # refusals change nothing
        # Inside its patterns it works as a worker does; it describes only its own tasks.
        r = c.post("/v1/workers/register", json={
            "worker_id": "w1", "queues": ["emails.*"],
            "tasks": [{"name": "send_mail", "queue": "emails.high"},
                      {"name": "bill", "queue": "billing"}]})
        assert r.status_code == 200 and r.json()["tasks"] == 1
        claimed = c.post("/v1/claim", json={"worker_id": "w1", "queues": ["emails.*"]}).json()
        assert [t["id"] for t in claimed["tasks"]] == [mine]
        lease = claimed["tasks"][0]["lease_token"]
        assert c.get(f"/v1/tasks/{mine}").status_code == 200
        assert _send(url, worker, "child", "emails.low").status_code == 201
        done = c.post(f"/v1/tasks/{mine}/complete", json={"lease_token": lease, "result": 1})
        assert done.status_code == 200
    assert httpx.get(f"{url}/v1/tasks/{other}", headers=bearer(ADMIN)).json()["status"] == "queued"


def test_sender_token_is_limited_to_its_names_and_queues(make_server) -> None:
    server = make_server(api_token=ADMIN)
    url = server.url
    by_name = create(url, "reports", "sender", names=["reports.*"])
    by_queue = create(url, "bulk", "sender", queues=["bulk"])
    assert _send(url, by_name, "reports.daily").status_code == 201
    assert _send(url, by_name, "emails.send").status_code == 403
    batch = httpx.post(f"{url}/v1/tasks/batch", headers=bearer(by_name), timeout=10, json={
        "tasks": [{"name": "reports.a"}, {"name": "other"}]})
    assert batch.status_code == 403  # one item outside: nothing is sent
    assert _send(url, by_queue, "anything", "bulk").status_code == 201
    assert _send(url, by_queue, "anything", "default").status_code == 403
    theirs = _send(url, ADMIN, "emails.send").json()["id"]
    mine = _send(url, by_name, "reports.weekly").json()["id"]
    assert httpx.get(f"{url}/v1/tasks/{mine}", headers=bearer(by_name)).status_code == 200
    assert httpx.get(f"{url}/v1/tasks/{theirs}", headers=bearer(by_name)).status_code == 403
    # Runs: the workflow's name must match a name pattern.
    httpx.put(f"{url}/v1/workflows/reports.flow", headers=bearer(ADMIN), timeout=10, json={
        "name": "reports.flow", "nodes": [{"name": "a", "task": "reports.a"}]}).raise_for_status()
    httpx.put(f"{url}/v1/workflows/other.flow", headers=bearer(ADMIN), timeout=10, json={
        "name": "other.flow", "nodes": [{"name": "a", "task": "other"}]}).raise_for_status()
    run = httpx.post(f"{url}/v1/workflows/reports.flow/runs", json={},
                     headers=bearer(by_name), timeout=10)
    assert run.status_code == 201
    assert httpx.post(f"{url}/v1/workflows/other.flow/runs", json={},
                      headers=bearer(by_name), timeout=10).status_code == 403
    assert httpx.post(f"{url}/v1/workflows/reports.flow/runs", json={},
                      headers=bearer(by_queue), timeout=10).status_code == 403
    run_id = run.json()["id"]
    assert httpx.get(f"{url}/v1/workflow-runs/{run_id}",
                     headers=bearer(by_name)).status_code == 200
    # Senders do not run, cancel or configure anything.
    assert httpx.post(f"{url}/v1/claim", json={"worker_id": "x"},
                      headers=bearer(by_name)).status_code == 403
    assert httpx.post(f"{url}/v1/tasks/{mine}/cancel",
                      headers=bearer(by_name)).status_code == 403


def test_secrets_are_stored_hashed_and_shown_once(make_server, db_url) -> None:
    server = make_server(api_token=ADMIN)
    token = create(server.url, "ci", "sender")
    listed = httpx.get(f"{server.url}/v1/tokens", headers=bearer(ADMIN)).json()["tokens"]
    assert [(t["name"], t["role"]) for t in listed] == [("ci", "sender")]
    assert token not in str(listed) and "secret_sha256" not in listed[0]
    with psycopg.connect(db_url) as conn:
        stored = conn.execute("SELECT secret_sha256 FROM api_tokens").fetchone()[0]
    secret = token.split("_", 2)[2]
    assert stored == hashlib.sha256(secret.encode()).hexdigest() and secret not in stored
    # A token one character off, or with another token's id, is refused.
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert _send(server.url, forged, "x").status_code == 401
    assert _send(server.url, "bwt_1_" + secret[::-1], "x").status_code == 401
    assert _send(server.url, token, "x").status_code == 201
    r = httpx.post(f"{server.url}/v1/tokens", headers=bearer(ADMIN),
                   json={"name": "ci", "role": "viewer"})
    assert r.status_code == 409 and r.json()["code"] == "token_exists"
    for bad in ({"name": "w", "role": "worker"},  # a worker needs a queue pattern
                {"name": "v", "role": "viewer", "queues": ["a"]},
                {"name": "x", "role": "root"},
                {"name": "bad name", "role": "viewer"},
                {"name": "w", "role": "worker", "queues": ["no spaces"]}):
        r = httpx.post(f"{server.url}/v1/tokens", headers=bearer(ADMIN), json=bad)
        assert r.status_code == 422, bad


def test_last_use_is_recorded(make_server, db_url) -> None:
    server = make_server(api_token=ADMIN)
    token = create(server.url, "v", "viewer")
    for _ in range(5):
        assert httpx.get(f"{server.url}/v1/queues", headers=bearer(token)).status_code == 200
    deadline = time.monotonic() + 5
    used = None
    while used is None and time.monotonic() < deadline:
        listed = httpx.get(f"{server.url}/v1/tokens", headers=bearer(ADMIN)).json()["tokens"]
        used = listed[0]["last_used_at"]
        time.sleep(0.05)
    assert used is not None


def test_revoke_takes_effect_on_every_replica_within_a_second(make_server) -> None:
    a = make_server(api_token=ADMIN)
    b = make_server(api_token=ADMIN)
    token = create(a.url, "mailer", "worker", queues=["emails.*"])
    beat = {"worker_id": "w", "tasks": []}
    with httpx.Client(base_url=b.url, headers=bearer(token), timeout=10) as on_b:
        assert on_b.post("/v1/heartbeat", json=beat).status_code == 200  # B knows it
        cache = b.app.state.server.tokens
        loads = cache.loads
        for _ in range(200):
            assert on_b.post("/v1/heartbeat", json=beat).status_code == 200
        # No database round trip per request: the tokens were read at most once more (TTL).
        assert cache.loads - loads <= 1
        revoked = httpx.post(f"{a.url}/v1/tokens/mailer/revoke", headers=bearer(ADMIN))
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        started = time.monotonic()
        while on_b.post("/v1/heartbeat", json=beat).status_code == 200:
            assert time.monotonic() - started < 1.5, "replica B still accepts a revoked token"
            time.sleep(0.01)
        r = on_b.post("/v1/heartbeat", json=beat)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    # A token created on A is accepted on B at once (its id is newer than B has seen).
    fresh = create(a.url, "mailer", "worker", queues=["emails.*"])
    assert httpx.post(f"{b.url}/v1/heartbeat", json=beat, headers=bearer(fresh)).status_code == 200


def test_open_server_turns_secure_with_its_first_token(make_server) -> None:
    """No BRANCHWORK_API_TOKEN and no tokens: open, as before. The first token must be an
    admin one (else nobody could manage tokens), and from then on authentication is on;
    the last admin token cannot be revoked."""
    server = make_server()
    url = server.url
    assert _send(url, "", "x").status_code == 201  # open
    r = httpx.post(f"{url}/v1/tokens", json={"name": "w", "role": "worker", "queues": ["*"]})
    assert r.status_code == 409 and r.json()["code"] == "admin_token_required"
    assert _send(url, "", "x").status_code == 201  # still open
    root = create(url, "root", "admin", admin="")
    assert _send(url, "", "x").status_code == 401
    assert _send(url, root, "x").status_code == 201
    viewer = create(url, "v", "viewer", admin=root)
    assert httpx.get(f"{url}/v1/tasks", headers=bearer(viewer)).status_code == 200
    r = httpx.post(f"{url}/v1/tokens/root/revoke", headers=bearer(root))
    assert r.status_code == 409 and r.json()["code"] == "last_admin_token"
    second = create(url, "root2", "admin", admin=root)
    assert httpx.post(f"{url}/v1/tokens/root/revoke", headers=bearer(second)).status_code == 200
    # Revoked tokens still count: the server does not fall open again.
    assert httpx.post(f"{url}/v1/tokens/v/revoke", headers=bearer(second)).status_code == 200
    assert _send(url, "", "x").status_code == 401
    assert _send(url, root, "x").status_code == 401


def test_viewer_studio_is_read_only(make_server, db_url) -> None:
    server = make_server(api_token=ADMIN)
    viewer = create(server.url, "ops", "viewer")
    tid = _send(server.url, ADMIN, "keep").json()["id"]
    failed = _send(server.url, ADMIN, "broken").json()["id"]
    httpx.post(f"{server.url}/v1/tasks/{failed}/cancel", headers=bearer(ADMIN))
    httpx.put(f"{server.url}/v1/schedules/nightly", headers=bearer(ADMIN), json={
        "target": "keep", "cron": "0 3 * * *"}).raise_for_status()
    with httpx.Client(base_url=server.url, timeout=10) as c:
        assert studio_login(c, viewer).status_code == 303
        for path in ("/studio", "/studio/tasks", f"/studio/tasks/{tid}", "/studio/schedules",
                     "/studio/workers", "/studio/kv", "/studio/workflows", "/studio/trees",
                     f"/studio/partials/task/{tid}"):
            page = c.get(path)
            assert page.status_code == 200, path
            assert "/cancel" not in page.text and "/retry" not in page.text, path
            assert "/pause" not in page.text, path
        overview = c.get("/studio").text
        assert "Log out" in overview and 'id="read-only"' in overview
        headers = studio_headers(c)
        before = pg.fingerprint(db_url, ("tasks", "schedules"))
        for action in (f"/studio/tasks/{tid}/cancel", f"/studio/tasks/{failed}/retry",
                       "/studio/schedules/nightly/pause"):
            r = c.post(action, headers=headers)
            assert r.status_code == 403 and r.json()["code"] == "forbidden", action
        assert pg.fingerprint(db_url, ("tasks", "schedules")) == before
        assert c.post("/studio/logout", headers=headers).status_code == 303
    # The admin's studio still acts; a revoked viewer's session ends.
    with httpx.Client(base_url=server.url, timeout=10) as c:
        studio_login(c, ADMIN)
        page = c.get(f"/studio/tasks/{tid}").text
        assert f"/studio/tasks/{tid}/cancel" in page and 'id="read-only"' not in page
        assert c.post(f"/studio/tasks/{tid}/cancel", headers=studio_headers(c)).status_code in (
            200, 303)
    with httpx.Client(base_url=server.url, timeout=10) as c:
        studio_login(c, viewer)
        assert c.get("/studio/tasks").status_code == 200
        httpx.post(f"{server.url}/v1/tokens/ops/revoke", headers=bearer(ADMIN))
        r = c.get("/studio/tasks")
        assert r.status_code == 303 and r.headers["location"].startswith("/studio/login")


def test_worker_and_sender_tokens_cannot_open_the_studio(make_server) -> None:
    server = make_server(api_token=ADMIN)
    for name, role, scopes in (("w", "worker", {"queues": ["*"]}), ("s", "sender", {})):
        token = create(server.url, name, role, **scopes)
        with httpx.Client(base_url=server.url, timeout=10) as c:
            r = studio_login(c, token)
            assert r.status_code == 403 and "cannot open the studio" in r.text
            assert "bw_session" not in c.cookies
            assert c.get("/studio/tasks").status_code == 303


def test_a_worker_process_runs_with_a_worker_token(make_server, tmp_path) -> None:
    """``branchwork run-worker`` with a token limited to its queue: it registers what lies in
    its queues (the registry's other queue limits are left alone), runs its tasks, and is
    refused (exit 2) when asked to serve a queue outside them."""
    server = make_server(api_token=ADMIN)
    token = create(server.url, "math-worker", "worker", queues=["math"])
    with httpx.Client(base_url=server.url, headers=bearer(ADMIN), timeout=30) as api:
        task_id = send(api, "add", {"a": 1, "b": 2}, queue="math")
        with python_worker(server.url, "workers_app:reg", "-q", "math",
                           BW_TEST_DIR=str(tmp_path), BRANCHWORK_API_TOKEN=token):
            row = wait_status(api, task_id)
        assert row["status"] == "succeeded" and row["result"] == 3
        queues = {q["name"]: q for q in api.get("/v1/queues").json()["queues"]}
        assert queues.get("email", {}).get("concurrency_limit") is None  # not its queue
    cmd = [sys.executable, "-m", "branchwork.cli", "run-worker", "workers_app:reg",
           "-q", "email"]
    env = worker_env(server.url, BW_TEST_DIR=str(tmp_path), BRANCHWORK_API_TOKEN=token)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "403 forbidden" in done.stderr


def test_tokens_read_before_keep_working_while_the_database_is_away(make_server,
                                                                    db_url) -> None:
    """The per-process cache is what answers: during an outage a known token still gets in
    (refused or served by the route's own 503), a wrong one is still a 401, never a 500."""
    server = make_server(api_token=ADMIN, token_cache_seconds=0.2, pool_min_size=1,
                         pool_max_size=2)
    viewer = create(server.url, "ops", "viewer")
    assert httpx.get(f"{server.url}/openapi.json", headers=bearer(viewer)).status_code == 200
    dbname = db_url.rsplit("/", 1)[1]
    with pg.admin(db_url) as admin:
        admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
        try:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s", (dbname,))
            time.sleep(0.5)  # past the cache's lifetime: its reload fails
            with httpx.Client(base_url=server.url, timeout=30) as c:
                assert c.get("/openapi.json", headers=bearer(viewer)).status_code == 200
                assert c.get("/openapi.json", headers=bearer(viewer + "x")).status_code == 401
                r = c.get("/v1/queues", headers=bearer(viewer))
                assert r.status_code == 503 and r.json()["code"] == "database_unavailable"
        finally:
            admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
    # The pool's reconnect attempts have backed off during the outage (1, 2, 4, 8 s): the
    # first request after it may wait that long for a connection.
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=server.url, timeout=30) as c:
        while c.get("/v1/queues", headers=bearer(viewer)).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)

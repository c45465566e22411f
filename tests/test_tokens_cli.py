"""``branchwork tokens create/ls/revoke``, run as a user does, against a real server."""

from __future__ import annotations

import json

import httpx

from cli_helpers import bw, user_env
from tokens_helpers import ADMIN, bearer


def test_tokens_from_the_command_line(make_server) -> None:
    server = make_server(api_token=ADMIN)
    env = user_env(server.url, BRANCHWORK_API_TOKEN=ADMIN)
    made = bw("tokens", "create", "mailer", "--role", "worker", "--queue", "emails.*", env=env)
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("bwt_") and "\n" not in secret  # the secret alone on stdout
    assert "not shown again" in made.stderr
    ok = httpx.post(f"{server.url}/v1/claim", json={"worker_id": "w", "queues": ["emails.a"]},
                    headers=bearer(secret), timeout=10)
    assert ok.status_code == 200
    refused = httpx.post(f"{server.url}/v1/claim", json={"worker_id": "w", "queues": ["x"]},
                         headers=bearer(secret), timeout=10)
    assert refused.status_code == 403

    assert bw("tokens", "create", "ops", "--role", "viewer", env=env).returncode == 0
    listed = bw("tokens", "ls", env=env)
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert any(line.split()[:2] == ["mailer", "worker"] and "queue emails.*" in line
               for line in lines), listed.stdout
    assert any(line.split()[:2] == ["ops", "viewer"] for line in lines), listed.stdout
    assert secret not in listed.stdout

    again = bw("tokens", "create", "mailer", "--role", "viewer", env=env)
    assert again.returncode == 1 and "token_exists" in again.stderr
    no_queue = bw("tokens", "create", "w2", "--role", "worker", env=env)
    assert no_queue.returncode == 1 and "queue pattern" in no_queue.stderr

    gone = bw("tokens", "revoke", "mailer", env=env)
    assert gone.returncode == 0 and "revoked mailer" in gone.stdout
    after = httpx.post(f"{server.url}/v1/claim", json={"worker_id": "w", "queues": ["emails.a"]},
                       headers=bearer(secret), timeout=10)
    assert after.status_code == 401
    rows = json.loads(bw("--json", "tokens", "ls", "--all", env=env).stdout)
    assert {(r["name"], r["revoked_at"] is not None) for r in rows} == {
        ("mailer", True), ("ops", False)}
    # Without the admin token the commands are refused, in one line.
    as_viewer = bw("tokens", "ls", env=user_env(server.url))
    assert as_viewer.returncode == 1 and "401" in as_viewer.stderr
    assert bw("tokens", "revoke", "missing", env=env).returncode == 1

"""The compose file wires PostgreSQL, the server and a worker together (Docker cannot run here,
so the file is parsed and its wiring checked)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def env(service: dict) -> dict[str, str]:
    raw = service.get("environment", {})
    if isinstance(raw, list):
        return dict(item.split("=", 1) for item in raw)
    return {k: str(v) for k, v in raw.items()}


def test_services_and_health_checks() -> None:
    services = compose()["services"]
    assert set(services) >= {"db", "server", "worker"}
    db = services["db"]
    assert db["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in db.get("volumes", []))


def test_server_waits_for_healthy_db_and_points_at_it() -> None:
    services = compose()["services"]
    server = services["server"]
    assert server["depends_on"]["db"]["condition"] == "service_healthy"
    url = urlsplit(env(server)["BRANCHWORK_DATABASE_URL"])
    db_env = env(services["db"])
    assert url.scheme in ("postgresql", "postgres") and url.hostname == "db"
    assert (url.port or 5432) == 5432
    assert url.username == db_env["POSTGRES_USER"] and url.password == db_env["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == db_env["POSTGRES_DB"]
    # listens on all interfaces inside the container, published on the host's loopback
    command = server.get("command", [])
    assert env(server).get("BRANCHWORK_HOST") == "0.0.0.0" or "0.0.0.0" in command
    assert any(str(p).endswith(":8000:8000") or str(p) == "8000:8000" for p in server["ports"])
    assert "8000" in " ".join(server["healthcheck"]["test"]) and "/health" in " ".join(
        server["healthcheck"]["test"])


def test_worker_runs_the_example_registry_against_the_server() -> None:
    services = compose()["services"]
    worker = services["worker"]
    command = worker["command"]
    assert command[:2] == ["branchwork", "run-worker"] and ":" in command[2]
    assert worker["depends_on"]["server"]["condition"] == "service_healthy"
    url = urlsplit(env(worker)["BRANCHWORK_URL"])
    assert url.hostname == "server" and url.port == 8000


def test_images_are_built_from_the_dockerfile() -> None:
    services = compose()["services"]
    assert services["server"]["build"] == "." and services["worker"]["build"] == "."
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11" in dockerfile
    for folder in ("app", "client", "worker", "studio", "alembic"):
        assert f"COPY {folder} ./{folder}" in dockerfile
        assert (ROOT / folder).is_dir()
    assert "pip install ." in dockerfile and "EXPOSE 8000" in dockerfile


def test_the_worker_command_of_the_compose_file_runs(make_server) -> None:
    """The worker service's command, run for real against a server (as the image would)."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    server = make_server()
    command = compose()["services"]["worker"]["command"]
    env = dict(os.environ, BRANCHWORK_URL=server.url, PYTHONPATH=str(ROOT))
    with httpx.Client(base_url=server.url, timeout=30) as c:
        tid = c.post("/v1/tasks", json={"name": "hello", "args": {"name": "compose"}}).json()["id"]
        worker = subprocess.Popen([sys.executable, "-m", "branchwork.cli", *command[1:]],
                                  env=env, cwd="/")
        try:
            deadline = time.monotonic() + 30
            while (task := c.get(f"/v1/tasks/{tid}").json())["status"] != "succeeded":
                assert worker.poll() is None, "worker exited"
                assert time.monotonic() < deadline, task
                time.sleep(0.2)
            assert task["result"] == "hello, compose"
        finally:
            worker.terminate()
            worker.wait(30)

"""The compose file wires PostgreSQL, the server and a worker together (Docker cannot run here,
so the file is parsed and its wiring checked)."""

from __future__ import annotations

import re
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


def test_the_image_is_built_once_and_shared() -> None:
    """One service builds the image, the other runs it by its tag (issue 12: compose built
    the same image twice)."""
    services = compose()["services"]
    builders = [name for name, svc in services.items() if "build" in svc]
    assert builders == ["server"]
    assert services["server"]["build"] == "."
    assert services["worker"]["image"] == services["server"]["image"]
    assert services["worker"].get("pull_policy") == "never"


def _instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_dependencies_are_installed_before_the_source_is_copied() -> None:
    """A code change must not reinstall every dependency: the layer that installs them comes
    before any source folder is copied, and sees only pyproject.toml."""
    steps = _instructions()
    assert steps[0].startswith("FROM python:3.11")
    deps = next(i for i, s in enumerate(steps) if s.startswith("RUN") and "pip install -r" in s)
    copies_before = [s for s in steps[:deps] if s.startswith("COPY")]
    assert copies_before == ["COPY pyproject.toml ./"]
    for folder in ("app", "client", "worker", "studio", "alembic"):
        at = steps.index(f"COPY {folder} ./{folder}")
        assert at > deps and (ROOT / folder).is_dir()
    source = next(i for i, s in enumerate(steps) if s.startswith("RUN") and "--no-deps" in s)
    assert source > steps.index("COPY alembic ./alembic")
    assert "EXPOSE 8000" in steps


def test_the_dependency_list_of_the_image_is_the_projects() -> None:
    """The Dockerfile's one-liner that lists the dependencies, run here: it yields the base
    and server dependencies of pyproject.toml."""
    import subprocess
    import sys
    import tomllib

    run = next(s for s in _instructions() if "pip install -r" in s)
    code = re.search(r'python -c "(.*?)"\s*>', run).group(1)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split("\n")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert [line for line in out if line] == (project["dependencies"]
                                              + project["optional-dependencies"]["server"])
    assert "click>=8.1" in out and "fastapi>=0.115" in out


def test_dockerignore_keeps_environments_and_caches_out_of_the_context() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", ".git", "**/__pycache__", ".pytest_cache", ".ruff_cache"} <= ignored
    # ...and nothing the image copies is ignored.
    copied = {s.split()[1] for s in _instructions() if s.startswith("COPY")}
    assert not copied & ignored, copied & ignored


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

"""The operator commands of ``branchwork``, run as subprocesses against a real server, as a
user at a terminal (or a script with ``--json``) would: exit codes, lines printed, state left.

Issue 12: ``branchwork`` had only ``server``, ``db upgrade`` and ``run-worker``; no
``--version``, no scaffold, no way to list, inspect, cancel, retry, purge, pause or send.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import httpx
import pytest
import yaml

from cli_helpers import ROOT, background, bw, user_env
from worker_helpers import events, send, task, wait_status

TASKS = '''
import time

from branchwork import KV, Registry

registry = Registry()


@registry.task(max_retries=2)
def add(a: int, b: int) -> int:
    print(f"adding {a} and {b}")
    return a + b


@registry.task
def boom(message: str = "bad input") -> None:
    raise ValueError(message)


@registry.task
def chatty() -> str:
    print("my own line")
    KV.increment("chatty")      # an HTTP request from inside the task
    return "ok"


@registry.task
def slow(seconds: float = 30) -> None:
    time.sleep(seconds)


@registry.task
def fan_out(n: int = 3) -> int:
    for i in range(n):
        add.send(a=i, b=1)       # children: the task grows a tree
    return n


@registry.task
def first() -> int:
    return 1


@registry.task
def second() -> int:
    return 2


@registry.workflow
def pipeline():
    first >> second
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "cli_tasks.py").write_text(TASKS)
    return tmp_path


def ok(result) -> str:  # noqa: ANN001
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def test_version_and_help(tmp_path: Path) -> None:
    env = user_env()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert ok(bw("--version", env=env)).strip() == f"branchwork {version}"
    top = ok(bw("--help", env=env))
    assert "``" not in top  # no RST markup
    for command in ("server", "db", "run-worker", "init", "send", "status", "tasks", "queues",
                    "workers"):
        assert f"  {command} " in top
    server = ok(bw("server", "--help", env=env))
    assert "--log-level" in server and "least severe log lines" in server
    worker = ok(bw("run-worker", "--help", env=env))
    for flag in ("--log-level", "--verbose", "--reload", "--concurrency", "--isolation"):
        assert flag in worker


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    out = bw("--url", "http://127.0.0.1:9", "tasks", "ls", env=user_env())
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr.startswith("branchwork: cannot reach the server")
    assert "Traceback" not in out.stderr and len(out.stderr.splitlines()) == 2


def test_init_makes_a_project_that_runs(server, api: httpx.Client, tmp_path: Path) -> None:
    env = user_env(server.url)
    out = ok(bw("init", "myapp", env=env, cwd=tmp_path))
    app = tmp_path / "myapp"
    for name in ("tasks.py", "send.py", ".env", "docker-compose.yml", "README.md"):
        assert f"created myapp/{name}" in out and (app / name).is_file()
    assert "branchwork run-worker tasks:registry" in out
    services = yaml.safe_load((app / "docker-compose.yml").read_text())["services"]
    assert [name for name, svc in services.items() if "build" in svc] == ["server"]
    assert services["worker"]["image"] == services["server"]["image"]
    assert services["worker"]["command"] == "branchwork run-worker tasks:registry"
    assert "BRANCHWORK_URL=http://127.0.0.1:8000" in (app / ".env").read_text().splitlines()
    # Again: refuses to overwrite.
    again = bw("init", "myapp", env=env, cwd=tmp_path)
    assert again.returncode == 1 and "already exist" in again.stderr
    with background(["branchwork", "run-worker", "tasks:registry"], env, app,
                    tmp_path / "worker.log") as worker:
        worker.wait_for(" ready")
        import subprocess

        sent = subprocess.run(["python", "send.py"], env=env, cwd=app, capture_output=True,
                              text=True, timeout=60)
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.splitlines()[-1] == "result: 5"


def test_send_wait_watches_a_task_to_its_end(server, api: httpx.Client, project: Path) -> None:
    env = user_env(server.url)
    with background(["branchwork", "run-worker", "cli_tasks:registry"], env, project,
                    project / "worker.log") as worker:
        worker.wait_for(" ready")
        out = bw("send", "add", "--args", '{"a": 2, "b": 3}', "--wait", env=env, cwd=project)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0].startswith("sent task ")
        task_id = int(lines[0].split()[-1])
        assert lines[-1] == f"task {task_id} succeeded: 5"
        # The options the worker registered for `add` apply, as with add.send() in Python.
        assert task(api, task_id)["max_retries"] == 2
        assert f"task {task_id} add running (attempt 1)" in lines or any(
            "succeeded" in line for line in lines[1:-1])

        failed = bw("send", "boom", "--args", '{"message": "no such user"}', "-w", env=env)
        assert failed.returncode == 1
        fid = int(failed.stdout.splitlines()[0].split()[-1])
        assert failed.stdout.splitlines()[-1] == (
            f"task {fid} failed: ValueError: no such user")

        tree = bw("send", "fan_out", "--args", '{"n": 3}', "--wait", env=env)
        assert tree.returncode == 0, tree.stderr
        assert "tree: 4/4 finished (succeeded 4)" in tree.stdout

        run = bw("send", "pipeline", "--workflow", "--wait", env=env)
        assert run.returncode == 0, run.stderr
        run_lines = run.stdout.splitlines()
        run_id = int(run_lines[0].split()[-1])
        assert run_lines[0] == f"sent workflow run {run_id}"
        assert f"workflow run {run_id} succeeded: 2/2 nodes finished" in run_lines
        assert run_lines[-1] == f'workflow run {run_id} succeeded: {{"first": 1, "second": 2}}'

        scripted = bw("--json", "send", "add", "--args", '{"a": 1, "b": 1}', "--wait", env=env)
        body = json.loads(scripted.stdout)
        assert scripted.returncode == 0 and body["status"] == "succeeded" and body["result"] == 2


def test_send_without_wait_and_bad_input(server, api: httpx.Client) -> None:
    env = user_env(server.url)
    out = ok(bw("send", "resize", "--args", '{"image": "a.png"}', "-q", "images", "-p", "9",
                env=env))
    task_id = int(out.split()[-1])
    row = task(api, task_id)
    assert (row["queue"], row["priority"], row["args"]) == ("images", 9, {"image": "a.png"})
    bad = bw("send", "resize", "--args", "{not json", env=env)
    assert bad.returncode == 2 and "--args" in bad.stderr and "not JSON" in bad.stderr
    # The server refuses a bad queue name: one line with its reason, nothing sent.
    refused = bw("send", "resize", "-q", "no spaces allowed", env=env)
    assert refused.returncode == 1 and refused.stderr.startswith("branchwork: ")
    assert "queue" in refused.stderr and "Traceback" not in refused.stderr
    assert api.get("/v1/tasks").json()["tasks"][0]["id"] == task_id


def test_tasks_ls_show_cancel_retry(server, api: httpx.Client) -> None:
    env = user_env(server.url)
    a = send(api, "resize", {"image": "a.png"}, queue="images")
    b = send(api, "mail", {"to": "x"}, queue="email")
    listed = ok(bw("tasks", "ls", env=env))
    assert listed.splitlines()[0].split() == ["ID", "NAME", "QUEUE", "STATUS", "TRIES",
                                              "CREATED", "ERROR"]
    assert [line.split()[0] for line in listed.splitlines()[1:]] == [str(b), str(a)]
    only = ok(bw("tasks", "ls", "-q", "images", env=env))
    assert [line.split()[:4] for line in only.splitlines()[1:]] == [
        [str(a), "resize", "images", "queued"]]
    rows = json.loads(ok(bw("--json", "tasks", "ls", "--name", "mail", "--limit", "5", env=env)))
    assert [r["id"] for r in rows] == [b]

    assert ok(bw("tasks", "cancel", str(a), env=env)).strip() == f"task {a}: cancelled"
    assert task(api, a)["status"] == "cancelled"
    # Several ids: a refused one is a line on stderr, the others are still acted on.
    again = bw("tasks", "cancel", str(a), str(b), env=env)
    assert again.returncode == 1 and "already cancelled" in again.stderr
    assert again.stdout.strip() == f"task {b}: cancelled"
    assert task(api, b)["status"] == "cancelled"
    assert ok(bw("tasks", "retry", str(a), env=env)).strip() == f"task {a}: queued again"
    assert task(api, a)["status"] == "queued"
    shown = ok(bw("tasks", "show", str(a), env=env))
    assert "resize" in shown and "history" in shown and "retried_manually" in shown
    # User data is printed as it is, never read as rich markup.
    odd = send(api, "resize", {"image": "[/x] [bold]a.png"}, queue="images")
    assert '{"image":"[/x] [bold]a.png"}' in ok(bw("tasks", "show", str(odd), env=env))
    detail = json.loads(ok(bw("--json", "tasks", "show", str(a), env=env)))
    assert detail["id"] == a and events(detail) == ["cancelled", "retried_manually"]
    missing = bw("tasks", "show", "999999", env=env)
    assert missing.returncode == 1 and "not_found" in missing.stderr


def test_queues_pause_resume_limit_purge(server, api: httpx.Client, project: Path) -> None:
    env = user_env(server.url)
    queued = [send(api, "slow", {"seconds": 30}) for _ in range(3)]
    other = send(api, "slow", queue="other")
    assert ok(bw("queues", "pause", "default", env=env)).strip() == (
        "queue default: paused (now paused, limit none)")
    table = ok(bw("queues", "ls", env=env)).splitlines()
    assert table[0].split()[:4] == ["QUEUE", "STATE", "LIMIT", "QUEUED"]
    assert table[1].split()[:4] == ["default", "paused", "-", "3"]
    assert ok(bw("queues", "limit", "default", "1", env=env)).strip() == (
        "queue default: limit set (now paused, limit 1)")
    assert ok(bw("queues", "resume", "default", env=env)).strip() == (
        "queue default: resumed (now active, limit 1)")
    with background(["branchwork", "run-worker", "cli_tasks:registry", "--grace-period", "1"],
                    env, project, project / "worker.log") as worker:
        worker.wait_for(" ready")
        running = wait_status(api, queued[0], "running")["id"]
        # Purge: every queued task of the queue cancelled; the running one untouched.
        out = bw("queues", "purge", "default", env=env, stdin="y\n")
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().endswith("queue default: 2 queued task(s) cancelled")
        assert task(api, running)["status"] == "running"
        for tid in queued[1:]:
            row = task(api, tid)
            assert row["status"] == "cancelled" and events(row) == ["cancelled"]
        assert task(api, other)["status"] == "queued"
        again = json.loads(ok(bw("--json", "queues", "purge", "default", env=env)))
        assert again == {"queue": "default", "purged": 0}
    unlimited = ok(bw("queues", "limit", "default", "none", env=env)).strip()
    assert unlimited == "queue default: limit removed (now active, limit none)"
    bad = bw("queues", "limit", "default", "lots", env=env)
    assert bad.returncode == 2 and "whole number" in bad.stderr
    refused = bw("queues", "purge", "bad name!", "-y", env=env)
    assert refused.returncode == 1 and refused.stderr.startswith("branchwork: 422")


def test_purge_endpoint_refuses_bad_names_and_changes_nothing(server, api) -> None:
    tid = send(api, "x")
    response = api.post("/v1/queues/bad%20name/purge")
    assert response.status_code == 422 and response.json()["code"]
    assert api.post("/v1/queues/nosuch/purge").json() == {"queue": "nosuch", "purged": 0}
    assert task(api, tid)["status"] == "queued"


def test_workers_ls_and_status(server, api: httpx.Client, project: Path) -> None:
    env = user_env(server.url)
    assert ok(bw("workers", "ls", env=env)).strip() == "no workers have registered"
    with background(["branchwork", "run-worker", "cli_tasks:registry", "-c", "4"], env, project,
                    project / "worker.log") as worker:
        worker.wait_for(" ready")
        failed = send(api, "boom", {"message": "disk full"})
        wait_status(api, failed)
        done = send(api, "add", {"a": 1, "b": 2})
        wait_status(api, done)
        lines = ok(bw("workers", "ls", env=env)).splitlines()
        assert lines[0].split()[:4] == ["WORKER", "STATE", "QUEUES", "RUNNING"]
        assert len(lines) == 2 and lines[1].split()[1] == "online"
        rows = json.loads(ok(bw("--json", "workers", "ls", env=env)))
        assert len(rows) == 1 and rows[0]["online"] is True
        status = ok(bw("status", env=env))
        assert f"server {server.url}  healthy" in status
        assert "workers online: 1" in status
        queue_line = next(line for line in status.splitlines() if line.startswith("default"))
        # default: active, no limit, 0 queued, 0 running, 1 succeeded, 1 failed, 0 cancelled
        assert queue_line.split()[:8] == ["default", "active", "-", "0", "0", "1", "1", "0"]
        assert float(queue_line.split()[8]) > 0  # finished per minute over 5 minutes
        assert "ValueError: disk full" in status
        data = json.loads(ok(bw("--json", "status", "--failures", "1", env=env)))
        assert [t["id"] for t in data["recent_failures"]] == [failed]
        assert data["throughput"]["default"]["failed"][-1] >= 1
    # Stopped: gone from `workers ls`, shown with --all.
    assert ok(bw("workers", "ls", env=env)).strip() == "no workers have registered"
    assert "stopped" in ok(bw("workers", "ls", "--all", env=env))


def test_purge_races_claims_on_another_replica(make_server, api: httpx.Client) -> None:
    """Purge on one replica while a worker claims on another: every task ends either purged
    (cancelled, never claimed) or claimed (never cancelled), and the count printed is the
    number of tasks purged."""
    import threading
    import time

    a, b = make_server(), make_server()
    with httpx.Client(base_url=a.url, timeout=30) as ca:
        ids = [r["id"] for r in ca.post("/v1/tasks/batch", json={"tasks": [
            {"name": "x", "queue": "race"} for _ in range(300)]}).json()["tasks"]]
        claimed: list[int] = []
        stop = threading.Event()

        def claim() -> None:
            while not stop.is_set():
                got = ca.post("/v1/claim", json={"worker_id": "racer", "queues": ["race"],
                                                 "limit": 1, "wait_seconds": 0}).json()["tasks"]
                claimed.extend(t["id"] for t in got)
                if not got:
                    return
                time.sleep(0.01)  # slow enough that the purge lands while it claims

        thread = threading.Thread(target=claim)
        thread.start()
        out = bw("--url", b.url, "--json", "queues", "purge", "race", env=user_env())
        stop.set()
        thread.join(30)
    purged = json.loads(ok(out))["purged"]
    with httpx.Client(base_url=b.url, timeout=30) as cb:
        rows = [cb.get(f"/v1/tasks/{i}").json() for i in ids]
    cancelled = {r["id"] for r in rows if r["status"] == "cancelled"}
    assert purged == len(cancelled) == 300 - len(claimed)
    assert 0 < purged < 300  # they did race
    assert cancelled.isdisjoint(claimed)
    assert cancelled | set(claimed) == set(ids)
    for r in rows:
        assert events(r) == (["cancelled"] if r["id"] in cancelled else ["claimed"])


def test_token_from_option_or_environment(make_server) -> None:
    """Against a server that requires a token: refused without it (one line), served with
    ``--token`` or ``BRANCHWORK_API_TOKEN``."""
    srv = make_server(api_token="op-secret")
    refused = bw("--url", srv.url, "queues", "ls", env=user_env())
    assert refused.returncode == 1 and refused.stderr.startswith("branchwork: 401")
    assert ok(bw("--url", srv.url, "--token", "op-secret", "queues", "ls", env=user_env()))
    env = user_env(srv.url, BRANCHWORK_API_TOKEN="op-secret")
    assert json.loads(ok(bw("--json", "queues", "ls", env=env))) == []

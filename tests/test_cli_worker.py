"""A worker that talks: ``branchwork run-worker`` run as a user runs it, its output read.

Issue 12: the worker printed nothing per task, did not log failures, had no
``--log-level``, no ``--reload``, and task logs captured under process isolation were full of
the client's own httpx request lines.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from cli_helpers import background, user_env
from test_cli import TASKS
from worker_helpers import send, task, wait_status

DURATION = r"(\d+ ms|\d+\.\d\d s)"  # from claim to outcome, as the studio shows it
LINE = re.compile(r"^\S+ \S+ branchwork\.worker (INFO|WARNING) (task .*)$", re.M)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "cli_tasks.py").write_text(TASKS)
    return tmp_path


def task_lines(output: str) -> list[tuple[str, str]]:
    return LINE.findall(output)


def test_banner_and_one_line_per_finished_task(server, api: httpx.Client, project: Path) -> None:
    env = user_env(server.url)
    with background(["branchwork", "run-worker", "cli_tasks:registry", "-c", "3"], env, project,
                    project / "w.log") as worker:
        out = worker.wait_for(" ready")
        banner = out[out.index(" ready"):].splitlines()
        assert banner[1].split() == ["server", server.url, "(studio:", f"{server.url}/studio)"]
        assert banner[2].split()[:3] == ["registry", "cli_tasks:registry:",
                                         str(TASKS.count("@registry.task"))]
        assert banner[3].split() == ["queues", "default"]
        assert banner[4].split() == ["concurrency", "3,", "process", "isolation"]
        ok = send(api, "add", {"a": 1, "b": 2}, max_retries=2)
        bad = send(api, "boom", {"message": "no\nsuch user"})
        wait_status(api, ok)
        wait_status(api, bad)
        text = worker.wait_for(lambda t: len(task_lines(t)) >= 2)
    lines = dict((line.split()[1], (level, line)) for level, line in task_lines(text))
    level, line = lines[str(ok)]
    assert level == "INFO"
    assert re.fullmatch(rf"task {ok} add succeeded in {DURATION} \(attempt 1 of 3\)", line), line
    level, line = lines[str(bad)]
    assert level == "WARNING"
    assert re.fullmatch(rf"task {bad} boom failed in {DURATION} \(attempt 1 of 1\): "
                        r"ValueError: no such user", line), line


def test_log_level_warning_shows_only_failures(server, api: httpx.Client, project: Path) -> None:
    env = user_env(server.url)
    with background(["branchwork", "run-worker", "cli_tasks:registry", "--log-level",
                     "warning"], env, project, project / "w.log") as worker:
        ok = send(api, "add", {"a": 1, "b": 2})
        bad = send(api, "boom")
        wait_status(api, ok, timeout=30)
        wait_status(api, bad, timeout=30)
        text = worker.wait_for(f"task {bad} boom failed")
    assert " ready" not in text and f"task {ok} add" not in text


def test_verbose_shows_debug_lines(server, api: httpx.Client, project: Path) -> None:
    env = user_env(server.url)
    with background(["branchwork", "run-worker", "cli_tasks:registry", "-v"], env, project,
                    project / "w.log") as worker:
        worker.wait_for(" ready")
        assert " DEBUG " in worker.output()
        # The client's request lines stay out even at debug: they are not the worker's story.
        assert "HTTP Request:" not in worker.output()


def test_task_logs_hold_the_tasks_own_output_only(server, api: httpx.Client,
                                                  project: Path) -> None:
    env = user_env(server.url)
    with background(["branchwork", "run-worker", "cli_tasks:registry"], env, project,
                    project / "w.log"):
        tid = send(api, "chatty")
        row = wait_status(api, tid)
    assert row["status"] == "succeeded"
    assert api.get("/v1/kv/chatty").json()["value"] == "1"  # the task did make a request
    [log] = row["logs"]
    assert log["output"] == "my own line\n"


def test_reload_restarts_the_worker_on_a_code_change(server, api: httpx.Client,
                                                     project: Path) -> None:
    env = user_env(server.url)
    module = project / "cli_tasks.py"
    with background(["branchwork", "run-worker", "cli_tasks:registry", "--reload",
                     "--grace-period", "1"], env, project, project / "w.log") as worker:
        worker.wait_for(" ready")
        first = send(api, "add", {"a": 1, "b": 2})
        assert wait_status(api, first)["result"] == 3
        time.sleep(0.5)
        module.write_text(TASKS.replace("return a + b", "return (a + b) * 100"))
        worker.wait_for("cli_tasks.py changed; restarting the worker")
        worker.wait_for(lambda t: t.count(" ready") >= 2, timeout=30)
        second = send(api, "add", {"a": 1, "b": 2})
        assert wait_status(api, second)["result"] == 300
        worker.signal(signal.SIGINT)
        assert worker.proc.wait(30) == 0
    assert task(api, first)["result"] == 3

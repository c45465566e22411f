"""A client generated from a live server's ``/openapi.json`` returns typed objects.

``openapi-python-client`` (the dev extra) generates a package into a temporary folder at test
time, from the document the running server serves; the test then sends a task with it, claims
it, reads it and reports it, and gets model instances (datetimes, UUIDs, enums) back, not dicts.
"""

from __future__ import annotations

import datetime
import importlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tokens_helpers import ADMIN, bearer

PACKAGE = "bw_generated_api"
GENERATOR = Path(sys.executable).with_name("openapi-python-client")
# No post hooks: the generated code is used as written (no formatter needed on PATH).
CONFIG = f"post_hooks: []\npackage_name_override: {PACKAGE}\n"


@pytest.fixture
def generated(make_server: Any, tmp_path: Path) -> Iterator[tuple[Any, ModuleType]]:
    server = make_server(api_token=ADMIN)
    doc = tmp_path / "openapi.json"
    doc.write_bytes(httpx.get(f"{server.url}/openapi.json", headers=bearer(ADMIN),
                              timeout=10).content)
    (tmp_path / "config.yaml").write_text(CONFIG)
    out = subprocess.run(
        [str(GENERATOR), "generate", "--path", str(doc), "--config",
         str(tmp_path / "config.yaml"), "--output-path", str(tmp_path / PACKAGE),
         "--meta", "none"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    # Every schema of the document became a model: nothing was dropped with a warning.
    assert "Warning" not in out.stdout and "Unable" not in out.stdout, out.stdout
    sys.path.insert(0, str(tmp_path))
    try:
        yield server, importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _module(package: ModuleType, name: str) -> ModuleType:
    return importlib.import_module(f"{package.__name__}.{name}")


def test_generated_client_sends_claims_reads_and_reports_with_typed_answers(
        generated: tuple[Any, ModuleType]) -> None:
    server, api = generated
    models = _module(api, "models")
    send_task = _module(api, "api.tasks.send_task")
    get_task = _module(api, "api.tasks.get_task")
    claim_tasks = _module(api, "api.workers.claim_tasks")
    report_outcomes = _module(api, "api.workers.report_outcomes")
    client = api.AuthenticatedClient(base_url=server.url, token=ADMIN,
                                     raise_on_unexpected_status=True)
    with client as c:
        sent = send_task.sync(client=c, body=models.TaskIn(
            name="typed.add", args={"a": 2, "b": 3}, queue="typed"))
        assert isinstance(sent, models.SentOut) and sent.id >= 1 and sent.duplicate is False

        claimed = claim_tasks.sync(client=c, body=models.ClaimIn(
            worker_id="w-typed", queues=["typed"], limit=1))
        assert isinstance(claimed, models.ClaimedOut)
        [task] = claimed.tasks
        assert isinstance(task, models.ClaimedTaskOut)
        assert task.id == sent.id and task.name == "typed.add" and task.args == {"a": 2, "b": 3}
        assert isinstance(task.lease_token, uuid.UUID)
        assert isinstance(task.lease_expires_at, datetime.datetime)
        assert task.lease_expires_at.tzinfo is not None

        running = get_task.sync(client=c, task_id=sent.id)
        assert isinstance(running, models.TaskDetailOut)
        assert running.status == models.TaskDetailOutStatus.RUNNING
        assert isinstance(running.created_at, datetime.datetime)
        assert all(isinstance(h, models.HistoryOut) for h in running.history)

        reported = report_outcomes.sync(client=c, body=models.ReportIn(
            worker_id="w-typed", results=[models.ResultIn(
                id=task.id, lease_token=task.lease_token,
                outcome=models.ResultInOutcome.SUCCEEDED, result={"sum": 5}, logs="5\n")]))
        assert isinstance(reported, models.ReportedBatchOut)
        [outcome] = reported.results
        assert isinstance(outcome, models.ReportedOut)
        assert outcome.id == task.id
        assert outcome.outcome == models.ReportedOutOutcome.APPLIED

        done = get_task.sync(client=c, task_id=sent.id)
        assert isinstance(done, models.TaskDetailOut)
        assert done.status == models.TaskDetailOutStatus.SUCCEEDED
        assert done.result == {"sum": 5}
        assert isinstance(done.finished_at, datetime.datetime)
        assert [(h.event, h.status.value) for h in done.history] == [
            ("claimed", "running"), ("succeeded", "succeeded")]
        assert [log.output for log in done.logs] == ["5\n"]
        assert all(isinstance(log, models.LogOut) for log in done.logs)

    # What the server says over plain HTTP agrees (the typed client hid nothing).
    raw = httpx.get(f"{server.url}/v1/tasks/{sent.id}", headers=bearer(ADMIN), timeout=10)
    assert raw.json()["status"] == "succeeded" and raw.json()["result"] == {"sum": 5}

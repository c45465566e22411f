"""docs/protocol.md is enough to write a worker: its shell worker, run verbatim, works."""

from __future__ import annotations

import re
import shutil

import pytest

from worker_helpers import ROOT, running, send, wait_status, worker_env

pytestmark = pytest.mark.skipif(not (shutil.which("jq") and shutil.which("curl")),
                                reason="needs jq and curl")


def _shell_worker() -> str:
    doc = (ROOT / "docs" / "protocol.md").read_text()
    section = doc.split("## A worker in a dozen lines of shell", 1)[1]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


def test_documented_shell_worker_completes_and_fails_tasks(server, api):
    ok = send(api, "shell", {"command": "echo hi from sh"}, queue="shell")
    bad = send(api, "shell", {"command": "echo broken >&2; exit 3"}, queue="shell")
    script = "H='content-type: application/json'\n" + _shell_worker()
    with running(["bash", "-c", script], worker_env(server.url)):
        done = wait_status(api, ok, timeout=30)
        failed = wait_status(api, bad, timeout=30)
    assert done["status"] == "succeeded"
    assert done["result"] == {"output": "hi from sh"}
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "ExitStatus"
    assert failed["error"]["message"] == "broken"

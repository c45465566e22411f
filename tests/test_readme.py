"""The README's quick start and curl walk-through, executed from the README's own text.

Issue 12: the README's Python block could not be used as a tasks module (it sent and waited
at import, so a worker on it hung), and the curl walk-through's lease token was a
placeholder that got a 422. Here each marked block (``<!-- readme-test: ... -->``) is run as
a user would: the server block in one shell, the worker block in a second, the send script
in a third, then the curl block; what they print must be what the README says they print.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cli_helpers import ROOT, background, marked_blocks, user_env
from servers import free_port

README = ROOT / "README.md"


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip().splitlines()]


def test_the_readme_marks_every_block_it_promises() -> None:
    blocks = marked_blocks(README)
    assert {"server", "file tasks.py", "worker", "file send.py", "send", "output send",
            "curl", "output curl"} <= set(blocks)
    # The tasks module defines; it neither sends nor waits (a worker imports it).
    tasks = blocks["file tasks.py"]
    assert ".send(" not in tasks and ".wait(" not in tasks
    # No placeholder token: the curl block captures the real one.
    assert "6f1c" not in blocks["curl"] and "lease_token" in blocks["curl"]


@pytest.mark.skipif(shutil.which("jq") is None, reason="the walk-through uses jq")
def test_quick_start_and_curl_walk_through_run_as_written(db_url: str, tmp_path: Path) -> None:
    blocks = marked_blocks(README)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    for label, body in blocks.items():
        if label.startswith("file "):
            (tmp_path / label.removeprefix("file ")).write_text(body)
    server_env = user_env(None, BRANCHWORK_DATABASE_URL=db_url, BRANCHWORK_PORT=str(port))
    env = user_env(url)

    def at_port(text: str) -> str:  # the README's commands talk to the default port
        return text.replace("localhost:8000", f"127.0.0.1:{port}")

    with background(blocks["server"], server_env, tmp_path, tmp_path / "server.log") as srv:
        out = srv.wait_for("studio: ", timeout=60)
        # Terminal 1 says where the studio is.
        assert f"(studio: {url}/studio" in out
        with background(blocks["worker"], env, tmp_path, tmp_path / "worker.log") as worker:
            worker.wait_for(" ready", timeout=30)
            import subprocess

            sent = subprocess.run(["bash", "-c", blocks["send"]], env=env, cwd=tmp_path,
                                  capture_output=True, text=True, timeout=60)
            assert sent.returncode == 0, sent.stderr
            assert _lines(sent.stdout) == _lines(blocks["output send"])
            # Terminal 2 said what it ran.
            worker.wait_for("task 1 add succeeded in ")

            walk = subprocess.run(["bash", "-e", "-c", at_port(blocks["curl"])], env=env,
                                  cwd=tmp_path, capture_output=True, text=True, timeout=60)
            assert walk.returncode == 0, walk.stderr
            assert _lines(walk.stdout) == _lines(blocks["output curl"])

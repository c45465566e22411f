"""Running the ``branchwork`` command the way a user does: as a subprocess, reading what it
prints. Long-running commands (server, worker) write to a file the test can read while they
run; they are always stopped, with everything they started."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def user_env(url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a user's shell: ``branchwork`` and ``python`` on the PATH, the
    test's settings stripped (so nothing leaks in by accident)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("BRANCHWORK_") and k not in ("PYTHONPATH", "COLUMNS")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    env["COLUMNS"] = "120"
    if url is not None:
        env["BRANCHWORK_URL"] = url
    env.update(extra)
    return env


def bw(*args: str, env: dict[str, str], cwd: Path | str = ROOT, timeout: float = 60,
       stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``branchwork ARGS`` run to its end."""
    return subprocess.run([str(BIN / "branchwork"), *args], env=env, cwd=cwd, text=True,
                          capture_output=True, timeout=timeout, input=stdin)


class Background:
    """A command running in its own process group; ``output()`` is what it printed so far."""

    def __init__(self, command: list[str] | str, env: dict[str, str], cwd: Path | str,
                 log: Path) -> None:
        self.log = log
        self._file = log.open("w")
        shell = isinstance(command, str)
        self.proc = subprocess.Popen(command if not shell else ["bash", "-c", command],
                                     env=env, cwd=cwd, stdout=self._file,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     text=True)

    def output(self) -> str:
        return self.log.read_text()

    def wait_for(self, check: Callable[[str], bool] | str, timeout: float = 30) -> str:
        """Wait until the output satisfies ``check`` (or contains it); fail with the output."""
        test = check if callable(check) else (lambda text: check in text)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.output()
            if test(text):
                return text
            if self.proc.poll() is not None:
                text = self.output()
                if test(text):
                    return text
                raise AssertionError(f"exited {self.proc.returncode} before {check!r}:\n{text}")
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {check!r}:\n{self.output()}")

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 20) -> int:
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything it left behind
        self._file.close()
        return self.proc.returncode


@contextmanager
def background(command: list[str] | str, env: dict[str, str], cwd: Path | str,
               log: Path) -> Iterator[Background]:
    proc = Background(command, env, cwd, log)
    try:
        yield proc
    finally:
        proc.stop()


FENCE = re.compile(r"<!-- readme-test: (?P<label>[^>]+?) -->\n```[a-z]*\n(?P<body>.*?)```",
                   re.S)


def marked_blocks(path: Path) -> dict[str, str]:
    """The fenced blocks of ``path`` marked ``<!-- readme-test: LABEL -->``, by label."""
    blocks: dict[str, str] = {}
    for m in FENCE.finditer(path.read_text()):
        assert m["label"] not in blocks, f"two blocks labelled {m['label']!r}"
        blocks[m["label"]] = m["body"]
    return blocks

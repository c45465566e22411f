"""The ``branchwork`` command: run the service and workers, and operate them.

The command line lives with the client so that ``pip install branchwork`` (client and worker)
has it all: the operator commands talk to any replica over the HTTP API through
``branchwork.Client``; ``server`` and ``db upgrade`` need the ``server`` extra. The commands
live in ``branchwork._cli`` (one module per group); this module gathers them and is the one
above every layer (``tests/test_architecture.py``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

import click

from ._cli.approvals import approvals
from ._cli.common import CliState
from ._cli.init import init
from ._cli.prune import prune
from ._cli.queues import queues
from ._cli.runs import runs
from ._cli.send import send
from ._cli.service import (
    LOG_LEVELS,
    NOT_INSTALLED,
    run_worker,
    server_installed,
    setup_logging,
)
from ._cli.status import status
from ._cli.tasks import tasks
from ._cli.tokens import tokens
from ._cli.workers import workers

__all__ = ["NOT_INSTALLED", "cli", "main", "server_installed"]


def _version() -> str:
    try:
        return version("branchwork")
    except PackageNotFoundError:  # a source tree that was not installed
        from . import __version__

        return __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(_version(), "-V", "--version", prog_name="branchwork",
                      message="%(prog)s %(version)s")
@click.option("--url", envvar="BRANCHWORK_URL", default=None, metavar="URL",
              help="server URL [env BRANCHWORK_URL; default http://127.0.0.1:8000]")
@click.option("--token", envvar="BRANCHWORK_API_TOKEN", default=None, metavar="TOKEN",
              help="API token, when the server requires one [env BRANCHWORK_API_TOKEN]")
@click.option("--json", "as_json", is_flag=True, help="print JSON (for scripts) instead of tables")
@click.pass_context
def cli(ctx: click.Context, url: str | None, token: str | None, as_json: bool) -> None:
    """Branchwork: task orchestration on PostgreSQL.

    \b
    Run it:     branchwork server | db upgrade | run-worker module:registry | init
    Operate it: branchwork status | send | tasks | approvals | queues | workers | runs | prune
    """
    state = CliState(url=url, token=token, as_json=as_json)
    ctx.obj = state
    ctx.call_on_close(state.close)


def _on_server(command: str, args: argparse.Namespace) -> None:
    """Run ``command`` of ``branchwork.app.cli`` (imported only now: the server extra)."""
    if not server_installed():
        click.echo(NOT_INSTALLED, err=True)
        sys.exit(2)
    from branchwork.app import cli as server_cli

    sys.exit(int(getattr(server_cli, command)(args) or 0))


@click.command("server")
@click.option("--host", default=None, help="bind address [env BRANCHWORK_HOST; default 127.0.0.1]")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="port [env BRANCHWORK_PORT; default 8000]")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default="info", show_default=True,
              help="least severe log lines printed (the server's and uvicorn's)")
def server(host: str | None, port: int | None, log_level: str) -> None:
    """Run the HTTP API and the studio."""
    setup_logging(log_level)
    _on_server("serve", argparse.Namespace(host=host, port=port, log_level=log_level))


@click.group("db")
def db() -> None:
    """Database commands."""


@db.command("upgrade")
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Apply pending migrations (up to REVISION, default head) without starting the server."""
    setup_logging("info")
    _on_server("db_upgrade", argparse.Namespace(revision=revision))


for command in (server, db, run_worker, init, send, status, tasks, queues, workers, tokens,
                approvals, runs, prune):
    cli.add_command(command)


def main(argv: Sequence[str] | None = None) -> int:
    """The console entry point; returns the exit code (click exits with it)."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="branchwork",
                 standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

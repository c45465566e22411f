"""The service's commands, ``server`` and ``db upgrade``; ``branchwork.cli`` declares them
and imports this module only when one of them runs (it needs the ``server`` extra).
A database that cannot be reached is one line on stderr and exit code 1 (``preflight``)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import Any


def serve(args: argparse.Namespace) -> int:
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

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:  # the studio is what a person opens first: say where it is
                base = f"http://{_browsable(settings.host)}:{settings.port}"
                print(f"branchwork: serving {base}  (studio: {base}/studio, API docs: "
                      f"{base}/docs)", file=sys.stderr, flush=True)

    from .main import create_app
    from .preflight import StartupError, check_database
    from .settings import Settings

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = Settings(**overrides)
    if settings.database_url is None:
        print(f"branchwork: no BRANCHWORK_DATABASE_URL; embedded PostgreSQL data in "
              f"{settings.data_dir}", file=sys.stderr, flush=True)
    else:
        try:
            check_database(settings.database_url)
        except StartupError as exc:
            print(exc, file=sys.stderr)
            return 1
    config = uvicorn.Config(create_app(settings), host=settings.host, port=settings.port,
                            log_level=args.log_level, timeout_graceful_shutdown=5)
    server = Server(config)
    server.run()
    # uvicorn returns (exit code 0) when the application's start-up failed; say so.
    return 0 if server.started else 1


def _browsable(host: str) -> str:
    """Where a browser on this machine reaches a server bound to ``host``."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def db_upgrade(args: argparse.Namespace) -> int:
    from . import migrate
    from .database import resolve_database_url
    from .preflight import StartupError, check_database
    from .settings import Settings

    settings = Settings()
    if settings.database_url is not None:
        try:
            check_database(settings.database_url)
        except StartupError as exc:
            print(exc, file=sys.stderr)
            return 1
    url = resolve_database_url(settings.database_url, settings.data_dir)
    migrate.upgrade(url, args.revision)
    print(f"branchwork: database at revision {args.revision}")
    return 0


__all__ = ["db_upgrade", "serve"]

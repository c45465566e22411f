"""The service's commands, ``server`` and ``db upgrade``; ``branchwork.cli`` declares them
and imports this module only when one of them runs (it needs the ``server`` extra)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator


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


def db_upgrade(args: argparse.Namespace) -> int:
    from . import migrate
    from .database import resolve_database_url
    from .settings import Settings

    settings = Settings()
    url = resolve_database_url(settings.database_url, settings.data_dir)
    migrate.upgrade(url, args.revision)
    print(f"branchwork: database at revision {args.revision}")
    return 0


__all__ = ["db_upgrade", "serve"]

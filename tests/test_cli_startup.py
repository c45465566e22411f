"""Start-up problems are one line: what failed, the URL without its password, the fix.

Issue 12: an unreachable database printed a 171-line traceback at ``branchwork server``;
``db upgrade`` on a missing database 110 lines. The studio's URL was not printed at start.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

import pg
from cli_helpers import background, bw, user_env
from servers import free_port


def _with(url: str, *, password: str | None = None, port: int | None = None,
          database: str | None = None) -> str:
    parts = urlsplit(url)
    user = parts.username or "postgres"
    auth = f"{user}:{password}" if password else user
    netloc = f"{auth}@{parts.hostname}:{port or parts.port or 5432}"
    return parts._replace(netloc=netloc, path=f"/{database or parts.path.lstrip('/')}").geturl()


@pytest.mark.parametrize("command", [["server"], ["db", "upgrade"]])
def test_unreachable_database_is_one_line(command: list[str]) -> None:
    url = f"postgresql://branchwork:s3cret@127.0.0.1:{free_port()}/branchwork"
    out = bw(*command, env=user_env(None, BRANCHWORK_DATABASE_URL=url), timeout=60)
    assert out.returncode == 1
    [line] = out.stderr.strip().splitlines()
    shown = url.replace("s3cret", "***")
    assert line == (f"branchwork: cannot connect to PostgreSQL at {shown} (connection refused); "
                    "start it, or set BRANCHWORK_DATABASE_URL=postgresql://USER:PASSWORD@HOST:"
                    "PORT/DB (unset it to use the embedded PostgreSQL)")
    assert "s3cret" not in out.stderr + out.stdout


@pytest.mark.parametrize("command", [["server"], ["db", "upgrade"]])
def test_missing_database_says_how_to_create_it(pg_server: str, command: list[str]) -> None:
    url = _with(pg_server, password="s3cret", database="no_such_db_h5")
    out = bw(*command, env=user_env(None, BRANCHWORK_DATABASE_URL=url), timeout=60)
    assert out.returncode == 1
    [line] = out.stderr.strip().splitlines()
    parts = urlsplit(url)
    assert line.startswith(f"branchwork: database 'no_such_db_h5' does not exist at "
                           f"{url.replace('s3cret', '***')}; ")
    assert f"`createdb -h {parts.hostname or 'localhost'} -p {parts.port or 5432} -U " in line
    assert "no_such_db_h5`" in line
    assert "BRANCHWORK_DATABASE_URL=" in line and "s3cret" not in out.stderr


def test_db_upgrade_then_server_prints_the_studio_url(pg_server: str, tmp_path: Path) -> None:
    """An empty database: ``db upgrade`` migrates it, ``server`` then says where it serves."""
    name = f"bw_h5_{uuid.uuid4().hex[:10]}"
    with pg.admin(pg_server) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = pg.with_database(pg_server, name)
    try:
        env = user_env(None, BRANCHWORK_DATABASE_URL=url)
        upgraded = bw("db", "upgrade", env=env, timeout=120)
        assert upgraded.returncode == 0, upgraded.stderr
        assert upgraded.stdout.strip() == "branchwork: database at revision head"
        port = free_port()
        env["BRANCHWORK_PORT"] = str(port)
        with background(["branchwork", "server"], env, tmp_path, tmp_path / "s.log") as srv:
            base = f"http://127.0.0.1:{port}"
            srv.wait_for(f"branchwork: serving {base}  (studio: {base}/studio, "
                         f"API docs: {base}/docs)", timeout=60)
            assert httpx.get(f"{base}/health").status_code == 200
            assert srv.stop() == 0
    finally:
        pg.drop(pg_server, name)

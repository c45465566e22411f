"""Start-up checks that turn a wall of traceback into one line: what failed, where (the
URL without its password) and the fix. ``branchwork server`` and ``db upgrade`` run them
before anything else touches the database."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg

from .database import libpq_url

CONNECT_TIMEOUT = 5


class StartupError(Exception):
    """A start-up problem the user can fix; its message is the whole story, on one line."""


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***`` (what may be printed)."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not at or not colon:
        return url
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))


def check_database(url: str) -> None:
    """Connect once; raise ``StartupError`` saying what failed and how to fix it."""
    try:
        psycopg.connect(libpq_url(url), connect_timeout=CONNECT_TIMEOUT, autocommit=True).close()
    except psycopg.Error as exc:
        raise StartupError(explain(url, exc)) from None


def explain(url: str, exc: Exception) -> str:
    parts = urlsplit(libpq_url(url))
    shown = redact(url)
    reason = " ".join(str(exc).split())
    database = unquote(parts.path.lstrip("/")) or parts.username or "postgres"
    host, port, user = parts.hostname or "localhost", parts.port or 5432, parts.username
    if "does not exist" in reason and "database" in reason:
        flags = f"-h {host} -p {port}" + (f" -U {user}" if user else "")
        return (f"branchwork: database {database!r} does not exist at {shown}; "
                f"create it with `createdb {flags} {database}` or point "
                f"BRANCHWORK_DATABASE_URL=postgresql://USER:PASSWORD@HOST:PORT/DB at another")
    if "password authentication failed" in reason or "no password supplied" in reason:
        return (f"branchwork: PostgreSQL at {shown} refused the login of user {user!r}; "
                f"fix the user or password in BRANCHWORK_DATABASE_URL")
    return (f"branchwork: cannot connect to PostgreSQL at {shown} "
            f"({_short_reason(reason)}); start it, or set "
            f"BRANCHWORK_DATABASE_URL=postgresql://USER:PASSWORD@HOST:PORT/DB "
            f"(unset it to use the embedded PostgreSQL)")


def _short_reason(reason: str) -> str:
    for known in ("Connection refused", "No such file or directory", "timeout expired", "Name or service not known",
                  "could not translate host name", "No route to host", "Network is unreachable"):
        if known.lower() in reason.lower():
            return known.lower()
    return reason[:200]

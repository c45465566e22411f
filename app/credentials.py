"""Who is calling: a bearer token (the API) or a signed session cookie (the studio), resolved
to a :class:`~.engine.tokens.Caller` by ``GuardMiddleware`` before any route runs.

Authentication is on when ``BRANCHWORK_API_TOKEN`` is set or any token was ever created
(revoked ones count, so revoking tokens never opens a server). Off, every caller is
:data:`~.engine.tokens.OPEN` and may do everything, as before tokens existed.

Studio sessions read ``<issued>.<nonce>.<hmac>`` for the admin token (the key is derived
from it, so changing it ends every session) and ``<issued>.<nonce>.<token id>.<hmac>`` for
a stored token (the key is derived from the token's stored hash, so revoking the token ends
its sessions at the next request).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import TYPE_CHECKING

from starlette.requests import cookie_parser

from .engine.tokens import ADMIN, OPEN, Caller, caller_of

if TYPE_CHECKING:
    from .state import ServerState

# Where the middleware leaves the caller for the routes (``app/access.py``) and the studio.
CALLER = "branchwork.caller"
SESSION_COOKIE = "bw_session"
SESSION_SECONDS = 12 * 3600


def _key(material: str, version: bytes = b"v1") -> bytes:
    return hmac.new(material.encode(), b"branchwork-studio-session-" + version,
                    hashlib.sha256).digest()


def _sign(key: bytes, payload: str) -> str:
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def _fresh(issued: str, now: float | None) -> bool:
    if not issued.isdigit():
        return False
    age = (now if now is not None else time.time()) - int(issued)
    return 0 <= age < SESSION_SECONDS


def make_session(token: str, now: float | None = None) -> str:
    """A session for the admin token (``BRANCHWORK_API_TOKEN``)."""
    payload = f"{int(now if now is not None else time.time())}.{secrets.token_hex(16)}"
    return f"{payload}.{_sign(_key(token), payload)}"


def session_ok(token: str, value: str | None, now: float | None = None) -> bool:
    """Whether ``value`` is a live session of the admin token ``token``."""
    if not value or value.count(".") != 2:
        return False
    issued, nonce, sig = value.split(".")
    return (hmac.compare_digest(_sign(_key(token), f"{issued}.{nonce}"), sig)
            and _fresh(issued, now))


def make_token_session(token_id: int, secret_sha256: str, now: float | None = None) -> str:
    """A session for a stored token, signed with a key derived from its stored hash."""
    payload = (f"{int(now if now is not None else time.time())}.{secrets.token_hex(16)}."
               f"{token_id}")
    return f"{payload}.{_sign(_key(secret_sha256, b'v2'), payload)}"


async def auth_on(state: ServerState) -> bool:
    return bool(state.settings.api_token) or await state.tokens.enabled()


def _is_admin_token(state: ServerState, given: str) -> bool:
    admin = state.settings.api_token
    return bool(admin) and hmac.compare_digest(given.encode(), str(admin).encode())


async def token_caller(state: ServerState, given: str) -> Caller | None:
    """The caller a presented token stands for: the admin token, or a live stored token."""
    if _is_admin_token(state, given):
        return ADMIN  # needs no database: checked before anything else
    return await state.tokens.caller(given)


async def api_caller(state: ServerState, authorization: bytes | None) -> Caller | None:
    """The caller of an API request; None when authentication is on and it has no valid
    ``Authorization: Bearer`` token."""
    header = (authorization or b"").decode("latin-1")
    given = header[7:].strip() if header[:7].lower() == "bearer " else ""
    if given and _is_admin_token(state, given):
        return ADMIN
    if not await auth_on(state):
        return OPEN
    return await state.tokens.caller(given) if given else None


async def studio_caller(state: ServerState, cookie: bytes | None) -> Caller | None:
    """The caller of a studio request; None when authentication is on and it has no live
    session (the studio then shows its login page)."""
    if not await auth_on(state):
        return OPEN
    value = cookie_parser((cookie or b"").decode("latin-1")).get(SESSION_COOKIE)
    if not value:
        return None
    parts = value.split(".")
    admin = state.settings.api_token
    if len(parts) == 3:
        return ADMIN if admin and session_ok(admin, value) else None
    if len(parts) != 4 or not parts[2].isdigit() or len(parts[2]) > 18:
        return None
    issued, nonce, ident, sig = parts
    row = await state.tokens.row(int(ident))
    if row is None or not _fresh(issued, None):
        return None
    expected = _sign(_key(row["secret_sha256"], b"v2"), f"{issued}.{nonce}.{ident}")
    if not hmac.compare_digest(expected, sig):
        return None
    return caller_of(row)


async def session_for(state: ServerState, caller: Caller) -> str | None:
    """A new studio session for ``caller`` (after the login form checked its token)."""
    if caller.token_id is None:
        admin = state.settings.api_token
        return make_session(admin) if admin else None
    row = await state.tokens.row(caller.token_id)
    return None if row is None else make_token_session(row["id"], row["secret_sha256"])

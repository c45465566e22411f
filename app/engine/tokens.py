"""Access tokens: create, list and revoke them, and the per-process cache that resolves a
bearer secret to a :class:`Caller` without a database round trip per request.

A token reads ``bwt_<id>_<secret>``; only the SHA-256 of ``<secret>`` is stored, and the id
finds the row to compare it with (in constant time). Each process keeps the live tokens in
memory: reloaded after ``ttl`` seconds (``BRANCHWORK_TOKEN_CACHE_SECONDS``), at once when any replica creates or revokes one (the
notifier's config channel), and at most once a second when an unknown newer id shows up (a
token created a moment ago on another replica whose NOTIFY is still on its way).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import math
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ...protocol import TOKEN_ROLES, check_queue_selector
from ..store import tokens as store
from ..store.tokens import LiveToken, TokenRow
from .errors import Conflict, InvalidInput, NotFound
from .tx import transaction

if TYPE_CHECKING:
    from ..state import ServerState

log = logging.getLogger("branchwork.tokens")

PREFIX = "bwt_"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: a role, and for the scoped roles the patterns they are limited to.

    ``authenticated`` is False only on an open server (no admin token, no tokens), where
    every caller may do everything, as before tokens existed."""

    role: str
    name: str
    queues: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    token_id: int | None = None
    authenticated: bool = True

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


OPEN = Caller("admin", "", authenticated=False)
ADMIN = Caller("admin", "admin")  # BRANCHWORK_API_TOKEN


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split(token: str) -> tuple[int, str] | None:
    """``bwt_<id>_<secret>`` -> (id, secret); None when it is not shaped like one."""
    if not token.startswith(PREFIX):
        return None
    ident, sep, secret = token[len(PREFIX):].partition("_")
    if not sep or not secret or not ident.isdigit() or len(ident) > 18:
        return None
    return int(ident), secret


def caller_of(row: LiveToken) -> Caller:
    return Caller(row["role"], row["name"], tuple(row["queues"]), tuple(row["names"]),
                  row["id"])


class TokenCache:
    """The live tokens of the database, held by one server process (``state.tokens``)."""

    TTL = 10.0
    MISS_RELOAD_SECONDS = 1.0
    TOUCH_SECONDS = 60.0

    def __init__(self, pool: AsyncConnectionPool, ttl: float = TTL) -> None:
        self._pool = pool
        self._ttl = ttl
        self._rows: dict[int, LiveToken] = {}
        self._callers: dict[int, Caller] = {}  # built once per load, not per request
        self._any = False
        self._loaded_at = -math.inf
        self._ever_loaded = False
        self._retry_at = -math.inf
        self._background: asyncio.Task[None] | None = None
        self._generation = 0
        self._lock = asyncio.Lock()
        self._last_miss_reload = -math.inf
        self._touched: dict[int, float] = {}
        self._pending: set[int] = set()
        self._flush: asyncio.Task[None] | None = None
        self.loads = 0  # how often the tokens were read from the database (tests, debugging)

    # -- freshness ---------------------------------------------------------------------------
    #
    # Tokens only aged past the TTL are answered from memory while a reload runs behind; after
    # a change was announced (``invalidate``) a request waits for the reload, at most
    # ``LOAD_SECONDS``, so a revoked token is not let in again. When the database cannot be
    # read, the tokens read before keep answering and the reload is tried again a second later.

    LOAD_SECONDS = 2.0
    RETRY_SECONDS = 1.0

    def invalidate(self) -> None:
        """A token changed somewhere (or the notifier reconnected): reload before next use."""
        self._generation += 1
        self._loaded_at = -math.inf
        self._retry_at = -math.inf

    async def fresh(self) -> None:
        now = time.monotonic()
        if now - self._loaded_at < self._ttl or now < self._retry_at:
            return
        if self._ever_loaded and self._loaded_at > -math.inf:  # only aged
            if self._background is None or self._background.done():
                self._background = asyncio.create_task(self._reload_behind(),
                                                       name="branchwork-tokens")
            return
        await self._reload()

    async def _reload_behind(self) -> None:
        try:
            await self._reload()
        except Exception as exc:  # the next request tries again
            log.warning("cannot reload access tokens: %s", exc)

    async def _reload(self) -> None:
        async with self._lock:
            now = time.monotonic()
            if now - self._loaded_at < self._ttl or now < self._retry_at:
                return  # another request loaded them (or just failed to) meanwhile
            try:
                await asyncio.wait_for(self._load(), self.LOAD_SECONDS)
            except (psycopg.OperationalError, PoolTimeout, TimeoutError):
                if not self._ever_loaded:
                    raise  # nothing to answer from: the request gets a 503
                log.warning("cannot reload access tokens; using the ones read before")
                self._retry_at = time.monotonic() + self.RETRY_SECONDS

    async def _load(self) -> None:
        generation = self._generation
        async with transaction(self._pool) as cur:
            rows, any_token = await store.live(cur)
        self.loads += 1
        self._ever_loaded = True
        self._rows = {r["id"]: r for r in rows}
        self._callers = {r["id"]: caller_of(r) for r in rows}
        self._any = any_token
        # A change announced while this load ran may not be in it: load again next time.
        self._loaded_at = time.monotonic() if generation == self._generation else -math.inf

    async def enabled(self) -> bool:
        """Whether any token was ever created (then authentication is on)."""
        await self.fresh()
        return self._any

    # -- lookups -----------------------------------------------------------------------------

    async def row(self, token_id: int) -> LiveToken | None:
        await self.fresh()
        row = self._rows.get(token_id)
        if row is None and token_id > max(self._rows, default=0):
            now = time.monotonic()
            if now - self._last_miss_reload >= self.MISS_RELOAD_SECONDS:
                self._last_miss_reload = now
                self._loaded_at = -math.inf  # a token newer than any read: read them now
                await self._reload()
                row = self._rows.get(token_id)
        return row

    async def caller(self, token: str) -> Caller | None:
        """The caller a bearer token stands for; None when it is not a live token."""
        parts = split(token)
        if parts is None:
            return None
        row = await self.row(parts[0])
        if row is None or not hmac.compare_digest(digest(parts[1]), row["secret_sha256"]):
            return None
        self.touch(row["id"])
        return self._callers.get(row["id"]) or caller_of(row)

    # -- last use, debounced -----------------------------------------------------------------

    def touch(self, token_id: int) -> None:
        now = time.monotonic()
        if now - self._touched.get(token_id, -math.inf) < self.TOUCH_SECONDS:
            return
        self._touched[token_id] = now
        self._pending.add(token_id)
        if self._flush is None or self._flush.done():
            self._flush = asyncio.create_task(self._write_touches(), name="branchwork-tokens")

    async def _write_touches(self) -> None:
        ids, self._pending = sorted(self._pending), set()
        try:
            async with transaction(self._pool) as cur:
                await store.touch(cur, ids)
        except Exception as exc:  # last use is a hint; never fail a request over it
            log.warning("cannot record token use: %s", exc)

    # -- a service of the server state (stopped before the pool closes) ----------------------

    def start(self) -> None:
        """Read the tokens as the replica starts: its first request (a worker's heartbeat,
        say) then answers from memory, instead of loading them within ``LOAD_SECONDS`` and
        answering 503 when a busy database takes longer (nothing was read before)."""
        self._background = asyncio.create_task(self._reload_behind(), name="branchwork-tokens")

    async def stop(self) -> None:
        for task in (self._flush, self._background):
            if task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, 2)


# -- use cases --------------------------------------------------------------------------------


def _check_scopes(role: str, queues: list[str], names: list[str]) -> None:
    if role not in TOKEN_ROLES:
        raise InvalidInput(f"unknown role {role!r}: one of {', '.join(TOKEN_ROLES)}")
    for pattern in [*queues, *names]:
        try:
            check_queue_selector(pattern)
        except ValueError as exc:
            raise InvalidInput(str(exc).replace("invalid queue", "invalid pattern")) from exc
    if role in ("admin", "viewer") and (queues or names):
        raise InvalidInput(f"a {role} token takes no queue or name patterns")
    if role == "worker" and not queues:
        raise InvalidInput("a worker token needs at least one queue pattern ('*' for all)")
    if role == "worker" and names:
        raise InvalidInput("a worker token is limited by queue patterns only")


async def create_token(state: ServerState, name: str, role: str, queues: list[str],
                       names: list[str]) -> tuple[TokenRow, str]:
    """A new token and its secret (shown this once; only its hash is kept)."""
    _check_scopes(role, queues, names)
    secret = secrets.token_urlsafe(32)
    async with transaction(state.pool) as cur:
        await store.lock(cur)
        if (role != "admin" and not state.settings.api_token
                and not await store.live_admins(cur)):
            # The first token turns authentication on: without an admin, nobody could
            # create or revoke tokens afterwards.
            raise Conflict("create an admin token first (or set BRANCHWORK_API_TOKEN): the "
                           "first token turns authentication on", code="admin_token_required")
        row = await store.insert(cur, name, role, sorted(set(queues)), sorted(set(names)),
                                 digest(secret))
        if row is None:
            raise Conflict(f"a token named {name!r} exists; revoke it first", {"name": name},
                           code="token_exists")
    state.tokens.invalidate()
    return row, f"{PREFIX}{row['id']}_{secret}"


async def revoke_token(state: ServerState, name: str) -> TokenRow:
    async with transaction(state.pool) as cur:
        await store.lock(cur)
        if not state.settings.api_token and await store.live_admins(cur) == [name]:
            raise Conflict("this is the last admin token and BRANCHWORK_API_TOKEN is not set: "
                           "revoking it would lock everyone out", {"name": name},
                           code="last_admin_token")
        row = await store.revoke(cur, name)
        if row is None:
            raise NotFound.of("token", name)
    state.tokens.invalidate()
    return row


async def list_tokens(state: ServerState, include_revoked: bool = False) -> list[TokenRow]:
    async with transaction(state.pool) as cur:
        return await store.listing(cur, include_revoked)

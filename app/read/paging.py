"""The one paging rule of lists, and how a read borrows a connection.

A list is read newest first (or in key order) with ``LIMIT limit`` after a cursor (the last
id, or key, of the previous page: "before id"). A full page carries its last item's key as
the next cursor; a short page ends the list. (A list that is an exact multiple of ``limit``
long ends with one empty page: the price of reading no extra row.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from ..engine.errors import NotFound

T = TypeVar("T")
P = ParamSpec("P")

Db = AsyncConnectionPool | AsyncConnection[Any]


@asynccontextmanager
async def connection(db: Db) -> AsyncIterator[AsyncConnection[Any]]:
    """Borrow a connection from a pool, or use the given one as it is (several reads of one
    page can share a connection)."""
    if isinstance(db, AsyncConnectionPool):
        async with db.connection() as conn:
            yield conn
    else:
        yield db


async def fetch(db: Db, statement: Callable[Concatenate[AsyncConnection[Any], P], Awaitable[T]],
                *args: P.args, **kwargs: P.kwargs) -> T:
    """What one store statement returns, run on a borrowed connection (a one-statement read)."""
    async with connection(db) as conn:
        return await statement(conn, *args, **kwargs)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: Any | None  # None: this is the last page


def page_of(rows: list[T], limit: int, key: Callable[[T], Any]) -> Page[T]:
    """``rows`` read with ``LIMIT limit``: a full page points past its last row."""
    return Page(rows, key(rows[-1]) if rows and len(rows) == limit else None)


def found(row: T | None, what: str, ident: Any) -> T:
    """``row``, or ``NotFound`` ("<what> <ident> does not exist") when there is none."""
    if row is None:
        raise NotFound.of(what, ident)
    return row

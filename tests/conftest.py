"""Shared fixtures: real PostgreSQL (template database cloned per test) and real servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import pg
from servers import ThreadServer, thread_server


@pytest.fixture(scope="session")
def pg_server() -> str:
    return pg.server_url()


@pytest.fixture(scope="session")
def template_db(pg_server: str) -> Iterator[str]:
    name = pg.create_template(pg_server)
    yield name
    pg.drop(pg_server, name)


@pytest.fixture
def db_url(pg_server: str, template_db: str) -> Iterator[str]:
    name = pg.clone(pg_server, template_db)
    yield pg.with_database(pg_server, name)
    pg.drop(pg_server, name)


@pytest.fixture
def make_server(db_url: str) -> Iterator[Callable[..., ThreadServer]]:
    """Start servers on this test's database; several may run at once (replicas)."""
    stack: list[Any] = []

    def start(**overrides: Any) -> ThreadServer:
        cm = thread_server(db_url, **overrides)
        server = cm.__enter__()
        stack.append(cm)
        return server

    yield start
    for cm in reversed(stack):
        cm.__exit__(None, None, None)


@pytest.fixture
def server(make_server: Callable[..., ThreadServer]) -> ThreadServer:
    return make_server()


@pytest.fixture
def api(server: ThreadServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client

"""Property: whatever the OpenAPI document allows (and much it does not), the server never
answers 5xx, every 4xx carries the error body ``{code, message, details}``, and status, media
type and body match what the document says.

Schemathesis generates the requests from ``/openapi.json`` of a real server (uvicorn in a
thread, its own database); the run is derandomized and bounded, so it is the same in CI every
time. Found bugs become cases in ``test_fuzz_regressions.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import pg
from branchwork.app.main import create_app
from branchwork.app.settings import Settings
from servers import thread_server

# Long polls would spend the budget waiting: the server caps every wait at this.
MAX_WAIT = 0.2


@pytest.fixture(scope="module")
def fuzz_server(pg_server: str, template_db: str) -> Iterator[Any]:
    name = pg.clone(pg_server, template_db)
    with thread_server(pg.with_database(pg_server, name), max_wait_seconds=MAX_WAIT,
                       lease_seconds=60) as server:
        yield server
    pg.drop(pg_server, name)


# The document comes from the app itself (no server needed to collect the tests); the requests
# go to the real server of the fixture above.
schema = schemathesis.openapi.from_dict(
    create_app(Settings(database_url="postgresql://unused/unused")).openapi(),
).exclude(path="/metrics")


@pytest.mark.timeout(60)
@schema.parametrize()
@settings(max_examples=10, derandomize=True, deadline=None, database=None,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_no_server_error_and_one_error_shape(case: Any, fuzz_server: Any) -> None:
    response = case.call(base_url=fuzz_server.url, timeout=10)
    assert response.status_code < 500, (case.as_curl_command(), response.text[:500])
    # Bodies, statuses and media types as /openapi.json describes them (app/openapi.py).
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                             content_type_conformance,
                                             response_schema_conformance])
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body, dict) and set(body) == {"code", "message", "details"}, body

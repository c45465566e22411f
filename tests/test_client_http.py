"""Unit tests of the HTTP layer with respx: error mapping, retry rule, auth header."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import httpx
import pytest
import respx

import branchwork
from branchwork import (
    AsyncClient,
    Client,
    ClientSettings,
    Conflict,
    InvalidArgs,
    NotFound,
    PayloadTooLarge,
    Registry,
    ServerError,
    TransportError,
    Unauthorized,
    ValidationError,
)

URL = "http://bw.test"
FAST = ClientSettings(url=URL, backoff=0.001, max_backoff=0.002, retries=3)


@pytest.fixture
def client() -> Iterator[Client]:
    with Client(settings=FAST) as c:
        yield c


@pytest.fixture
def default_to_mock() -> Iterator[None]:
    branchwork.configure(url=URL, backoff=0.001, max_backoff=0.002, retries=3)
    yield
    branchwork.configure()


def _error(status: int, code: str, details: object = None) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "message": f"msg {code}",
                                        "details": details})


@pytest.mark.parametrize(("status", "code", "cls"), [
    (404, "not_found", NotFound),
    (409, "already_finished", Conflict),
    (413, "payload_too_large", PayloadTooLarge),
    (422, "validation_error", ValidationError),
    (401, "unauthorized", Unauthorized),
    (500, "internal_error", ServerError),
])
def test_error_body_maps_to_exception(client: Client, status: int, code: str,
                                      cls: type[branchwork.ApiError]) -> None:
    with respx.mock(base_url=URL) as mock:
        mock.post("/v1/tasks/7/cancel").mock(return_value=_error(status, code, {"id": 7}))
        with pytest.raises(cls) as info:
            client.cancel_task(7)
    err = info.value
    assert isinstance(err, branchwork.ApiError) and isinstance(err, branchwork.BranchworkError)
    assert (err.status, err.code, err.message, err.details) == (status, code, f"msg {code}",
                                                                {"id": 7})


def test_non_json_error_body_still_maps(client: Client) -> None:
    with respx.mock(base_url=URL) as mock:
        mock.get("/v1/tasks/1").mock(return_value=httpx.Response(418, text="teapot"))
        with pytest.raises(branchwork.ApiError) as info:
            client.get_task(1)
    assert (info.value.status, info.value.code, info.value.message) == (418, "http_error",
                                                                        "teapot")


def test_get_is_retried_after_connection_errors(client: Client) -> None:
    with respx.mock(base_url=URL) as mock:
        route = mock.get("/v1/tasks/5").mock(side_effect=[
            httpx.ConnectError("refused"), httpx.ReadTimeout("slow"),
            httpx.Response(200, json={"id": 5, "status": "queued"})])
        assert client.get_task(5)["status"] == "queued"
    assert route.call_count == 3


def test_retries_run_out_with_transport_error(client: Client) -> None:
    with respx.mock(base_url=URL) as mock:
        route = mock.get("/v1/tasks/5").mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(TransportError) as info:
            client.get_task(5)
    assert route.call_count == 4  # 1 + 3 retries
    assert info.value.maybe_applied is False


def test_send_without_key_is_not_repeated_after_ambiguous_failure(client: Client) -> None:
    with respx.mock(base_url=URL) as mock:
        route = mock.post("/v1/tasks").mock(side_effect=httpx.ReadTimeout("lost answer"))
        with pytest.raises(TransportError) as info:
            client.send_task({"name": "t", "args": {}})
    assert route.call_count == 1
    assert info.value.maybe_applied is True


def test_send_without_key_is_repeated_when_it_never_left(client: Client) -> None:
    with respx.mock(base_url=URL) as mock:
        route = mock.post("/v1/tasks").mock(side_effect=[
            httpx.ConnectError("refused"),
            httpx.Response(201, json={"id": 1, "duplicate": False})])
        assert client.send_task({"name": "t"}) == {"id": 1, "duplicate": False}
    assert route.call_count == 2


def test_send_with_key_is_repeated_after_ambiguous_failure(client: Client) -> None:
    with respx.mock(base_url=URL) as mock:
        route = mock.post("/v1/tasks").mock(side_effect=[
            httpx.RemoteProtocolError("dropped"), _error(503, "unavailable"),
            httpx.Response(201, json={"id": 9, "duplicate": True})])
        out = client.send_task({"name": "t", "idempotency_key": "k"})
    assert out == {"id": 9, "duplicate": True}
    assert route.call_count == 3


def test_non_idempotent_posts_not_repeated_on_503(client: Client) -> None:
    with respx.mock(base_url=URL) as mock:
        route = mock.post("/v1/kv/c/increment").mock(return_value=_error(503, "unavailable"))
        with pytest.raises(ServerError):
            client.kv_increment("c")
    assert route.call_count == 1


def test_claim_not_repeated_after_ambiguous_failure(client: Client) -> None:
    with respx.mock(base_url=URL) as mock:
        route = mock.post("/v1/claim").mock(side_effect=httpx.ReadError("reset"))
        with pytest.raises(TransportError):
            client.claim("w1", wait_seconds=1)
    assert route.call_count == 1


def test_report_is_repeated_fenced_by_lease(client: Client) -> None:
    with respx.mock(base_url=URL) as mock:
        route = mock.post("/v1/tasks/report").mock(side_effect=[
            httpx.ReadTimeout("slow"),
            httpx.Response(200, json={"results": [{"id": 1, "outcome": "already_recorded",
                                                   "status": "succeeded"}]})])
        out = client.report("w1", [{"id": 1, "lease_token": "0" * 32, "outcome": "succeeded"}])
    assert out[0]["outcome"] == "already_recorded"
    assert route.call_count == 2
    sent = json.loads(route.calls[0].request.content)
    assert sent == {"worker_id": "w1", "results": [
        {"id": 1, "lease_token": "0" * 32, "outcome": "succeeded"}]}


def test_bearer_token_sent_when_configured() -> None:
    with respx.mock(base_url=URL) as mock:
        route = mock.get("/v1/tasks/1").mock(return_value=httpx.Response(200, json={"id": 1}))
        with Client(URL, api_token="s3cret") as c:
            c.get_task(1)
        with Client(URL) as c:
            c.get_task(1)
    assert route.calls[0].request.headers["authorization"] == "Bearer s3cret"
    assert "authorization" not in route.calls[1].request.headers


def test_environment_gives_url_and_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRANCHWORK_URL", "http://env.test:9")
    monkeypatch.setenv("BRANCHWORK_API_TOKEN", "from-env")
    branchwork.configure()
    try:
        with respx.mock(base_url="http://env.test:9") as mock:
            route = mock.get("/v1/kv/a").mock(
                return_value=httpx.Response(200, json={"key": "a", "value": "1"}))
            assert branchwork.KV.get("a") == "1"
        assert route.calls[0].request.headers["authorization"] == "Bearer from-env"
    finally:
        monkeypatch.delenv("BRANCHWORK_URL")
        monkeypatch.delenv("BRANCHWORK_API_TOKEN")
        branchwork.configure()


def test_kv_missing_key_is_none_and_keys_are_quoted(client: Client) -> None:
    with respx.mock(base_url=URL) as mock:
        route = mock.get("/v1/kv/a%2Fb%3Fc%20d").mock(return_value=_error(404, "not_found"))
        assert client.kv_get("a/b?c d") is None
    assert route.call_count == 1


def test_task_send_carries_generated_key_and_survives_lost_answer(default_to_mock: None) -> None:
    reg = Registry()

    @reg.task
    def add(a: int, b: int = 0) -> int:
        return a + b

    with respx.mock(base_url=URL) as mock:
        # The first request reached the server but its answer was lost; the repeat is
        # recognised by its key, and the handle is not reported as a duplicate.
        route = mock.post("/v1/tasks").mock(side_effect=[
            httpx.ReadTimeout("lost"), httpx.Response(201, json={"id": 3, "duplicate": True})])
        run = add.send(1)
    bodies = [json.loads(c.request.content) for c in route.calls]
    assert len(bodies) == 2 and bodies[0] == bodies[1]
    assert bodies[0]["idempotency_key"].startswith("auto:")
    assert (run.id, run.duplicate) == (3, False)


def test_invalid_args_send_nothing(default_to_mock: None) -> None:
    reg = Registry()

    @reg.task
    def add(a: int, b: int = 0) -> int:
        return a + b

    with respx.mock(base_url=URL, assert_all_called=False) as mock:
        route = mock.post("/v1/tasks")
        batch = mock.post("/v1/tasks/batch")
        with pytest.raises(InvalidArgs):
            add.send("not a number")
        with pytest.raises(InvalidArgs):
            add.send(1, 2, 3)
        with pytest.raises(InvalidArgs):
            add.send_many([(1,), ("x",)])
    assert route.call_count == 0 and batch.call_count == 0


async def test_async_client_same_rule_and_mapping() -> None:
    async with AsyncClient(settings=FAST) as c:
        with respx.mock(base_url=URL) as mock:
            get = mock.get("/v1/tasks/2").mock(side_effect=[
                httpx.ConnectError("refused"), httpx.Response(200, json={"id": 2})])
            inc = mock.post("/v1/kv/c/increment").mock(side_effect=httpx.ReadTimeout("slow"))
            missing = mock.post("/v1/tasks/4/retry").mock(return_value=_error(404, "not_found"))
            assert (await c.get_task(2))["id"] == 2
            with pytest.raises(TransportError):
                await c.kv_increment("c")
            with pytest.raises(NotFound):
                await c.retry_task(4)
    assert (get.call_count, inc.call_count, missing.call_count) == (2, 1, 1)


def test_forked_child_builds_its_own_default_client(default_to_mock: None) -> None:
    from branchwork import _config

    parent = _config.default_client()
    pid = os.fork()
    if pid == 0:  # child: the parent's pooled connections must not be reused
        os._exit(0 if _config._sync is None and _config.default_client() is not parent else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _config.default_client() is parent

"""Issue 9, items 2 and 7 at the client: NaN, infinities and non-string keys, top level or
nested, and values nested past the server's limit, are refused with a clear error before any
request is made (the client points at a closed port: a request would be a TransportError).
"""

from __future__ import annotations

import math
import socket
from typing import Any

import pytest
from pydantic import BaseModel

from branchwork import Client, InvalidArgs, InvalidValue, Registry, ResultNotSerializable
from branchwork import _calls as calls
from branchwork.protocol import MAX_JSON_DEPTH

reg = Registry()


class Point(BaseModel):
    x: float
    tags: dict[str, Any] = {}


@reg.task
def untyped(data: Any) -> Any:
    return data


@reg.task
def typed(p: Point) -> Point:
    return p


def nest(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.fixture
def client() -> Client:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    with Client(url=f"http://127.0.0.1:{port}", retries=0) as c:
        yield c


BAD = [
    ({"n": math.nan}, "nan"),
    ({"a": [1, {"b": math.inf}]}, "inf"),
    ([-math.inf], "inf"),
    ({1: "one"}, "key 1"),
    ({"a": {2: "two"}}, "key 2"),
    ([{(1, 2): "tuple"}], r"key \(1, 2\)"),
]


@pytest.mark.parametrize(("value", "says"), BAD)
def test_task_send_refuses_before_any_request(client: Client, value: Any, says: str) -> None:
    with pytest.raises(InvalidArgs, match=says):
        untyped.send(value)


@pytest.mark.parametrize(("value", "says"), BAD)
def test_raw_calls_refuse_before_any_request(client: Client, value: Any, says: str) -> None:
    for call in (lambda: client.send_task({"name": "t", "args": value}),
                 lambda: client.send_tasks([{"name": "t", "args": value}]),
                 lambda: client.execute(calls.channel_set(1, "k", value)),
                 lambda: client.execute(calls.start_run("w", {"args": value})),
                 lambda: client.execute(calls.register_schedules(
                     [{"name": "s", "target": "t", "cron": "* * * * *", "args": value}]))):
        with pytest.raises(InvalidValue, match=says):
            call()


def test_pydantic_fields_with_nan_are_refused(client: Client) -> None:
    with pytest.raises(InvalidArgs, match="nan"):
        typed.send(Point(x=math.nan))
    with pytest.raises(InvalidArgs, match="inf"):
        typed.send(x=1.0, tags={"deep": [math.inf]})
    with pytest.raises(InvalidArgs, match="key 3"):
        typed.send(x=1.0, tags={"deep": {3: "x"}})


def test_results_that_json_would_alter_are_refused() -> None:
    for value, says in BAD:
        with pytest.raises(ResultNotSerializable, match=says):
            untyped.dump_result(value)
    with pytest.raises(ResultNotSerializable, match="nan"):
        typed.dump_result(Point(x=math.nan))


def test_depth_limit_at_the_client(client: Client) -> None:
    with pytest.raises(InvalidValue, match=f"deeper than {MAX_JSON_DEPTH}"):
        client.send_task({"name": "t", "args": nest(MAX_JSON_DEPTH)})
    # one level less fits in the body {"name", "args": ...}: it is sent (and fails to connect)
    with pytest.raises(Exception) as info:
        client.send_task({"name": "t", "args": nest(MAX_JSON_DEPTH - 2)})
    assert not isinstance(info.value, InvalidValue)

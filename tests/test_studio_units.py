"""Pure pieces of the studio: DAG layout, tree URL state, session signing, fan-out queues,
the shared cache's single flight."""

from __future__ import annotations

import asyncio

import pytest

from branchwork.studio import auth, dag, tree
from branchwork.studio.live import Subscriber, VersionCache


def test_dag_layers_follow_longest_path() -> None:
    nodes = [{"node": "load", "status": "pending", "upstream": ["transform", "extract"]},
             {"node": "extract", "status": "succeeded", "upstream": []},
             {"node": "transform", "status": "queued", "upstream": ["extract"]}]
    assert dag.layers(nodes) == {"extract": 0, "transform": 1, "load": 2}
    drawn = dag.layout(nodes)
    xs = {n.name: n.x for n in drawn.nodes}
    assert xs["extract"] < xs["transform"] < xs["load"]
    assert len(drawn.edges) == 3
    assert {e.css for e in drawn.edges} == {"edge", "edge-done"}


def test_dag_layout_survives_cycles_and_unknown_upstreams() -> None:
    nodes = [{"node": "a", "status": "queued", "upstream": ["b"]},
             {"node": "b", "status": "queued", "upstream": ["a"]},
             {"node": "c", "status": "queued", "upstream": ["ghost"]}]
    drawn = dag.layout(nodes)
    assert {n.name for n in drawn.nodes} == {"a", "b", "c"}


def test_tree_open_state_round_trips_and_is_bounded() -> None:
    assert tree.parse_open("12,34:300,x,5:999999999,-3") == {12: 50, 34: 300, 5: 50}
    assert tree.parse_open("7:0") == {7: 1}
    assert tree.format_open({12: 50, 34: 300}) == "12,34:300"
    assert len(tree.parse_open(",".join(str(i) for i in range(1, 1000)))) == tree.MAX_OPEN


def test_session_cookie_is_signed_and_expires() -> None:
    value = auth.make_session("tok", now=1000)
    assert auth.session_ok("tok", value, now=1001)
    assert not auth.session_ok("other", value, now=1001)
    assert not auth.session_ok("tok", value, now=1000 + auth.SESSION_SECONDS + 1)
    issued, nonce, sig = value.split(".")
    assert not auth.session_ok("tok", f"{int(issued) + 5}.{nonce}.{sig}", now=1001)
    assert not auth.session_ok("tok", "garbage", now=1001)


async def test_slow_subscriber_gets_merged_signals() -> None:
    sub = Subscriber()
    for i in range(40):
        sub.put(frozenset({f"task:{i}"}))
    merged: set[str] = set()
    while not sub.queue.empty():
        merged |= sub.queue.get_nowait()
    assert merged == {f"task:{i}" for i in range(40)}


class _Observer:
    def __init__(self) -> None:
        self.version = 0
        self.later: list[tuple[str, float]] = []

    def signal_later(self, topic: str, delay: float) -> None:
        self.later.append((topic, delay))


async def test_cache_single_flight_and_version() -> None:
    observer = _Observer()
    cache = VersionCache(observer)  # type: ignore[arg-type]
    calls = 0

    async def compute() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return calls

    results = await asyncio.gather(*(cache.get("k", compute) for _ in range(20)))
    assert results == [1] * 20 and calls == 1
    assert await cache.get("k", compute) == 1
    observer.version += 1
    assert await cache.get("k", compute) == 2
    observer.version += 1
    assert await cache.get("k", compute, min_age=60, topic="overview") == 2  # too young
    assert observer.later and observer.later[0][0] == "overview"


async def test_cache_does_not_keep_failures() -> None:
    cache = VersionCache(_Observer())  # type: ignore[arg-type]

    async def boom() -> int:
        raise RuntimeError("db away")

    async def ok() -> int:
        return 7

    for _ in range(2):
        with pytest.raises(RuntimeError):
            await cache.get("k", boom)
    assert await cache.get("k", ok) == 7


async def test_cache_forgets_every_entry_under_a_head() -> None:
    """An action forgets ("task", id); the task page's key also carries a time slot."""
    cache = VersionCache(_Observer())  # type: ignore[arg-type]
    calls = 0

    async def compute() -> int:
        nonlocal calls
        calls += 1
        return calls

    assert await cache.get(("task", 1, 123), compute) == 1
    assert await cache.get(("task", 2, 123), compute) == 2
    cache.forget(("task", 1))
    assert await cache.get(("task", 1, 123), compute) == 3  # read again
    assert await cache.get(("task", 2, 123), compute) == 2  # another task's entry is kept

"""The workflow DSL turns `>>` chains into the definition the server stores (no server)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

import branchwork
from branchwork import DefinitionError, Registry, node


class Args(BaseModel):
    source: str
    limit: int = 10


def _registry() -> tuple[Registry, dict]:
    reg = Registry()

    @reg.task
    def extract(args: Args) -> None: ...

    @reg.task(max_retries=3, timeout_seconds=30)
    def transform(args: Args) -> None: ...

    @reg.task(queue="other")
    def validate() -> None: ...

    @reg.task
    def load() -> None: ...

    return reg, {"extract": extract, "transform": transform, "validate": validate,
                 "load": load}


def test_chain_fan_out_and_join() -> None:
    reg, t = _registry()

    @reg.workflow(queue="etl", timeout_seconds=3600, args_schema=Args, priority=7)
    def etl():
        t["extract"] >> [t["transform"], t["validate"].with_config(queue="cpu")] >> t["load"]

    body = etl.definition()
    assert body["name"] == "etl" and body["queue"] == "etl" and body["priority"] == 7
    assert body["timeout_seconds"] == 3600
    assert body["args_schema"]["required"] == ["source"]
    assert sorted(map(tuple, body["edges"])) == [
        ("extract", "transform"), ("extract", "validate"), ("transform", "load"),
        ("validate", "load")]
    nodes = {n["name"]: n for n in body["nodes"]}
    assert nodes["transform"]["max_retries"] == 3
    assert nodes["transform"]["timeout_seconds"] == 30
    assert "queue" not in nodes["transform"]  # the run's queue
    assert nodes["validate"]["queue"] == "cpu"  # the node's with_config
    assert nodes["validate"]["args"] == {} and nodes["load"]["args"] == {}
    assert "args" not in nodes["extract"]  # takes the run's args
    assert etl.queues() == {"etl", "cpu"}
    assert reg.workflows == {"etl": etl}
    assert etl.dump_args(Args(source="s"), {}) == {"source": "s", "limit": 10}
    assert etl.dump_args(None, {"source": "s", "limit": 2}) == {"source": "s", "limit": 2}
    with pytest.raises(branchwork.InvalidArgs):
        etl.dump_args({"limit": "many"}, {})


def test_named_nodes_and_cycles() -> None:
    reg, t = _registry()

    @reg.workflow
    def twice():
        node(t["load"], name="first") >> t["extract"] >> node(t["load"], name="second",
                                                               max_cycles=3)

    nodes = {n["name"]: n for n in twice.definition()["nodes"]}
    assert set(nodes) == {"first", "extract", "second"}
    assert nodes["second"]["task"] == "load" and nodes["second"]["max_cycles"] == 3
    assert nodes["first"]["max_cycles"] == 1

    @reg.workflow
    def single():
        return t["load"]

    assert single.definition()["nodes"] == [{"name": "load", "task": "load", "max_cycles": 1,
                                             "max_retries": 0, "args": {}}]
    with pytest.raises(DefinitionError, match="no nodes"):
        @reg.workflow
        def empty():
            pass
    with pytest.raises(DefinitionError, match="twice"):
        @reg.workflow
        def clash():
            # Two configs for one node (a bare mention adds none: Hyrex's README repeats
            # a chain with one task's with_config, issue 15).
            t["load"].with_config(priority=3) >> t["extract"]
            t["extract"] >> t["load"].with_config(priority=9)
    with pytest.raises(DefinitionError, match="two workflows"):
        @reg.workflow(name="twice")
        def again():
            return t["load"]


def test_schedules_of_a_registry() -> None:
    reg, t = _registry()

    @reg.task(cron="*/5 * * * *", queue="maint", priority=8)
    def cleanup(days: int = 30) -> None: ...

    @reg.workflow(cron="0 3 * * *")
    def nightly():
        return t["load"]

    from branchwork.worker_api import schedules

    items = {s["name"]: s for s in schedules(reg)}
    assert items["task:cleanup"] == {
        "name": "task:cleanup", "kind": "task", "target": "cleanup", "cron": "*/5 * * * *",
        "args": {"days": 30}, "options": {"queue": "maint", "priority": 8, "max_retries": 0}}
    assert items["workflow:nightly"]["kind"] == "workflow"
    assert items["workflow:nightly"]["cron"] == "0 3 * * *"

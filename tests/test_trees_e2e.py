"""Task trees end to end: a real server, a real worker process, the Python client."""

from __future__ import annotations

import httpx

from orchestration_helpers import wait_for
from worker_helpers import python_worker, send, wait_status


def _tree(api: httpx.Client, task_id: int) -> dict:
    return api.get(f"/v1/trees/{task_id}").json()


def _wait_tree(api: httpx.Client, task_id: int, timeout: float = 60) -> dict:
    return wait_for(lambda: (t := _tree(api, task_id))["finished"] and t, timeout=timeout)


def test_crawl_builds_the_expected_tree(api: httpx.Client, server) -> None:  # type: ignore[no-untyped-def]
    api.put("/v1/kv/seen:%2F", json={"value": "start"})
    root = send(api, "crawl", {"url": "/", "depth": 0, "max_depth": 3})
    with python_worker(server.url, "orchestration_app:reg", "--concurrency", "4"):
        body = _wait_tree(api, root)
    assert body["rollup"]["succeeded"] == 6 and body["total"] == 6

    def urls(node: dict) -> dict:
        task = api.get(f"/v1/tasks/{node['id']}").json()
        assert node["depth"] == task["args"]["depth"]
        return {task["args"]["url"]: sorted((urls(c) for c in node["children"]),
                                            key=lambda d: next(iter(d)))}

    assert urls(body["tree"]) == {"/": [
        {"/a": [{"/a1": []}]},
        {"/b": [{"/b1": [{"/deep": []}]}]},
    ]}
    assert all(c["parent_id"] == root and c["root_id"] == root
               for c in body["tree"]["children"])


def test_fan_out_and_gather_with_concurrency_one(api: httpx.Client, server) -> None:  # type: ignore[no-untyped-def]
    sync_parent = send(api, "fan_out", {"n": 10})
    async_parent = send(api, "afan_out", {"n": 10})
    chain = send(api, "nested", {"levels": 3})
    with python_worker(server.url, "orchestration_app:reg", "--concurrency", "1"):
        assert wait_status(api, sync_parent, timeout=60)["result"] == sum(i * i for i in range(10))
        assert wait_status(api, async_parent, timeout=60)["result"] == 285
        assert wait_status(api, chain, timeout=60)["result"] == 3
    tree = _tree(api, sync_parent)
    assert tree["total"] == 11 and tree["rollup"]["succeeded"] == 11
    keys = sorted(int(c["spawn_key"]) for c in tree["tree"]["children"])
    assert keys == list(range(10))
    assert _tree(api, chain)["total"] == 4


def test_retried_parent_gets_its_children_back(api: httpx.Client, server) -> None:  # type: ignore[no-untyped-def]
    parent = send(api, "retrying_parent", max_retries=1, retry_delay_seconds=0)
    with python_worker(server.url, "orchestration_app:reg", "--concurrency", "2"):
        task = wait_status(api, parent, timeout=60)
    assert task["status"] == "succeeded" and task["attempts"] == 2
    first = api.get("/v1/kv/children:1").json()["value"]
    second = api.get("/v1/kv/children:2").json()["value"]
    assert first == second  # the second attempt got the same three children back
    assert [int(i) for i in first.split(",")] == task["result"]
    assert _tree(api, parent)["total"] == 4


def test_failed_child_is_caught_by_its_parent(api: httpx.Client, server) -> None:  # type: ignore[no-untyped-def]
    parent = send(api, "careful_parent")
    with python_worker(server.url, "orchestration_app:reg", "--concurrency", "1"):
        task = wait_status(api, parent, timeout=60)
    assert task["status"] == "succeeded", task["error"]
    result = task["result"]
    child = api.get(f"/v1/tasks/{result['failed_child']}").json()
    assert child["status"] == "failed" and child["parent_id"] == parent
    assert result["error_type"] == "ValueError"
    assert result["recovery"] == f"recovered {child['id']}: disk full"
    assert _tree(api, parent)["rollup"] == {"queued": 0, "running": 0, "waiting": 0,
                                            "succeeded": 2, "failed": 1, "cancelled": 0}


def _started(tree: dict) -> bool:
    return tree["total"] == 6 and tree["rollup"]["running"] == 3


def test_cancel_a_running_tree(api: httpx.Client, server) -> None:  # type: ignore[no-untyped-def]
    parent = send(api, "sleepy_parent", {"children": 5})
    with python_worker(server.url, "orchestration_app:reg", "--concurrency", "3",
                       "--cancel-grace", "2"):
        # All five children sent (the parent sends them one by one while the first run), and
        # the parent with two children running: three to stop, three still queued.
        wait_for(lambda: _started(_tree(api, parent)), timeout=30)
        body = api.post(f"/v1/trees/{parent}/cancel").json()
        assert len(body["cancel_requested"]) == 3 and len(body["cancelled"]) == 3
        final = _wait_tree(api, parent, timeout=30)
    assert final["rollup"]["cancelled"] == 6 and final["total"] == 6


def test_fan_out_with_thread_isolation_and_concurrency_one(api: httpx.Client, server) -> None:  # type: ignore[no-untyped-def]
    parent = send(api, "fan_out", {"n": 5})
    chain = send(api, "nested", {"levels": 2})
    with python_worker(server.url, "orchestration_app:reg", "--concurrency", "1",
                       "--isolation", "thread"):
        assert wait_status(api, parent, timeout=60)["result"] == 30
        assert wait_status(api, chain, timeout=60)["result"] == 2

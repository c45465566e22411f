"""Task trees over HTTP: whole tree from any task, roots, rollup, cancel, wait, spawn keys."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx

import branchwork
from orchestration_helpers import claim, claim_one, complete


def _send(api: httpx.Client, name: str, **extra: object) -> dict:
    r = api.post("/v1/tasks", json={"name": name, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def _tree_of_three(api: httpx.Client) -> tuple[int, int, int, int]:
    root = _send(api, "root")["id"]
    a = _send(api, "a", parent_id=root, spawn_key="0")["id"]
    b = _send(api, "b", parent_id=root, spawn_key="1")["id"]
    aa = _send(api, "aa", parent_id=a, spawn_key="0")["id"]
    return root, a, b, aa


def test_tree_from_any_task_nested_with_rollup(api: httpx.Client) -> None:
    root, a, b, aa = _tree_of_three(api)
    _send(api, "unrelated")
    t = claim_one(api)
    assert t["id"] == root
    complete(api, t)
    for ident in (root, a, aa):
        body = api.get(f"/v1/trees/{ident}").json()
        assert body["root_id"] == root
        assert body["rollup"] == {"queued": 3, "running": 0, "waiting": 0, "succeeded": 1,
                                  "failed": 0, "cancelled": 0}
        assert body["total"] == 4 and body["finished"] is False
        tree = body["tree"]
        assert (tree["id"], tree["status"], tree["depth"]) == (root, "succeeded", 0)
        assert tree["duration_seconds"] is not None and tree["started_at"] is not None
        assert [c["id"] for c in tree["children"]] == [a, b]
        child_a = tree["children"][0]
        assert (child_a["parent_id"], child_a["root_id"], child_a["depth"]) == (root, root, 1)
        assert [c["id"] for c in child_a["children"]] == [aa]
        assert child_a["children"][0]["depth"] == 2
    assert api.get("/v1/trees/99999").status_code == 404


def test_list_roots(api: httpx.Client) -> None:
    root, *_ = _tree_of_three(api)
    lone = _send(api, "lone")["id"]
    roots = api.get("/v1/trees").json()["roots"]
    assert [r["id"] for r in roots] == [lone, root]
    assert roots[1]["total"] == 4 and roots[1]["rollup"]["queued"] == 4
    only = api.get("/v1/trees", params={"with_children": "true"}).json()["roots"]
    assert [r["id"] for r in only] == [root]
    page = api.get("/v1/trees", params={"limit": 1}).json()
    assert [r["id"] for r in page["roots"]] == [lone] and page["next_cursor"] == lone
    page = api.get("/v1/trees", params={"limit": 1, "cursor": lone}).json()
    assert [r["id"] for r in page["roots"]] == [root]


def test_spawn_key_returns_the_existing_child(api: httpx.Client) -> None:
    root = _send(api, "root")["id"]
    first = _send(api, "child", parent_id=root, spawn_key="0")
    again = _send(api, "child", parent_id=root, spawn_key="0")
    assert again == {"id": first["id"], "duplicate": True}
    other = _send(api, "child", parent_id=root, spawn_key="1")
    assert other["id"] != first["id"]
    assert api.get(f"/v1/trees/{root}").json()["total"] == 3


def test_cancel_tree_cancels_queued_and_stops_running(api: httpx.Client) -> None:
    root, a, b, aa = _tree_of_three(api)
    other = _send(api, "other")["id"]
    running = claim(api, limit=2)  # root and a
    assert [t["id"] for t in running] == [root, a]
    body = api.post(f"/v1/trees/{root}/cancel").json()
    assert body["cancelled"] == [b, aa]
    assert body["cancel_requested"] == [root, a]
    hb = api.post("/v1/heartbeat", json={"worker_id": "w", "tasks": [
        {"id": t["id"], "lease_token": t["lease_token"]} for t in running]}).json()
    assert sorted(hb["cancel"]) == [root, a]
    assert api.get(f"/v1/tasks/{other}").json()["status"] == "queued"
    assert api.post("/v1/trees/424242/cancel").status_code == 404


def test_cancel_subtree_only(api: httpx.Client) -> None:
    root, a, b, aa = _tree_of_three(api)
    body = api.post(f"/v1/trees/{a}/cancel").json()
    assert body["cancelled"] == [a, aa]
    statuses = {t["id"]: t["status"] for t in api.get("/v1/tasks").json()["tasks"]}
    assert statuses[root] == statuses[b] == "queued"


def test_wait_returns_when_the_tree_finishes(api: httpx.Client, server) -> None:  # type: ignore[no-untyped-def]
    root = _send(api, "root")["id"]
    _send(api, "kid", parent_id=root, spawn_key="0")
    r = api.get(f"/v1/trees/{root}/wait", params={"timeout_seconds": 0.3}).json()
    assert r["finished"] is False

    def finish() -> None:
        time.sleep(0.5)
        with httpx.Client(base_url=server.url) as other:
            for task in claim(other, limit=2):
                complete(other, task)

    thread = threading.Thread(target=finish)
    thread.start()
    started = time.monotonic()
    r = api.get(f"/v1/trees/{root}/wait", params={"timeout_seconds": 8}).json()
    thread.join()
    assert r["finished"] is True and r["rollup"]["succeeded"] == 2
    assert time.monotonic() - started < 7


def test_python_client_reads_waits_and_cancels_trees(api: httpx.Client, server) -> None:  # type: ignore[no-untyped-def]
    branchwork.configure(url=server.url)
    try:
        root, a, b, aa = _tree_of_three(api)
        body = branchwork.get_tree(aa)  # from any task of the tree
        assert body["root_id"] == root and body["total"] == 4
        assert [c["id"] for c in body["tree"]["children"]] == [a, b]
        assert branchwork.get_tree(root, limit=2)["truncated"] is True
        assert [r["id"] for r in branchwork.list_roots(with_children=True)["roots"]] == [root]
        started = time.monotonic()
        waited = branchwork.wait_tree(root, timeout=0.5)
        assert waited["finished"] is False and time.monotonic() - started < 5
        assert branchwork.cancel_tree(a) == {"id": a, "cancelled": [a, aa],
                                             "cancel_requested": []}
        for task in claim(api, limit=2):  # root and b
            complete(api, task)
        done = branchwork.wait_tree(b, timeout=10)
        assert done["finished"] is True
        assert done["rollup"] == {"queued": 0, "running": 0, "waiting": 0, "succeeded": 2,
                                  "failed": 0, "cancelled": 2}
        assert asyncio.run(branchwork.await_tree(root, timeout=5))["finished"] is True
        assert asyncio.run(branchwork.aget_tree(aa))["tree"]["id"] == root
    finally:
        branchwork.configure()

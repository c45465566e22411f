"""Studio bugs that two readers and hand-built URLs bred: each test failed before its fix."""

from __future__ import annotations

import re
from urllib.parse import quote

import httpx
import psycopg


def test_trees_list_is_newest_first(api: httpx.Client, db_url: str) -> None:
    """The Trees page says "newest first": it must be, whatever plan the database picks (the
    studio's own roots query had no final ORDER BY; with many roots and fresh statistics it
    hashed the parents and listed the roots in table order, oldest first)."""
    r = api.post("/v1/tasks/batch", json={"tasks": [{"name": "lonely"} for _ in range(500)]})
    assert r.status_code == 201, r.text
    roots = []
    for i in range(6):
        root = api.post("/v1/tasks", json={"name": f"root-{i}"}).json()["id"]
        api.post("/v1/tasks", json={"name": "kid", "parent_id": root})
        roots.append(root)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("ANALYZE tasks")
    expected = list(reversed(roots))
    for path in ("/studio/trees", "/studio/partials/trees"):
        html = api.get(path).text
        assert [int(x) for x in re.findall(r'id="tree-row-(\d+)"', html)] == expected, path
    api_roots = api.get("/v1/trees", params={"with_children": "true"}).json()["roots"]
    assert [r["id"] for r in api_roots] == expected


def test_schedule_actions_escape_the_name_as_one_path_segment(server, api: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    """A schedule named ``evil/../victim-sched`` gets a Pause form that pauses itself: the
    name was put in the form's URL unescaped, and URL normalisation made it another one."""
    evil = "evil/../victim-sched"
    for name in ("victim-sched", evil):
        r = api.put(f"/v1/schedules/{quote(name, safe='')}",
                    json={"target": "cleanup", "cron": "0 3 * * *"})
        assert r.status_code == 200, r.text
    with httpx.Client(base_url=server.url, timeout=10) as c:
        html = c.get("/studio/schedules").text
        actions = re.findall(r'<form method="post" action="([^"]+)"', html)
        [evil_action] = [a for a in actions if a.startswith("/studio/schedules/evil")]
        r = c.post(evil_action, headers={"x-csrf-token": c.cookies["bw_csrf"],
                                         "origin": server.url, "hx-request": "true"})
        assert r.status_code == 200, r.text
        assert f"Paused {evil}." in r.text
    assert api.get(f"/v1/schedules/{quote(evil, safe='')}").json()["paused"] is True
    assert api.get("/v1/schedules/victim-sched").json()["paused"] is False

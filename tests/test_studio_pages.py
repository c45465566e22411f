"""Studio pages and partials through HTTP against a real server and database."""

from __future__ import annotations

import re

import httpx

from orchestration_helpers import wait_for

XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'


def _run(api: httpx.Client, task_id: int, outcome: str = "succeeded", **body: object) -> None:
    claimed = api.post("/v1/claim", json={"worker_id": "w-studio", "limit": 1,
                                          "queues": [body.pop("queue", "default")]}).json()
    [task] = claimed["tasks"]
    assert task["id"] == task_id
    if outcome == "succeeded":
        r = api.post(f"/v1/tasks/{task_id}/complete",
                     json={"lease_token": task["lease_token"], **body})
    else:
        r = api.post(f"/v1/tasks/{task_id}/fail", json={"lease_token": task["lease_token"], **body})
    assert r.status_code == 200, r.text


def test_every_page_renders(api: httpx.Client) -> None:
    tid = api.post("/v1/tasks", json={"name": "hello", "args": {"x": 1}}).json()["id"]
    for path in ("/studio", "/studio/tasks", f"/studio/tasks/{tid}", f"/studio/trees/{tid}",
                 "/studio/trees", "/studio/partials/trees", "/studio/workers",
                 "/studio/definitions", "/studio/kv", "/studio/schedules",
                 "/studio/workflows", "/studio/partials/overview", "/studio/partials/tasks",
                 f"/studio/partials/task/{tid}", f"/studio/partials/tree/{tid}",
                 "/studio/partials/workers", "/studio/partials/schedules",
                 "/studio/partials/workflows"):
        r = api.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text[:500])
        assert r.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in r.headers["content-security-policy"]
    root = api.get("/", follow_redirects=False)
    assert root.is_redirect and root.headers["location"] == "/studio"


def test_overview_shows_queue_counts_and_chart(api: httpx.Client) -> None:
    ids = [api.post("/v1/tasks", json={"name": "n", "queue": "mail"}).json()["id"]
           for _ in range(3)]
    _run(api, ids[0], queue="mail", result=1)
    assert api.put("/v1/queues/mail", json={"concurrency_limit": 7}).status_code == 200
    html = api.get("/studio/partials/overview").text
    row = re.search(r'<tr data-queue="mail">(.*?)</tr>', html, re.S)
    assert row, html
    cells = re.findall(r'<td class="num[^"]*">([^<]*)</td>', row.group(1))
    # queued, running, failed, succeeded, cancelled, concurrency limit
    assert cells[:6] == ["2", "0", "0", "1", "0", "7"]
    assert re.search(r'id="workers-online">1<', html)  # w-studio claimed just now
    assert "<svg" in row.group(1) and "1 succeeded" in row.group(1)


def test_user_values_are_escaped(api: httpx.Client) -> None:
    tid = api.post("/v1/tasks", json={"name": "xss", "args": {"html": XSS}}).json()["id"]
    _run(api, tid, "failed", error={"type": "Boom" + XSS, "message": XSS, "traceback": XSS},
         logs=XSS)
    api.put("/v1/kv/key" + "x", json={"value": XSS})
    for path in (f"/studio/tasks/{tid}", "/studio/tasks", "/studio/kv", f"/studio/trees/{tid}"):
        html = api.get(path).text
        assert "<script>window.__xss" not in html, path
        assert "<img src=x" not in html, path
        if "trees" not in path:  # the tree shows no args or errors
            assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in html, path


def test_task_page_shows_attempts_logs_and_error(api: httpx.Client) -> None:
    tid = api.post("/v1/tasks", json={"name": "flaky", "max_retries": 1,
                                      "args": {"n": 7}}).json()["id"]
    _run(api, tid, "failed", error={"type": "ValueError", "message": "bad n",
                                    "traceback": "Traceback (most recent call last):\n  boom"},
         logs="first try output", retry_delay_seconds=0)
    _run(api, tid, result={"ok": True}, logs="second try output")
    html = api.get(f"/studio/tasks/{tid}").text
    assert "Attempt 1" in html and "Attempt 2" in html
    assert "w-studio" in html
    assert "first try output" in html and "second try output" in html
    assert "ValueError" in html and "bad n" in html
    dead = api.post("/v1/tasks", json={"name": "doomed"}).json()["id"]
    _run(api, dead, "failed", error={"type": "KeyError", "message": "k",
                                     "traceback": "Traceback (most recent call last):\n  boom"})
    assert ('<pre class="traceback">Traceback (most recent call last):\n  boom</pre>'
            in api.get(f"/studio/tasks/{dead}").text)  # a failed task's traceback
    assert "&#34;ok&#34;: true" in html and "&#34;n&#34;: 7" in html  # result and args
    kids = [api.post("/v1/tasks", json={"name": f"kid{i}", "parent_id": tid}).json()["id"]
            for i in range(2)]
    # Pages are cached until the change observer (0.5 s poll) sees the new children.
    wait_for(lambda: all(f'href="/studio/tasks/{k}"' in api.get(f"/studio/tasks/{tid}").text
                         for k in kids), timeout=10)  # its children
    assert f'href="/studio/tasks/{tid}"' in api.get(f"/studio/tasks/{kids[0]}").text  # parent


def test_task_list_filters_and_cursor(api: httpx.Client) -> None:
    ids = [api.post("/v1/tasks", json={"name": f"job-{i % 2}", "queue": "q1"}).json()["id"]
           for i in range(60)]
    html = api.get("/studio/partials/tasks", params={"name": "job-1"}).text
    shown = [int(x) for x in re.findall(r'id="task-row-(\d+)"', html)]
    assert shown == [i for i in reversed(ids) if (ids.index(i) % 2) == 1]
    full = api.get("/studio/partials/tasks").text
    first = [int(x) for x in re.findall(r'id="task-row-(\d+)"', full)]
    assert first == list(reversed(ids))[:50]
    cursor = re.search(r'cursor=(\d+)', full).group(1)
    rest = api.get("/studio/partials/tasks", params={"cursor": cursor}).text
    second = [int(x) for x in re.findall(r'id="task-row-(\d+)"', rest)]
    assert second == list(reversed(ids))[50:]
    queued = api.get("/studio/partials/tasks", params={"status": "succeeded"}).text
    assert "No tasks match." in queued
    r = api.get("/studio/tasks", params={"q": f"#{ids[3]}"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/studio/tasks/{ids[3]}"
    assert api.get("/studio/tasks/999999999").status_code == 404
    # A bad filter is left out with a note (tests/test_studio_reading.py), not a JSON 422.
    bad = api.get("/studio/tasks", params={"status": "nope"})
    assert bad.status_code == 200 and "Unknown status" in bad.text
    bad = api.get("/studio/tasks", params={"since": "yesterday"})
    assert bad.status_code == 200 and "not a date and time" in bad.text


def test_assets_come_from_the_installed_package(api: httpx.Client) -> None:
    htmx = api.get("/studio/static/htmx.min.js")
    assert htmx.status_code == 200 and "htmx" in htmx.text[:200]
    assert htmx.headers["content-type"].startswith("text/javascript")
    # No htmx extension (the package's SSE one is htmx 1's): studio.js holds the EventSource.
    assert api.get("/studio/static/sse.js").status_code == 404
    assert "new EventSource" in api.get("/studio/static/studio.js").text
    assert api.get("/studio/static/studio.css").status_code == 200
    assert api.get("/studio/static/..%2Fauth.py").status_code == 404
    assert api.get("/studio/static/nothing.js").status_code == 404


def _studio_post(server_url: str, client: httpx.Client, path: str) -> httpx.Response:
    client.get("/studio")
    return client.post(path, headers={"x-csrf-token": client.cookies["bw_csrf"],
                                      "origin": server_url, "hx-request": "true"})


def test_schedules_pause_and_resume(server, api: httpx.Client) -> None:
    r = api.put("/v1/schedules/nightly", json={"target": "cleanup", "cron": "0 3 * * *"})
    assert r.status_code == 200, r.text
    html = api.get("/studio/schedules").text
    assert "nightly" in html and "0 3 * * *" in html and ">Pause<" in html
    with httpx.Client(base_url=server.url, timeout=10) as c:
        r = _studio_post(server.url, c, "/studio/schedules/nightly/pause")
        assert r.status_code == 200 and "Paused nightly." in r.text and ">Resume<" in r.text
        assert api.get("/v1/schedules/nightly").json()["paused"] is True
        r = _studio_post(server.url, c, "/studio/schedules/nightly/resume")
        assert r.status_code == 200 and ">Pause<" in r.text
        assert api.get("/v1/schedules/nightly").json()["paused"] is False
        assert _studio_post(server.url, c, "/studio/schedules/nope/pause").status_code == 404
        assert _studio_post(server.url, c, "/studio/schedules/nightly/explode").status_code == 422


def test_workflow_run_drawn_as_dag_with_node_states(api: httpx.Client) -> None:
    wf = {"name": "etl", "nodes": [{"name": "extract", "task": "extract"},
                                   {"name": "transform", "task": "transform"},
                                   {"name": "validate", "task": "validate"},
                                   {"name": "load", "task": "load"}],
          "edges": [["extract", "transform"], ["extract", "validate"],
                    ["transform", "load"], ["validate", "load"]]}
    assert api.put("/v1/workflows/etl", json=wf).status_code == 200
    run = api.post("/v1/workflows/etl/runs", json={"args": {"day": "<b>x</b>"}}).json()
    run_id = run.get("id") or run.get("run_id")
    claimed = api.post("/v1/claim", json={"worker_id": "w", "limit": 1}).json()["tasks"]
    assert claimed[0]["workflow_node"] == "extract"
    api.post(f"/v1/tasks/{claimed[0]['id']}/complete",
             json={"lease_token": claimed[0]["lease_token"], "result": 1})
    api.put(f"/v1/workflow-runs/{run_id}/channel/progress", json={"value": {"rows": 7}})
    api.post(f"/v1/workflow-runs/{run_id}/channel/<b>seen/increment", json={"by": 3})
    html = api.get(f"/studio/workflows/runs/{run_id}").text
    channel = re.search(r'<table class="grid compact" id="channel">(.*?)</table>', html, re.S)
    assert channel, html  # the run's channel state, keys and values as text
    assert "progress" in channel.group(1) and "&#34;rows&#34;: 7" in channel.group(1)
    assert "&lt;b&gt;seen" in channel.group(1) and ">3<" in channel.group(1)
    states = dict(re.findall(r'data-node="(\w+)" data-status="(\w+)"', html))
    assert states == {"extract": "succeeded", "transform": "queued", "validate": "queued",
                      "load": "pending"}
    assert html.count('class="edge') == 4
    assert "&lt;b&gt;x&lt;/b&gt;" in html
    listing = api.get("/studio/workflows").text
    assert f'id="run-row-{run_id}"' in listing and "extract" in listing
    assert api.get("/studio/workflows/runs/99999").status_code == 404


def test_large_tree_is_paged_and_collapsed(api: httpx.Client) -> None:
    root = api.post("/v1/tasks", json={"name": "root"}).json()["id"]
    kids = api.post("/v1/tasks/batch", json={"tasks": [
        {"name": "kid", "parent_id": root} for _ in range(120)]}).json()["tasks"]
    first = kids[0]["id"]
    grandkids = api.post("/v1/tasks/batch", json={"tasks": [
        {"name": "grandkid", "parent_id": first} for _ in range(30)]}).json()["tasks"]
    html = api.get(f"/studio/trees/{root}").text
    assert "151 tasks" in html
    shown = re.findall(r'id="node-(\d+)"', html)
    assert len(shown) == 1 + 50  # the root and its first page of children; levels collapsed
    assert "Show 70 more of 70 remaining" in html
    assert "30 children" in html
    more = api.get(f"/studio/partials/tree/{root}", params={"open": f"{root}:250"}).text
    assert len(re.findall(r'id="node-(\d+)"', more)) == 121
    opened = api.get(f"/studio/partials/tree/{root}", params={"open": f"{root},{first}"}).text
    assert len(re.findall(r'id="node-(\d+)"', opened)) == 1 + 50 + 30
    # The tree of a grandchild is the same tree, opened down to it.
    grandkid = grandkids[-1]["id"]
    focus = api.get(f"/studio/trees/{grandkid}").text
    assert f'class="node focus" id="node-{grandkid}"' in focus
    assert len(re.findall(r'id="node-(\d+)"', focus)) == 1 + 50 + 30
    assert api.get(f"/studio/partials/tree/{root}", params={"open": "junk,,-1"}).status_code == 200


def test_workers_and_definitions_pages(api: httpx.Client) -> None:
    r = api.post("/v1/workers/register", json={
        "worker_id": "w-reg", "queues": ["mail"], "info": {"hostname": "box-1"},
        "tasks": [{"name": "send_email", "queue": "mail", "defaults": {"max_retries": 3},
                   "args_schema": {"type": "object", "title": "<i>Email</i>"}}]})
    assert r.status_code == 200, r.text
    tid = api.post("/v1/tasks", json={"name": "send_email", "queue": "mail"}).json()["id"]
    api.post("/v1/claim", json={"worker_id": "w-reg", "queues": ["mail"], "limit": 1})
    html = api.get("/studio/workers").text
    assert "w-reg" in html and "box-1" in html and "online" in html
    assert f'href="/studio/tasks/{tid}"' in html
    defs = api.get("/studio/definitions").text
    assert "send_email" in defs and "max_retries" in defs
    assert "&lt;i&gt;Email&lt;/i&gt;" in defs
    partial = api.get("/studio/partials/definitions").text
    assert 'data-live="definitions"' in partial and "send_email" in partial
    api.put("/v1/kv/cfg:<b>", json={"value": "<script>x</script>"})
    kv = api.get("/studio/partials/kv", params={"prefix": "cfg:"}).text
    assert 'hx-trigger="every 3s"' in kv and "/studio/partials/kv?prefix=cfg%3A" in kv
    assert "&lt;script&gt;x&lt;/script&gt;" in kv and "cfg:&lt;b&gt;" in kv
    assert api.get("/studio/partials/kv", params={"prefix": "x" * 600}).status_code == 422


def test_time_filter(api: httpx.Client) -> None:
    api.post("/v1/tasks", json={"name": "now"})
    future = api.get("/studio/partials/tasks", params={"since": "2999-01-01T00:00"}).text
    assert "No tasks match." in future
    past = api.get("/studio/partials/tasks", params={"since": "2000-01-01T00:00",
                                                     "until": "2999-01-01T00:00:00"}).text
    assert "task-row-" in past


def test_tree_index_lists_roots_that_sent_tasks(api: httpx.Client) -> None:
    lonely = api.post("/v1/tasks", json={"name": "lonely"}).json()["id"]
    roots = []
    for i in range(30):
        root = api.post("/v1/tasks", json={"name": f"root-{i}"}).json()["id"]
        kid = api.post("/v1/tasks", json={"name": "kid", "parent_id": root}).json()["id"]
        api.post("/v1/tasks", json={"name": "grandkid", "parent_id": kid})
        roots.append(root)
    html = api.get("/studio/trees").text
    shown = [int(x) for x in re.findall(r'id="tree-row-(\d+)"', html)]
    assert shown == list(reversed(roots))[:25]
    assert f'id="tree-row-{lonely}"' not in html
    assert "3 queued" in html
    cursor = re.search(r'/studio/trees\?cursor=(\d+)', html).group(1)
    rest = api.get("/studio/partials/trees", params={"cursor": cursor}).text
    assert [int(x) for x in re.findall(r'id="tree-row-(\d+)"', rest)] == list(reversed(roots))[25:]

"""The studio reads well: tracebacks as text, a friendly note for a bad filter, tree nodes
labelled by their args, and the charts (queue depth, run times, timelines) drawn from real
tasks. HTTP against a real server and database; the pure helpers checked directly."""

from __future__ import annotations

import html as htmllib
import re
import time

import httpx

from branchwork.app.read.charts import depth_series
from branchwork.studio import forms
from branchwork.studio.render import args_label, error_parts

TRACEBACK = ('Traceback (most recent call last):\n  File "job.py", line 3, in run\n'
             '    crawl(url)\nValueError: page /a/b not found')


def claim(api: httpx.Client, queue: str = "default") -> dict:
    r = api.post("/v1/claim", json={"worker_id": "w-reading", "queues": [queue], "limit": 1})
    [task] = r.json()["tasks"]
    return task


def finish(api: httpx.Client, task: dict, ok: bool, **body: object) -> None:
    path = "complete" if ok else "fail"
    r = api.post(f"/v1/tasks/{task['id']}/{path}", json={"lease_token": task["lease_token"],
                                                       **body})
    assert r.status_code == 200, r.text


def text_of(page: str, element_id: str) -> str:
    """The visible text inside the element with this id (tags dropped, entities decoded)."""
    start = page.index(f'id="{element_id}"')
    chunk = page[start:start + 20000]
    return htmllib.unescape(re.sub(r"<[^>]+>", "", chunk))


def test_a_traceback_reads_as_text_on_the_task_and_run_pages(api: httpx.Client) -> None:
    tid = api.post("/v1/tasks", json={"name": "crawl"}).json()["id"]
    finish(api, claim(api), False, error={"type": "ValueError", "message": "page /a/b not found",
                                          "traceback": TRACEBACK})
    page = api.get(f"/studio/tasks/{tid}").text
    shown = text_of(page, "task-error")
    assert "ValueError: page /a/b not found" in shown
    assert 'File "job.py", line 3, in run\n    crawl(url)' in shown  # real line breaks
    assert "\\n" not in shown.split("Attempts")[0]
    # A workflow run's error holds its failed node's task error: same reading.
    wf = {"name": "one-step", "nodes": [{"name": "only", "task": "crawl"}], "edges": []}
    assert api.put("/v1/workflows/one-step", json=wf).status_code == 200
    run = api.post("/v1/workflows/one-step/runs", json={}).json()
    run_id = run.get("id") or run.get("run_id")
    finish(api, claim(api), False, error={"type": "ValueError", "message": "bad page",
                                          "traceback": TRACEBACK})
    deadline = time.monotonic() + 10
    while api.get(f"/v1/workflow-runs/{run_id}").json()["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    page = api.get(f"/studio/workflows/runs/{run_id}").text
    shown = text_of(page, "run-error")
    assert "ValueError: bad page" in shown and "only" in shown  # the failed node named
    assert 'line 3, in run\n    crawl(url)' in shown
    assert "\\n" not in shown.split("Timeline")[0] and '"traceback"' not in shown


def test_a_bad_filter_shows_the_page_with_a_note(api: httpx.Client) -> None:
    keep = api.post("/v1/tasks", json={"name": "listed"}).json()["id"]
    cases = {
        "/studio/tasks?status=bogus": "Unknown status “bogus”",
        "/studio/tasks?since=yesterday": "“yesterday” is not a date and time",
        "/studio/tasks?until=31/12/2025": "is not a date and time",
        "/studio/tasks?cursor=abc": "is not a page position",
        "/studio/tasks?q=abc": "“abc” is not a task id",
        "/studio/trees?cursor=-4": "is not a page position",
        "/studio/workflows?cursor=x": "is not a page position",
        "/studio/performance?window=2y": "Unknown window “2y”",
    }
    for path, note in cases.items():
        r = api.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        assert r.headers["content-type"].startswith("text/html"), path
        assert note in htmllib.unescape(r.text), path
        assert 'class="flash flash-error filter-note"' in r.text
    # The bad filter is left out: the list still shows the tasks.
    assert f'id="task-row-{keep}"' in api.get("/studio/tasks?status=bogus").text
    # A good filter gives no note.
    assert "filter-note" not in api.get("/studio/tasks?status=queued").text


def test_tree_nodes_are_labelled_by_their_args(api: httpx.Client) -> None:
    root = api.post("/v1/tasks", json={"name": "crawl",
                                       "args": {"url": "https://example.com"}}).json()["id"]
    kids = [api.post("/v1/tasks", json={
        "name": "crawl", "parent_id": root,
        "args": {"url": f"https://example.com/section/long-path/page/{i}", "depth": 1}},
    ).json()["id"] for i in range(20)]
    page = api.get(f"/studio/trees/{root}").text
    labels = []
    for k in kids:
        row = re.search(rf'id="node-{k}".*?</div>', page, re.S)
        assert row, k
        label = re.search(r'class="node-args mono"[^>]*>([^<]*)<', row.group(0))
        assert label, row.group(0)
        labels.append(htmllib.unescape(label.group(1)))
    assert len(set(labels)) == 20, labels  # 20 crawl nodes, 20 different labels
    assert labels[7].endswith("page/7, depth=1") and labels[7].startswith("url=https://")


def test_charts_are_drawn_from_real_tasks(api: httpx.Client) -> None:
    root = api.post("/v1/tasks", json={"name": "resize", "queue": "img"}).json()["id"]
    for i in range(5):
        api.post("/v1/tasks", json={"name": "resize", "queue": "img", "parent_id": root,
                                    "args": {"file": f"photo-{i}.jpg"}})
    for i in range(4):
        task = claim(api, "img")
        time.sleep(0.05 * (i + 1))
        finish(api, task, i != 3, **({} if i != 3 else {"error": {"type": "E", "message": "x"}}))
    # Queues: a depth line for "img" (2 still queued now).
    page = api.get("/studio/queues").text
    assert 'data-series="img"' in page
    legend = text_of(page, "depth-chart")
    assert re.search(r"img\s+2 now · peak [2-6]", legend), legend
    # Performance: run time percentiles and the failure rate of "resize".
    page = api.get("/studio/performance?window=1h").text
    row = re.search(r'<tr data-name="resize">(.*?)</tr>', page, re.S)
    assert row, page[-3000:]
    p50 = float(re.search(r'class="num p50-value" data-seconds="([\d.]+)"', row.group(1))[1])
    p95 = float(re.search(r'class="num p95-value" data-seconds="([\d.]+)"', row.group(1))[1])
    assert 0.05 <= p50 <= p95 < 10
    assert ">25.0%<" in row.group(1)  # 1 of 4 failed
    # Timelines: one row per task of the tree, and of a run.
    page = api.get(f"/studio/trees/{root}").text
    assert page.count('class="gantt-row"') == 6
    assert "photo-3.jpg" in page.split('id="gantt"')[1]
    wf = {"name": "two-steps", "nodes": [{"name": "a", "task": "step"},
                                         {"name": "b", "task": "step"}], "edges": [["a", "b"]]}
    assert api.put("/v1/workflows/two-steps", json=wf).status_code == 200
    run = api.post("/v1/workflows/two-steps/runs", json={}).json()
    run_id = run.get("id") or run.get("run_id")
    finish(api, claim(api), True, result=1)
    page = api.get(f"/studio/workflows/runs/{run_id}").text
    gantt = page.split('id="gantt"')[1]
    assert gantt.count('class="gantt-row"') == 2 and 'data-status="succeeded"' in gantt


def test_depth_is_rebuilt_from_arrivals_and_departures() -> None:
    # Now 2 queued; in the last minute 3 arrived and 2 left; in the one before, 1 arrived.
    assert depth_series(2, [3, 1, 0, 0], [2, 0, 0, 0]) == [0, 0, 1, 2]
    assert depth_series(0, [0, 0], [5, 0]) == [5, 0]
    assert depth_series(0, [4, 0], [0, 0]) == [0, 0]  # never below zero


def test_labels_errors_and_the_send_form_from_a_schema() -> None:
    assert args_label({"url": "https://example.com/a/very/long/path/to/page/19"}) \
        .endswith("page/19")
    assert args_label('{"x": 1, "y": [1, 2]}') == "x=1, y=[1,2]"
    assert args_label("not json {") == "not json {"
    assert args_label(None) == "" and args_label({}) == ""
    parts = error_parts({"node": "b", "task_id": 4, "error": {"type": "E", "message": "m",
                                                            "traceback": "a\nb"}})
    assert parts["extra"] == {"node": "b", "task_id": 4}
    assert parts["cause"]["traceback"] == "a\nb"
    assert error_parts("Traceback\n  line")["traceback"] == "  line"
    schema = {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string"}, "times": {"type": "integer", "default": 1},
        "loud": {"type": "boolean"}, "mood": {"enum": ["calm", "happy"]},
        "tags": {"type": "array", "items": {"type": "string"}}}}
    fields = forms.fields_of(schema)
    assert [(f.name, f.kind) for f in fields] == [
        ("name", "text"), ("loud", "boolean"), ("mood", "choice"), ("tags", "json"),
        ("times", "integer")]  # required first, then by name (JSONB keeps no key order)
    args = forms.args_from(schema, {"arg.name": "ada", "arg.times": "3", "arg.loud": "on",
                                    "arg.mood": "happy", "arg.tags": '["a"]'})
    assert args == {"name": "ada", "times": 3, "loud": True, "mood": "happy", "tags": ["a"]}
    for bad in ({"arg.times": "3"}, {"arg.name": "a", "arg.times": "x"},
                {"arg.name": "a", "arg.mood": "sad"}, {"arg.name": "a", "arg.tags": "[nope"}):
        try:
            forms.args_from(schema, bad)
        except forms.FormError:
            continue
        raise AssertionError(f"accepted {bad}")
    assert forms.fields_of({"type": "string"}) is None
    assert forms.args_from(None, {forms.RAW_FIELD: '{"a": 1}'}) == {"a": 1}

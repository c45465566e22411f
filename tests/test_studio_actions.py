# ruff: noqa: F811
"""The studio acts: buttons clicked in headless Chromium against a real server and a real
worker process; what changed is checked through the HTTP API afterwards.

Pause and resume a queue and change its limit; send a task from the Definitions page's
form (built from the args schema the worker registered); cancel a tree and a workflow run;
select rows of the Tasks list and cancel them in bulk after a confirmation that states the
count. A viewer's studio shows none of the buttons.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

# The browser and a checked tab (console errors and warnings fail the test): the browser
# tests' fixtures, used here by name (hence the file-wide F811 below).
from test_studio_browser import CHROMIUM, Page, browser, tab  # noqa: F401
from tokens_helpers import ADMIN, bearer, create, studio_headers, studio_login
from worker_helpers import python_worker, send, wait_for, wait_status

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no Chromium at /usr/bin")


def queue_row(api: httpx.Client, name: str) -> dict:
    rows = api.get("/v1/queues").json()
    rows = rows.get("queues", rows) if isinstance(rows, dict) else rows
    return next(q for q in rows if q["name"] == name)


def definitions_ready(api: httpx.Client) -> bool:
    body = api.get("/v1/task-definitions").json()
    items = body.get("definitions", body) if isinstance(body, dict) else body
    return any(d["name"] == "greet" for d in items)


def test_pause_resume_and_limit_a_queue(tab: Page, server: object, api: httpx.Client) -> None:
    with python_worker(server.url, "studio_app:reg", "--concurrency", "4"):
        first = send(api, "nap", {"seconds": 0}, queue="studio")  # the queue's first task
        assert wait_status(api, first)["status"] == "succeeded"
        page = tab.open("/studio/queues")
        row = page.locator('tr[data-queue="studio"]')
        row.wait_for(timeout=10_000)
        row.locator('button[data-action="pause"]').click()
        expect(page.locator("#queue-message")).to_have_text("Paused studio.", timeout=10_000)
        expect(row.locator(".queue-state")).to_have_text("paused")
        assert queue_row(api, "studio")["paused"] is True
        held = send(api, "nap", {"seconds": 0}, queue="studio")
        page.wait_for_timeout(1500)  # a worker is polling: nothing is claimed while paused
        assert api.get(f"/v1/tasks/{held}").json()["status"] == "queued"
        row.locator("input[name=limit]").fill("3")
        row.locator("button", has_text="Set").click()
        expect(page.locator("#queue-message")).to_have_text("studio: limit 3.", timeout=10_000)
        assert queue_row(api, "studio")["concurrency_limit"] == 3
        tab.shot("actions-queue-paused")
        page.locator('tr[data-queue="studio"] button[data-action="resume"]').click()
        expect(page.locator("#queue-message")).to_have_text("Resumed studio.", timeout=10_000)
        assert queue_row(api, "studio")["paused"] is False
        assert wait_status(api, held)["status"] == "succeeded"
        # An empty limit means no limit.
        page.locator('tr[data-queue="studio"] input[name=limit]').fill("")
        page.locator('tr[data-queue="studio"] button', has_text="Set").click()
        expect(page.locator("#queue-message")).to_have_text("studio: no limit.", timeout=10_000)
        assert queue_row(api, "studio")["concurrency_limit"] is None


def test_send_a_task_from_its_definition(tab: Page, server: object, api: httpx.Client) -> None:
    with python_worker(server.url, "studio_app:reg", "--concurrency", "2"):
        wait_for(lambda: definitions_ready(api), what="the worker's definitions")
        page = tab.open("/studio/definitions")
        page.locator('tr[data-name="greet"] a.send-link').click()
        form = page.locator("#send-form")
        form.wait_for(timeout=10_000)
        # Fields generated from the schema: a text box, a number box, a check box, a choice.
        assert form.locator('input[name="arg.name"]').get_attribute("required") is not None
        assert form.locator('input[name="arg.times"]').get_attribute("type") == "number"
        assert form.locator('input[name="arg.loud"]').get_attribute("type") == "checkbox"
        assert form.locator('select[name="arg.mood"] option').all_inner_texts()[-2:] == [
            "calm", "happy"]
        # A value the schema refuses comes back with a message, nothing sent.
        before = api.get("/v1/tasks", params={"name": "greet"}).json()
        form.locator('input[name="arg.name"]').fill("Ada")
        form.locator('textarea[name="arg.tags"]').fill('["new", oops')
        form.locator("#send-button").click()
        expect(page.locator("#send-error")).to_contain_text("Tags: not valid JSON",
                                                            timeout=10_000)
        assert api.get("/v1/tasks", params={"name": "greet"}).json() == before
        # The refused form answers 422, which Chromium logs; nothing else may be logged.
        assert all("status of 422" in e for e in tab.errors), tab.errors
        tab.errors.clear()
        form = page.locator("#send-form")
        assert form.locator('input[name="arg.name"]').input_value() == "Ada"  # kept
        assert form.locator('textarea[name="arg.tags"]').input_value() == '["new", oops'
        form.locator('textarea[name="arg.tags"]').fill('["new"]')
        form.locator('input[name="arg.times"]').fill("2")
        form.locator('input[name="arg.loud"]').check()
        form.locator('select[name="arg.mood"]').select_option("happy")
        form.locator("#send-button").click()
        page.wait_for_url("**/studio/tasks/*?sent=1", timeout=10_000)
        tid = int(page.url.split("/tasks/")[1].split("?")[0])
        expect(page.locator("#action-message")).to_have_text("Sent.")
        done = wait_status(api, tid)
        assert done["name"] == "greet" and done["queue"] == "studio"
        assert done["args"] == {"name": "Ada", "times": 2, "loud": True, "mood": "happy",
                                "tags": ["new"]}
        assert done["status"] == "succeeded"
        assert done["result"] == "HELLO ADA (HAPPY) HELLO ADA (HAPPY) #NEW"
        expect(page.locator("#task-status .badge")).to_have_text("succeeded", timeout=10_000)
        tab.shot("actions-sent")


def test_cancel_a_tree_and_a_run(tab: Page, server: object, api: httpx.Client) -> None:
    with python_worker(server.url, "studio_app:reg", "--concurrency", "3"):
        root = send(api, "crawl_site", {"url": "https://example.com", "children": 4},
                    queue="studio")
        tree = wait_for(lambda: (t := api.get(f"/v1/trees/{root}").json()) and
                        len(t.get("children") or t.get("tree", {}).get("children") or []) == 4
                        and t, what="the crawl's children")
        assert tree
        page = tab.open(f"/studio/trees/{root}")
        page.once("dialog", lambda d: (d.message.startswith(f"Cancel the whole tree of #{root}?")
                                       or pytest.fail(d.message), d.accept()))
        page.locator("#cancel-tree").click()
        expect(page.locator("#tree-message")).to_contain_text("Cancelled", timeout=10_000)
        ids = [root, *range(root + 1, root + 5)]
        for tid in ids:
            assert wait_status(api, tid)["status"] == "cancelled", tid
        tab.shot("actions-tree-cancelled")
        wf = {"name": "hold-then-go", "nodes": [
            {"name": "hold", "task": "nap", "queue": "studio", "args": {"seconds": 60}},
            {"name": "go", "task": "nap", "queue": "studio", "args": {"seconds": 0}}],
            "edges": [["hold", "go"]]}
        assert api.put("/v1/workflows/hold-then-go", json=wf).status_code == 200
        run = api.post("/v1/workflows/hold-then-go/runs", json={}).json()
        run_id = run.get("id") or run.get("run_id")
        hold = wait_for(lambda: {n["node"]: n for n in api.get(
            f"/v1/workflow-runs/{run_id}").json()["nodes"]}["hold"]["task_id"], what="hold")
        wait_status(api, hold, "running")  # the worker holds it
        page = tab.open(f"/studio/workflows/runs/{run_id}")
        page.once("dialog", lambda d: d.accept())
        page.locator("#cancel-run").click()
        expect(page.locator("#run-message")).to_contain_text("Run cancelled", timeout=10_000)
        expect(page.locator("#run-status .badge")).to_have_text("cancelled", timeout=10_000)
        assert api.get(f"/v1/workflow-runs/{run_id}").json()["status"] == "cancelled"
        nodes = {n["node"]: n for n in api.get(f"/v1/workflow-runs/{run_id}").json()["nodes"]}
        assert nodes["hold"]["task_id"] == hold
        assert wait_status(api, hold)["status"] == "cancelled"
        assert nodes["go"]["task_id"] is None  # never queued
        tab.shot("actions-run-cancelled")


def test_select_rows_and_cancel_them_in_bulk(tab: Page, server: object,
                                             api: httpx.Client) -> None:
    # The queue is paused so the tasks stay queued while a real worker polls it.
    assert api.put("/v1/queues/studio", json={"paused": True}).status_code == 200
    with python_worker(server.url, "studio_app:reg", "--concurrency", "2"):
        ids = [send(api, "nap", {"seconds": 0}, queue="studio") for _ in range(5)]
        page = tab.open("/studio/tasks?queue=studio")
        for tid in ids:
            page.locator(f"#task-row-{tid}").wait_for(timeout=10_000)
        assert page.locator("#bulk-cancel").is_disabled()
        chosen = ids[1:4]
        for tid in chosen:
            page.locator(f"#task-row-{tid} input[data-select-row]").check()
        expect(page.locator("#bulk-bar [data-selected-count]")).to_have_text("3")
        seen: list[str] = []
        page.once("dialog", lambda d: (seen.append(d.message), d.dismiss()))
        page.locator("#bulk-cancel").click()
        page.wait_for_timeout(500)
        assert seen and seen[0].startswith("Cancel 3 selected tasks?"), seen
        assert all(api.get(f"/v1/tasks/{t}").json()["status"] == "queued" for t in ids)
        page.once("dialog", lambda d: (seen.append(d.message), d.accept()))
        page.locator("#bulk-cancel").click()
        expect(page.locator("#bulk-message")).to_have_text(
            "Cancelled: 3 of 3 selected tasks.", timeout=10_000)
        statuses = {t: api.get(f"/v1/tasks/{t}").json()["status"] for t in ids}
        assert statuses == {t: "cancelled" if t in chosen else "queued" for t in ids}
        expect(page.locator(f"#task-row-{chosen[0]} .badge")).to_have_text("cancelled",
                                                                           timeout=10_000)
        expect(page.locator("#bulk-bar [data-selected-count]")).to_have_text("0")
        tab.shot("actions-bulk-cancelled")
        # Retry the same three in bulk: queued again; then resume and the worker runs them.
        page.locator("input[data-select-all]").check()
        expect(page.locator("#bulk-bar [data-selected-count]")).to_have_text("5")
        page.once("dialog", lambda d: d.accept())
        page.locator("#bulk-retry").click()
        expect(page.locator("#bulk-message")).to_contain_text(
            "Queued again: 3 of 5 selected tasks. 2 left as they were", timeout=10_000)
        assert api.put("/v1/queues/studio", json={"paused": False}).status_code == 200
        for t in ids:
            assert wait_status(api, t)["status"] == "succeeded", t


def test_cancel_everything_a_filter_matches_after_a_count(tab: Page, server: object,
                                                         api: httpx.Client) -> None:
    """Beyond the rows shown: the whole filter, with a dry-run count to confirm first."""
    assert api.put("/v1/queues/held", json={"paused": True}).status_code == 200
    with python_worker(server.url, "studio_app:reg", "--concurrency", "2"):
        held = [send(api, "nap", {"seconds": 0}, queue="held") for _ in range(60)]
        other = [send(api, "nap", {"seconds": 0}, queue="studio") for _ in range(2)]
        page = tab.open("/studio/tasks?queue=held&status=queued")
        page.locator("#bulk-cancel-filter").click()
        expect(page.locator("#bulk-confirm")).to_contain_text(
            "60 tasks match this filter; 60 would be cancelled", timeout=10_000)
        assert all(api.get(f"/v1/tasks/{t}").json()["status"] == "queued" for t in held[:3])
        page.locator("#bulk-confirm-button").click()
        expect(page.locator("#bulk-message")).to_have_text(
            "Cancelled: 60 of 60 tasks matching the filter.", timeout=10_000)
        assert {api.get(f"/v1/tasks/{t}").json()["status"] for t in held} == {"cancelled"}
        for t in other:  # outside the filter: run by the worker as usual
            assert wait_status(api, t)["status"] == "succeeded"
        tab.shot("actions-bulk-filter")


def test_a_viewer_gets_no_action_buttons(make_server, browser: object) -> None:
    server = make_server(api_token=ADMIN)
    viewer = create(server.url, "studio-viewer", "viewer")
    tid = httpx.post(server.url + "/v1/tasks", json={"name": "t", "queue": "studio"},
                     headers=bearer(ADMIN)).json()["id"]
    tab = Page(browser, server.url)
    try:
        tab.open("/studio/login", live=False)
        tab.page.locator("#token").fill(viewer)
        tab.page.locator("button[type=submit]").click()
        tab.page.wait_for_selector("body[data-live-state=open]", timeout=10_000)
        for path, selector in (("/studio/tasks", "#bulk-bar"),
                               ("/studio/tasks", "input[data-select-row]"),
                               ("/studio/queues", 'button[data-action="pause"]'),
                               (f"/studio/trees/{tid}", "#cancel-tree"),
                               ("/studio/definitions?send=t", "#send-form")):
            tab.open(path)
            assert tab.page.locator(selector).count() == 0, path
    finally:
        errors = list(tab.errors)
        tab.close()
    assert errors == [], errors
    # And the POSTs themselves are refused to a viewer's session (app/access.py).
    with httpx.Client(base_url=server.url, timeout=10) as c:
        assert studio_login(c, viewer).status_code == 303
        headers = studio_headers(c)
        for path in ("/studio/queues/studio/pause", "/studio/bulk/cancel",
                     f"/studio/trees/{tid}/cancel", "/studio/definitions/send"):
            assert c.post(path, headers=headers).status_code == 403, path
    assert httpx.get(server.url + f"/v1/tasks/{tid}",
                     headers=bearer(ADMIN)).json()["status"] == "queued"


def test_rerun_a_finished_run_from_a_node(tab: Page, server: object, api: httpx.Client) -> None:
    wf = {"name": "two-naps", "nodes": [
        {"name": "first", "task": "nap", "queue": "studio", "args": {"seconds": 0}},
        {"name": "second", "task": "nap", "queue": "studio", "args": {"seconds": 0}}],
        "edges": [["first", "second"]]}
    assert api.put("/v1/workflows/two-naps", json=wf).status_code == 200
    run = api.post("/v1/workflows/two-naps/runs", json={}).json()
    run_id = run.get("id") or run.get("run_id")
    with python_worker(server.url, "studio_app:reg", "--concurrency", "2"):
        wait_for(lambda: api.get(f"/v1/workflow-runs/{run_id}").json()["status"] == "succeeded",
                 what="the run")
        before = {n["node"]: n["task_id"] for n in
                  api.get(f"/v1/workflow-runs/{run_id}").json()["nodes"]}
        page = tab.open(f"/studio/workflows/runs/{run_id}")
        page.once("dialog", lambda d: d.accept())
        page.locator('tr[data-row-node="second"] .rerun-button').click()
        expect(page.locator("#run-message")).to_contain_text("Re-running from second",
                                                             timeout=10_000)
        wait_for(lambda: api.get(f"/v1/workflow-runs/{run_id}").json()["status"] == "succeeded"
                 and {n["node"]: n["task_id"] for n in api.get(
                     f"/v1/workflow-runs/{run_id}").json()["nodes"]}["second"] != before[
                     "second"], what="the re-run")
        after = {n["node"]: n["task_id"] for n in
                 api.get(f"/v1/workflow-runs/{run_id}").json()["nodes"]}
        assert after["first"] == before["first"]  # upstream kept
        assert wait_status(api, after["second"])["status"] == "succeeded"
        expect(page.locator("#run-status .badge")).to_have_text("succeeded", timeout=10_000)

"""The studio in a real browser: Debian's Chromium driven by Playwright, against a real server.

Each test opens pages, drives the task life cycle through the HTTP API, and checks what a
user sees change without reloading. Console errors and warnings fail the test. Every page
is opened at 1440 and 400 px wide: the page itself never scrolls sideways (wide tables and
charts scroll inside their own box), and screenshots are kept for a person to look at.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(os.environ.get("BRANCHWORK_SCREENSHOTS", "/tmp/branchwork-studio-shots"))
WIDTHS = (1440, 400)
XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no Chromium at /usr/bin")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


class Page:
    """A page plus the console errors and page errors it collected."""

    def __init__(self, browser: object, base: str, width: int = 1360) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        self.page = self.context.new_page()
        self.base = base
        self.errors: list[str] = []
        # Warnings fail too: htmx 1's SSE extension under htmx 2 used to log one on every page.
        self.page.on("console", lambda m: self.errors.append(f"{m.type}: {m.text}")
                     if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, path: str, live: bool = True) -> object:
        self.page.goto(self.base + path)
        if live:
            self.page.wait_for_selector("body[data-live-state=open]", timeout=10_000)
        return self.page

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser: object, server: object) -> Iterator[Page]:
    page = Page(browser, server.url)
    yield page
    errors = list(page.errors)
    page.close()
    assert errors == [], errors


def claim(api: httpx.Client, queue: str = "default") -> dict:
    [task] = api.post("/v1/claim", json={"worker_id": "w-browser", "queues": [queue],
                                         "limit": 1}).json()["tasks"]
    return task


def complete(api: httpx.Client, task: dict, result: object = None) -> None:
    r = api.post(f"/v1/tasks/{task['id']}/complete",
                 json={"lease_token": task["lease_token"], "result": result})
    assert r.status_code == 200, r.text


def test_pages_load_without_console_errors(tab: Page, api: httpx.Client) -> None:
    api.post("/v1/workers/register", json={
        "worker_id": "worker-a1", "queues": ["default", "mail"], "info": {"hostname": "box-1"},
        "tasks": [{"name": "hello", "queue": "default", "defaults": {"max_retries": 2},
                   "args_schema": {"type": "object", "properties": {"x": {"type": "integer"}}}}]})
    tid = api.post("/v1/tasks", json={"name": "hello", "args": {"x": 1}}).json()["id"]
    claim(api)
    api.put("/v1/schedules/nightly-report", json={"target": "hello", "cron": "0 3 * * *"})
    api.put("/v1/kv/config/feature", json={"value": '{"enabled": true}'})
    for path in ("/studio", "/studio/tasks", f"/studio/tasks/{tid}", f"/studio/trees/{tid}",
                 "/studio/trees", "/studio/workers", "/studio/definitions", "/studio/kv",
                 "/studio/schedules", "/studio/workflows"):
        tab.open(path)
        assert tab.page.locator("h1").first.is_visible()
        tab.shot("page-" + (path.strip("/").replace("/", "-") or "root"))
    tab.open("/studio")
    tab.shot("overview")


def test_task_sent_after_open_appears_and_succeeds_live(tab: Page, api: httpx.Client) -> None:
    page = tab.open("/studio/tasks")
    tid = api.post("/v1/tasks", json={"name": "live-one", "args": {"n": 1}}).json()["id"]
    row = page.locator(f"#task-row-{tid}")
    row.wait_for(timeout=10_000)
    assert row.get_attribute("data-status") == "queued"
    task = claim(api)
    playwright_api.expect(row.locator(".badge")).to_have_text("running", timeout=10_000)
    complete(api, task, {"ok": True})
    playwright_api.expect(page.locator(f"#task-row-{tid} .badge")).to_have_text(
        "succeeded", timeout=10_000)
    tab.shot("tasks")
    # The overview counts move too, on another page, without reload.
    page2 = tab.open("/studio")
    before = page2.locator(".stat.s-succeeded .stat-value").inner_text()
    t2 = api.post("/v1/tasks", json={"name": "live-two"}).json()["id"]
    complete(api, claim(api))
    playwright_api.expect(page2.locator(".stat.s-succeeded .stat-value")).not_to_have_text(
        before, timeout=10_000)
    assert t2 > tid
    tab.shot("overview-live")


def test_growing_tree_shows_new_nodes_live(tab: Page, api: httpx.Client) -> None:
    root = api.post("/v1/tasks", json={"name": "root"}).json()["id"]
    page = tab.open(f"/studio/trees/{root}")
    kids = [api.post("/v1/tasks", json={"name": f"child-{i}", "parent_id": root}).json()["id"]
            for i in range(3)]
    for k in kids:
        page.locator(f"#node-{k}").wait_for(timeout=10_000)
    grandchild = api.post("/v1/tasks", json={"name": "grandchild",
                                             "parent_id": kids[0]}).json()["id"]
    playwright_api.expect(page.locator(f"#node-{kids[0]} .node-row").first).to_contain_text(
        "1 child", timeout=10_000)
    page.locator(f"#node-{kids[0]} > .node-row .twisty").click()
    page.locator(f"#node-{grandchild}").wait_for(timeout=10_000)
    playwright_api.expect(page.locator("#tree-total")).to_contain_text("5 tasks")
    tab.shot("tree")


def test_cancel_and_retry_buttons(tab: Page, api: httpx.Client) -> None:
    tid = api.post("/v1/tasks", json={"name": "victim"}).json()["id"]
    page = tab.open(f"/studio/tasks/{tid}")
    page.locator("#cancel-button").click()
    playwright_api.expect(page.locator("#task-status .badge")).to_have_text("cancelled",
                                                                            timeout=10_000)
    assert api.get(f"/v1/tasks/{tid}").json()["status"] == "cancelled"
    page.locator("#retry-button").click()
    playwright_api.expect(page.locator("#task-status .badge")).to_have_text("queued",
                                                                            timeout=10_000)
    assert api.get(f"/v1/tasks/{tid}").json()["status"] == "queued"
    complete(api, claim(api), "done")
    playwright_api.expect(page.locator("#task-status .badge")).to_have_text("succeeded",
                                                                            timeout=10_000)


def test_xss_payloads_render_as_text(tab: Page, api: httpx.Client) -> None:
    tid = api.post("/v1/tasks", json={"name": "xss", "args": {"html": XSS}}).json()["id"]
    task = claim(api)
    r = api.post(f"/v1/tasks/{tid}/fail", json={
        "lease_token": task["lease_token"], "logs": XSS,
        "error": {"type": "Boom", "message": XSS, "traceback": XSS}})
    assert r.status_code == 200, r.text
    t2 = api.post("/v1/tasks", json={"name": "xss-result"}).json()["id"]
    complete(api, claim(api), {"html": XSS})
    api.put("/v1/kv/xss-key", json={"value": XSS})
    for path, selector in ((f"/studio/tasks/{tid}", "#task-args"),
                           (f"/studio/tasks/{tid}", "#task-error"),
                           (f"/studio/tasks/{t2}", "#task-result"),
                           ("/studio/kv", "#kv")):
        page = tab.open(path)
        assert "<script>window.__xss=1</script>" in page.locator(selector).inner_text()
        assert page.evaluate("typeof window.__xss") == "undefined"
    tab.shot("kv")
    page = tab.open(f"/studio/tasks/{tid}")
    tab.shot("task")


def test_workflow_run_nodes_change_colour_live(tab: Page, api: httpx.Client) -> None:
    wf = {"name": "pipeline", "nodes": [{"name": "a", "task": "step"},
                                        {"name": "b", "task": "step"},
                                        {"name": "c", "task": "step"}],
          "edges": [["a", "b"], ["b", "c"]]}
    assert api.put("/v1/workflows/pipeline", json=wf).status_code == 200
    run = api.post("/v1/workflows/pipeline/runs", json={}).json()
    run_id = run.get("id") or run.get("run_id")
    page = tab.open(f"/studio/workflows/runs/{run_id}")
    node = page.locator('[data-node="a"]')
    assert node.get_attribute("data-status") == "queued"
    fill_before = page.locator('[data-node="a"] rect').evaluate(
        "e => getComputedStyle(e).fill")
    for name in ("a", "b", "c"):
        task = claim(api)
        assert task["workflow_node"] == name
        complete(api, task, name)
        playwright_api.expect(page.locator(f'[data-node="{name}"]')).to_have_attribute(
            "data-status", "succeeded", timeout=10_000)
    fill_after = page.locator('[data-node="a"] rect').evaluate(
        "e => getComputedStyle(e).fill")
    assert fill_before != fill_after
    playwright_api.expect(page.locator("#run-status .badge")).to_have_text("succeeded",
                                                                          timeout=10_000)
    tab.shot("workflow-run")


def test_definitions_and_kv_pages_are_live(tab: Page, api: httpx.Client) -> None:
    page = tab.open("/studio/definitions")
    playwright_api.expect(page.locator("#definitions")).to_contain_text("No task definitions")
    api.post("/v1/workers/register", json={
        "worker_id": "w-late", "queues": ["mail"],
        "tasks": [{"name": "late_task", "queue": "mail", "defaults": {"max_retries": 4}}]})
    playwright_api.expect(page.locator("#definitions")).to_contain_text("late_task",
                                                                        timeout=10_000)
    page = tab.open("/studio/kv?prefix=live%3A")
    playwright_api.expect(page.locator("#kv")).to_contain_text("No keys")
    api.put("/v1/kv/live:answer", json={"value": "forty-two"})
    playwright_api.expect(page.locator("#kv")).to_contain_text("forty-two", timeout=10_000)
    api.put("/v1/kv/live:answer", json={"value": "forty-three"})
    playwright_api.expect(page.locator("#kv")).to_contain_text("forty-three", timeout=10_000)
    api.put("/v1/kv/other:key", json={"value": "not under the prefix"})
    page.wait_for_timeout(4_000)  # a refresh later, still only the prefix's keys
    playwright_api.expect(page.locator("#kv")).not_to_contain_text("not under the prefix")


def overflow(page: object) -> dict:
    """How far the page scrolls sideways (0: not at all), and the widest culprits."""
    return page.evaluate("""() => {
        const over = document.documentElement.scrollWidth - window.innerWidth;
        const wide = [];
        if (over > 0) {
            for (const el of document.querySelectorAll("body *")) {
                const r = el.getBoundingClientRect();
                if (r.right > window.innerWidth + 1 && el.offsetParent !== null) {
                    wide.push(el.tagName + "#" + el.id + "." + el.className);
                    if (wide.length > 8) break;
                }
            }
        }
        return {over, wide};
    }""")


def seed_every_page(api: httpx.Client) -> dict[str, int]:
    """Something on every page: a definition with a schema, a failed task in a tree, a KV
    key, a schedule, a finished workflow run."""
    api.post("/v1/workers/register", json={
        "worker_id": "worker-wide", "queues": ["default", "mail"],
        "info": {"hostname": "a-rather-long-host-name.internal.example.com"},
        "tasks": [{"name": "hello", "queue": "default", "defaults": {"max_retries": 2},
                   "args_schema": {"type": "object", "required": ["x"], "properties": {
                       "x": {"type": "integer"}, "label": {"type": "string"},
                       "fast": {"type": "boolean"}, "tags": {"type": "array"}}}}]})
    root = api.post("/v1/tasks", json={"name": "crawl", "args": {
        "url": "https://example.com/" + "very-long-segment/" * 12}}).json()["id"]
    for i in range(3):
        api.post("/v1/tasks", json={"name": "crawl", "parent_id": root,
                                    "args": {"url": f"https://example.com/page/{i}"}})
    complete(api, claim(api), {"ok": True})
    failed = claim(api)
    api.post(f"/v1/tasks/{failed['id']}/fail", json={
        "lease_token": failed["lease_token"],
        "error": {"type": "ValueError", "message": "a long message " * 20,
                  "traceback": "Traceback (most recent call last):\n  File \"x.py\", line 1"
                               + ", in a_function_with_a_very_long_name_indeed" * 6 + "\n"}})
    api.put("/v1/schedules/nightly-report", json={"target": "hello", "cron": "0 3 * * *"})
    api.put("/v1/kv/config/feature", json={"value": '{"enabled": true}' * 30})
    wf = {"name": "pipeline", "nodes": [{"name": "a", "task": "step"},
                                        {"name": "b", "task": "step"}], "edges": [["a", "b"]]}
    api.put("/v1/workflows/pipeline", json=wf)
    run = api.post("/v1/workflows/pipeline/runs", json={}).json()
    run_id = run.get("id") or run.get("run_id")
    task = claim(api)
    api.post(f"/v1/tasks/{task['id']}/fail", json={
        "lease_token": task["lease_token"], "error": {"type": "Boom", "message": "node failed",
                                                      "traceback": "line 1\nline 2"}})
    return {"root": root, "failed": failed["id"], "run": run_id}


def test_every_page_at_wide_and_narrow_widths(browser: object, server: object,
                                              api: httpx.Client) -> None:
    ids = seed_every_page(api)
    first = Page(browser, server.url)
    try:
        first.open("/studio")
        # Every page the navigation offers (other parts of the studio add theirs there).
        nav = first.page.eval_on_selector_all(
            "header nav.nav-row a", "links => links.map(a => a.getAttribute('href'))")
    finally:
        first.close()
    assert {"/studio/queues", "/studio/performance", "/studio/definitions"} <= set(nav)
    details = [f"/studio/tasks/{ids['failed']}", f"/studio/trees/{ids['root']}",
               f"/studio/workflows/runs/{ids['run']}", "/studio/definitions?send=hello",
               "/studio/tasks?status=bogus", "/studio/tasks/999999999"]
    problems: list[str] = []
    for width in WIDTHS:
        tab = Page(browser, server.url, width)
        try:
            for path in [*nav, *details]:
                live = not path.endswith("999999999")
                before = len(tab.errors)
                tab.open(path, live=live)
                if not live:  # the not-found page: Chromium logs its own 404, nothing else
                    assert all("status of 404" in e for e in tab.errors[before:]), tab.errors
                    del tab.errors[before:]
                tab.page.wait_for_timeout(300)  # partials loaded on "load" (health banner)
                assert tab.page.locator("h1").first.is_visible(), path
                o = overflow(tab.page)
                if o["over"] > 0:
                    problems.append(f"{path} at {width}px scrolls {o['over']}px: {o['wide']}")
                name = path.strip("/").replace("/", "-").replace("?", "-").replace("=", "-")
                tab.shot(f"w{width}-{name or 'studio'}")
            if width < 700:  # the narrow menu opens and leads to every page
                tab.open("/studio")
                assert not tab.page.locator("header nav.nav-row").is_visible()
                tab.page.locator("#nav-menu summary").click()
                tab.page.locator("#nav-menu a[href='/studio/queues']").click()
                tab.page.wait_for_url("**/studio/queues")
        finally:
            errors = list(tab.errors)
            tab.close()
        assert errors == [], (width, errors)
    assert problems == [], problems

"""The studio's flow control: the Limits page (rate limits in use, concurrency keys, tasks
held back), the "why isn't it running?" box of a task page, and the flow gauges and fold
counter of /metrics — through HTTP, and once in headless Chromium at 1440 and 400 px."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from servers import ThreadServer

CHROMIUM = "/usr/bin/chromium"


def _send(api: httpx.Client, queue: str, **extra: Any) -> int:
    r = api.post("/v1/tasks", json={"name": "job", "queue": queue, "args": {}, **extra})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _claim(api: httpx.Client, queue: str) -> list[dict[str, Any]]:
    r = api.post("/v1/claim", json={"worker_id": "w-limits", "queues": [queue], "limit": 5})
    assert r.status_code == 200, r.text
    return r.json()["tasks"]


def _seed(api: httpx.Client) -> dict[str, int]:
    """A rate limit used up by one task and one more held back by it; a concurrency key at
    its limit with one held back; a debounced send folded once."""
    api.put("/v1/rate-limits/partner-api", json={"units": 1, "period_seconds": 600})
    rated = {"rate_limits": [{"limit": "partner-api"}]}
    first = _send(api, "rated", **rated)
    assert [t["id"] for t in _claim(api, "rated")] == [first]
    rate_held = _send(api, "rated", **rated)
    keyed = {"concurrency_key": "customer-42", "concurrency_limit": 1}
    holder = _send(api, "keyed", **keyed)
    assert [t["id"] for t in _claim(api, "keyed")] == [holder]
    key_held = _send(api, "keyed", **keyed)
    for version in (1, 2):
        _send(api, "windows", args={"v": version}, debounce_seconds=600, debounce_key="doc")
    return {"rate_held": rate_held, "key_held": key_held, "holder": holder}


def test_limits_page_shows_use_keys_and_held_back_tasks(api: httpx.Client) -> None:
    ids = _seed(api)
    for path in ("/studio/limits", "/studio/partials/limits"):
        r = api.get(path)
        assert r.status_code == 200, r.text[:500]
        html = r.text
        row = re.search(r'<tr id="limit-1" data-limit="partner-api">(.*?)</tr>', html, re.S)
        assert row, html
        assert re.search(r'class="num limit-used">1<', row.group(1))
        assert "1 per 600.0 s" in row.group(1)
        key = re.search(r'<tr id="key-1" data-key="customer-42">(.*?)</tr>', html, re.S)
        assert key, html
        assert re.search(r'class="num key-running">1<', key.group(1))
        assert f'href="/studio/tasks/{ids["key_held"]}#task-why"' in key.group(1)
        held = {q: cells for q, cells in re.findall(
            r'<tr data-queue="([^"]+)">(.*?)</tr>', html, re.S)}
        assert re.findall(r'class="num">(\d+)<', held["keyed"]) == ["1", "0"]
        assert re.findall(r'class="num">(\d+)<', held["rated"]) == ["0", "1"]
    page = api.get("/studio/limits").text
    assert 'href="/studio/limits"' in page and 'aria-current="page"' in page


def test_task_page_says_why_it_is_not_running(api: httpx.Client) -> None:
    ids = _seed(api)
    box = api.get(f"/studio/partials/task/{ids['key_held']}/why").text
    assert 'data-code="key_limit_full"' in box and "customer-42" in box
    assert f'href="/studio/tasks/{ids["holder"]}"' in box
    rated = api.get(f"/studio/partials/task/{ids['rate_held']}/why").text
    assert 'data-code="rate_limited"' in rated and "partner-api" in rated
    # A running task has nothing to explain; a missing one renders nothing either.
    running = api.get(f"/studio/partials/task/{ids['holder']}/why").text
    assert "why-reason" not in running and 'id="task-why"' in running
    assert api.get("/studio/partials/task/987654/why").status_code == 200
    # The task page loads the box (one include in task.html).
    page = api.get(f"/studio/tasks/{ids['key_held']}")
    assert page.status_code == 200, page.text[-300:]
    assert f'hx-get="/studio/partials/task/{ids["key_held"]}/why"' in page.text


def test_metrics_export_flow_gauges_and_folds(api: httpx.Client) -> None:
    _seed(api)
    text = api.get("/metrics").text
    assert 'branchwork_rate_limit_units_used{limit="partner-api"} 1' in text
    assert 'branchwork_rate_limit_keys_exhausted{limit="partner-api"} 1' in text
    assert re.search(r'branchwork_rate_limit_next_unit_seconds\{limit="partner-api"\} '
                     r'(\d+\.\d+)', text)
    assert 'branchwork_concurrency_keys_full{queue="keyed"} 1' in text
    assert 'branchwork_concurrency_key_running{queue="keyed"} 1' in text
    assert 'branchwork_tasks_held_back{queue="keyed",reason="key_limit"} 1' in text
    assert 'branchwork_tasks_held_back{queue="rated",reason="rate_limit"} 1' in text
    assert 'branchwork_tasks_folded_total{queue="windows",name="job"} 1' in text
    assert 'branchwork_tasks_sent_total{queue="windows",name="job"} 1' in text


@pytest.fixture
def browser() -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium at /usr/bin")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--headless", "--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def test_limits_and_why_in_chromium_without_console_errors(
        browser: Any, server: ThreadServer, api: httpx.Client) -> None:
    ids = _seed(api)
    errors: list[str] = []
    for width in (1440, 400):
        context = browser.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        page.on("console", lambda m: errors.append(f"{m.type}: {m.text}")
                if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url + "/studio/limits")
        page.wait_for_selector("#rate-limits")
        assert page.locator("#concurrency-keys").is_visible()
        over = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert over <= 0, f"the Limits page scrolls sideways by {over}px at {width}px"
        page.goto(server.url + f"/studio/tasks/{ids['key_held']}")
        page.wait_for_selector("#why-reasons [data-code=key_limit_full]", timeout=10_000)
        over = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert over <= 0, f"the task page scrolls sideways by {over}px at {width}px"
        context.close()
        assert errors == [], (width, errors)

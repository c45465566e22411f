"""Progress on the studio's task page, live, in headless Chromium (issue 15): a running task
reports progress and streams text; the open page shows the bar move and the text grow
without being reloaded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from orchestration_helpers import claim_one, complete

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no Chromium at /usr/bin")


@pytest.fixture
def server(make_server):  # type: ignore[no-untyped-def]
    """A lease long enough for a hand-held task while the browser starts (no heartbeats)."""
    return make_server(lease_seconds=120.0)


@pytest.fixture
def page(server) -> Iterator[object]:  # type: ignore[no-untyped-def]
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        tab = context.new_page()
        errors: list[str] = []
        tab.on("console", lambda m: errors.append(f"{m.type}: {m.text}")
               if m.type in ("error", "warning") else None)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        yield tab
        context.close()
        browser.close()
    assert errors == [], errors


def test_progress_shows_live_on_the_task_page(page, api: httpx.Client, server) -> None:  # type: ignore[no-untyped-def]
    api.post("/v1/tasks", json={"name": "llm.answer", "queue": "llm"})
    task = claim_one(api, "llm")
    path = f"/v1/tasks/{task['id']}/stream"
    token = task["lease_token"]

    page.goto(f"{server.url}/studio/tasks/{task['id']}")
    page.wait_for_selector("#task-live", state="attached")
    page.evaluate("window.__notReloaded = true")
    assert page.locator("#task-progress-bar").count() == 0  # nothing reported yet

    assert api.post(path, json={"lease_token": token, "progress": 0.25,
                                "message": "reading the question",
                                "chunks": ["The answer"]}).status_code == 200
    bar = page.locator("#task-progress-bar")
    bar.wait_for(timeout=15_000)
    assert bar.get_attribute("value") == "0.25"
    assert page.locator("#task-progress-percent").inner_text() == "25%"
    assert page.locator("#task-progress-message").inner_text() == "reading the question"
    assert page.locator("#task-stream").inner_text() == "The answer"

    assert api.post(path, json={"lease_token": token, "progress": 0.75,
                                "message": "writing", "chunks": [" is", " 42."]}
                    ).status_code == 200
    expect(page.locator("#task-progress-bar")).to_have_attribute("value", "0.75",
                                                                timeout=15_000)
    expect(page.locator("#task-stream")).to_have_text("The answer is 42.", timeout=15_000)
    assert page.locator("#task-progress-message").inner_text() == "writing"

    complete(api, task, "42")
    expect(page.locator("#task-status")).to_contain_text("succeeded", timeout=15_000)
    assert page.locator("#task-stream").inner_text() == "The answer is 42."
    assert page.evaluate("window.__notReloaded") is True  # all of it without a reload

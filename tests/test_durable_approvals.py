"""People in the loop (issue 11, item 4): a task asks ``ctx.wait_for_approval(question)``,
waits holding no worker, and resumes with the decision a person made through the API, the
CLI or the studio (headless Chromium), recorded with who and when. Real server, real worker.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli_helpers import bw, user_env
from tokens_helpers import ADMIN, bearer, create, studio_login
from worker_helpers import python_worker, send, task, wait_for, wait_status

CHROMIUM = "/usr/bin/chromium"


def _pending(api: httpx.Client) -> list[dict[str, Any]]:
    response = api.get("/v1/approvals")
    assert response.status_code == 200, response.text
    return response.json()["approvals"]


def _asking(api: httpx.Client, task_id: int) -> dict[str, Any]:
    """Wait until the task waits for its approval; its row of the pending list."""
    wait_status(api, task_id, "waiting", timeout=60)
    return wait_for(lambda: next((a for a in _pending(api) if a["task_id"] == task_id), None),
                    what=f"task {task_id} in the pending approvals")


def _steps(api: httpx.Client, task_id: int) -> list[dict[str, Any]]:
    return api.get(f"/v1/tasks/{task_id}/steps").json()["steps"]


def test_approve_and_reject_over_the_api_resume_the_task_once(api: httpx.Client,
                                                               server: Any) -> None:
    yes = send(api, "review", {"doc": "hello"})
    no = send(api, "review", {"doc": "spam"})
    with python_worker(server.url, "people_app:reg", "--concurrency", "1"):
        row = _asking(api, yes)
        assert row["question"] == "Publish 'HELLO'?" and row["task_name"] == "review"
        assert row["deadline"] is not None  # timeout=600
        _asking(api, no)
        # Waiting holds no worker: both wait at once under a worker of concurrency 1.
        assert {task(api, yes)["status"], task(api, no)["status"]} == {"waiting"}
        approved = api.post(f"/v1/tasks/{yes}/approve", json={"comment": "ship it"})
        assert approved.status_code == 200, approved.text
        decision = approved.json()
        assert decision["approved"] is True and decision["decision"] == "approved"
        assert decision["by"] == "anonymous" and decision["comment"] == "ship it"
        assert decision["question"] == "Publish 'HELLO'?" and decision["at"]
        rejected = api.post(f"/v1/tasks/{no}/reject", json={"comment": "no"})
        assert rejected.status_code == 200 and rejected.json()["decision"] == "rejected"
        done = wait_status(api, yes)
        refused = wait_status(api, no)
    assert done["status"] == "succeeded"
    assert done["result"] == {"draft": "HELLO", "approved": True, "decision": "approved",
                              "by": "anonymous", "comment": "ship it"}
    assert refused["result"]["approved"] is False and refused["result"]["comment"] == "no"
    assert _pending(api) == []
    # The draft step ran once; the decision is a step of its own, with who and when.
    steps = {s["name"]: s for s in _steps(api, yes)}
    assert steps["draft"]["result"] == "HELLO"
    assert steps["approval"]["kind"] == "approval"
    assert steps["approval"]["result"]["value"]["by"] == "anonymous"

    # A second decision of the same approval: 409 already_decided, nothing changed.
    again = api.post(f"/v1/tasks/{yes}/reject", json={"comment": "too late"})
    assert again.status_code == 409 and again.json()["code"] == "already_decided"
    assert task(api, yes)["result"] == done["result"]
    assert _steps(api, yes) == list(steps.values())


def test_an_async_task_waits_for_its_approval_too(api: httpx.Client, server: Any) -> None:
    task_id = send(api, "areview", {"doc": "invoice"})
    with python_worker(server.url, "people_app:reg", "--concurrency", "1"):
        row = _asking(api, task_id)
        assert (row["question"], row["step"], row["deadline"]) == ("Send invoice?", "send", None)
        assert api.post(f"/v1/tasks/{task_id}/approve").status_code == 200
        assert wait_status(api, task_id)["result"] == {"approved": True, "at_is_time": True}


def test_deciding_what_was_never_asked_is_refused(api: httpx.Client) -> None:
    plain = send(api, "square", {"x": 2})
    response = api.post(f"/v1/tasks/{plain}/approve")
    assert response.status_code == 409
    assert response.json()["code"] == "not_waiting_for_approval"
    assert task(api, plain)["status"] == "queued"
    assert api.post("/v1/tasks/999999/approve").status_code == 404
    long = api.post(f"/v1/tasks/{plain}/approve", json={"comment": "x" * 10_001})
    assert long.status_code == 422
    assert api.post(f"/v1/tasks/{plain}/reject", json={"why": "typo"}).status_code == 422


def test_an_approval_that_timed_out_cannot_be_decided(api: httpx.Client, server: Any) -> None:
    task_id = send(api, "hurried_review")
    with python_worker(server.url, "people_app:reg", "--concurrency", "1"):
        assert wait_status(api, task_id, timeout=60)["result"] == "nobody answered"
    response = api.post(f"/v1/tasks/{task_id}/approve")
    assert response.status_code == 409
    assert response.json()["code"] == "not_waiting_for_approval"
    assert "timed out" in response.json()["message"]


def test_who_decided_is_the_tokens_name_and_viewers_may_only_look(make_server: Any) -> None:
    server = make_server(api_token=ADMIN)
    with httpx.Client(base_url=server.url, headers=bearer(ADMIN), timeout=30) as admin:
        alice = create(server.url, "alice", "admin")
        viewer = create(server.url, "watcher", "viewer")
        task_id = send(admin, "review", {"doc": "memo"})
        with python_worker(server.url, "people_app:reg", BRANCHWORK_API_TOKEN=ADMIN):
            _asking(admin, task_id)
            looked = httpx.get(f"{server.url}/v1/approvals", headers=bearer(viewer))
            assert looked.status_code == 200 and len(looked.json()["approvals"]) == 1
            denied = httpx.post(f"{server.url}/v1/tasks/{task_id}/approve",
                                headers=bearer(viewer))
            assert denied.status_code == 403
            assert task(admin, task_id)["status"] == "waiting"
            # In the studio a viewer sees the question but no buttons; an admin both.
            for token, buttons in ((viewer, False), (alice, True)):
                with httpx.Client(base_url=server.url, timeout=30) as browser_like:
                    assert studio_login(browser_like, token).status_code == 303
                    listing = browser_like.get("/studio/approvals").text
                    box = browser_like.get(f"/studio/partials/task/{task_id}/approval").text
                assert "Publish &#39;MEMO&#39;?" in listing and "Publish &#39;MEMO&#39;?" in box
                assert ('id="approve-button"' in box) is buttons
                assert (">Approve</button>" in listing) is buttons
            ok = httpx.post(f"{server.url}/v1/tasks/{task_id}/approve", headers=bearer(alice))
            assert ok.status_code == 200 and ok.json()["by"] == "alice"
            assert wait_status(admin, task_id)["result"]["by"] == "alice"


def test_the_cli_lists_approves_and_rejects(api: httpx.Client, server: Any) -> None:
    first = send(api, "review", {"doc": "one"})
    second = send(api, "review", {"doc": "two"})
    env = user_env(server.url)
    with python_worker(server.url, "people_app:reg", "--concurrency", "1"):
        _asking(api, first)
        _asking(api, second)
        listed = bw("approvals", "list", env=env)
        assert listed.returncode == 0, listed.stderr
        assert "Publish 'ONE'?" in listed.stdout and "Publish 'TWO'?" in listed.stdout
        as_json = bw("--json", "approvals", "list", env=env)
        assert {a["task_id"] for a in json.loads(as_json.stdout)} == {first, second}
        out = bw("approvals", "approve", str(first), "--comment", "fine by me", env=env)
        assert out.returncode == 0, out.stderr
        assert f"task {first}: approved by anonymous" in out.stdout
        out = bw("approvals", "reject", str(second), "-m", "no", env=env)
        assert out.returncode == 0 and "rejected" in out.stdout
        twice = bw("approvals", "approve", str(first), env=env)
        assert twice.returncode == 1 and "already decided" in twice.stderr
        assert wait_status(api, first)["result"]["comment"] == "fine by me"
        assert wait_status(api, second)["result"]["approved"] is False
    assert "no approvals pending" in bw("approvals", "list", env=env).stdout


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium at /usr/bin")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--headless", "--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def _arm_shown(page: Any, selector: str) -> None:
    """Catch the text ``selector`` shows when it appears: an action's message lives until
    the region's next live refetch, which may come before Playwright next looks."""
    page.evaluate("""(selector) => { window.bwShown = new Promise((done, fail) => {
        const observer = new MutationObserver(() => {
            const found = document.querySelector(selector);
            if (found) { observer.disconnect(); done(found.innerText); }
        });
        observer.observe(document.body, {childList: true, subtree: true});
        setTimeout(() => fail(new Error(selector + " was never shown")), 30000);
    }); }""", selector)


def _shown(page: Any) -> str:
    return page.evaluate("() => window.bwShown")


def test_an_approval_clicked_in_the_studio_resumes_the_task(api: httpx.Client, server: Any,
                                                            browser: Any) -> None:
    on_page = send(api, "review", {"doc": "page"})
    on_list = send(api, "review", {"doc": "list"})
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        with python_worker(server.url, "people_app:reg", "--concurrency", "1"):
            _asking(api, on_page)
            _asking(api, on_list)
            # The task page: the question, a comment, Approve.
            page.goto(f"{server.url}/studio/tasks/{on_page}")
            page.wait_for_selector("#approval-question")
            assert page.inner_text("#approval-question") == "Publish 'PAGE'?"
            page.fill("#approval-comment", "looks good")
            _arm_shown(page, "#approval-message")
            page.click("#approve-button")
            assert "Approved" in _shown(page)
            done = wait_status(api, on_page)
            assert done["status"] == "succeeded"
            assert done["result"]["approved"] is True
            assert done["result"]["comment"] == "looks good"
            # The decision shows on the task page once the task has resumed.
            page.reload()
            page.wait_for_selector("#approval-decisions")
            assert "looks good" in page.inner_text("#approval-decisions")
            # The Approvals page, from the navigation: Reject from the list.
            page.click("nav.nav-row a[href='/studio/approvals']")
            page.wait_for_url("**/studio/approvals")
            page.wait_for_selector(f"#approval-{on_list}")
            assert "Publish 'LIST'?" in page.inner_text(f"#approval-{on_list}")
            row = page.locator(f"#approval-{on_list}")
            row.locator("input[name=comment]").fill("not this one")
            _arm_shown(page, "#approvals-message")
            row.locator("button", has_text="Reject").click()
            assert "Rejected" in _shown(page)
            rejected = wait_status(api, on_list)
            assert rejected["result"]["approved"] is False
            assert rejected["result"]["comment"] == "not this one"
            # Once decided, the task page offers no second decision.
            page.goto(f"{server.url}/studio/tasks/{on_page}")
            page.wait_for_selector("#approval-decisions")
            assert page.locator("#approve-button").count() == 0
    finally:
        context.close()
    assert errors == [], errors


def _hold_first(page: Any, pattern: str) -> list[Any]:
    """Hold the first request matching ``pattern`` (the test releases it); let others by."""
    held: list[Any] = []

    def handle(route: Any) -> None:
        if held:
            route.continue_()
        else:
            held.append(route)

    page.route(pattern, handle)
    return held


def _until_held(page: Any, held: list[Any]) -> None:
    for _ in range(600):  # the browser's requests are served while Playwright waits
        if held:
            return
        page.wait_for_timeout(50)
    raise AssertionError("the request was never sent")


def _refetch_on_its_way(page: Any, task_id: int) -> list[Any]:
    """Start a live refetch of the approval box (what a change signal does) and hold it in
    the browser. htmx ignores the signal while the box is still settling in or has a
    refetch of its own on its way, so it is given again until one is held."""
    held = _hold_first(page, f"**/studio/partials/task/{task_id}/approval")
    for _ in range(60):
        page.evaluate("htmx.trigger('#task-approval', 'live')")
        for _ in range(20):
            if held:
                return held
            page.wait_for_timeout(50)
    raise AssertionError("no refetch of the approval box was sent")


def _release_refetch(page: Any, held: list[Any]) -> None:
    """Answer the held refetch of the approval box and wait until htmx has handled it (its
    swap, or not, runs in the same task as htmx:beforeOnLoad, before the promise's reaction;
    later events fire on the element the swap may have removed, and reach no listener)."""
    page.evaluate("""() => { window.bwAnswered = new Promise((done) => {
        document.addEventListener("htmx:beforeOnLoad", (e) => {
            if (e.detail.elt.id === "task-approval") { done(); }
        }); }); }""")
    held[0].continue_()
    page.evaluate("() => window.bwAnswered")


def test_a_live_refetch_on_its_way_never_overwrites_a_person_at_work(
        api: httpx.Client, server: Any, browser: Any) -> None:
    """A change signal refetches the approval box; when its answer comes after the person
    typed a comment, or after they clicked Approve, it must not replace what they did.
    The refetch is held in the browser to make that order certain."""
    typed = send(api, "review", {"doc": "typed"})
    clicked = send(api, "review", {"doc": "clicked"})
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        with python_worker(server.url, "people_app:reg", "--concurrency", "1"):
            _asking(api, typed)
            _asking(api, clicked)
            # A refetch on its way while the comment is typed: the comment stays and is sent.
            page.goto(f"{server.url}/studio/tasks/{typed}")
            page.wait_for_selector("#approval-question")
            held = _refetch_on_its_way(page, typed)
            page.fill("#approval-comment", "typed while it refreshed")
            _release_refetch(page, held)
            assert page.input_value("#approval-comment") == "typed while it refreshed"
            _arm_shown(page, "#approval-message")
            page.click("#approve-button")
            assert "Approved" in _shown(page)
            assert wait_status(api, typed)["result"]["comment"] == "typed while it refreshed"
            # A refetch answered after Approve was clicked (its answer still on its way):
            # the decision's answer is what the box shows.
            page.goto(f"{server.url}/studio/tasks/{clicked}")
            page.wait_for_selector("#approval-question")
            held = _refetch_on_its_way(page, clicked)
            decided = _hold_first(page, f"**/studio/tasks/{clicked}/approve")
            _arm_shown(page, "#approval-message")
            page.click("#approve-button")
            _until_held(page, decided)
            _release_refetch(page, held)
            decided[0].continue_()
            assert "Approved" in _shown(page)
            assert wait_status(api, clicked)["result"]["approved"] is True
    finally:
        context.close()
    assert errors == [], errors


def test_the_pipeline_of_the_docs_asks_a_person_only_when_needed(api: httpx.Client,
                                                                  server: Any) -> None:
    def calls(kind: str) -> int:
        r = api.get(f"/v1/kv/model-calls:{kind}")
        return int(r.json()["value"]) if r.status_code == 200 else 0

    calm = send(api, "moderate", {"text": "thanks for the quick delivery"})
    risky = send(api, "moderate", {"text": "I want a refund now"})
    with python_worker(server.url, "people_app:reg", "--concurrency", "1"):
        assert wait_status(api, calm)["result"] == {
            "published": True, "reviewed": False, "text": "THANKS FOR THE QUICK DELIVERY"}
        row = _asking(api, risky)
        assert row["question"].startswith("Risk 0.90. Publish this summary?")
        assert "I WANT A REFUND NOW" in row["question"]
        assert api.post(f"/v1/tasks/{risky}/approve").status_code == 200
        assert wait_status(api, risky)["result"] == {
            "published": True, "reviewed": True, "by": "anonymous",
            "text": "I WANT A REFUND NOW"}
    # Two runs of the risky task, yet each model call ran once per task: the replay read
    # the stored steps.
    assert (calls("Summarise"), calls("Rate the risk of"), calls("Polish")) == (2, 2, 1)

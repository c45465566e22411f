"""The API describes itself: typed answers, short operation ids, a description per operation,
and docs pages that work without internet and open with the studio's login.

- Every operation of ``/openapi.json`` has a short snake_case id, a summary, a description
  and, for JSON answers, a success schema that says what the answer holds.
- Real answers (a tour of every route, ``openapi_scenario.py``) match the schema their
  operation documents, with no key the schema does not declare: the models document the
  answers without filtering them (``app/jsonutil.py``), so this is where they are held true.
- ``/docs`` and ``/redoc`` render in Chromium with every other host blocked, with no console
  error; with a token set they send a browser to the studio's login and open after it.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import decimal
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema_rs
import pytest

from openapi_scenario import tour
from tokens_helpers import ADMIN, bearer

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
OPERATION_ID = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
MAX_OPERATION_ID = 40
METHODS = ("get", "put", "post", "delete", "patch")
SHOTS = Path(os.environ.get("BRANCHWORK_SCREENSHOTS", "/tmp/branchwork-studio-shots"))


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield method.upper(), path, op


def success_schema(op: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The JSON schema of the operation's 200/201 answer; None for a non-JSON answer."""
    for status in ("200", "201"):
        content = op["responses"].get(status, {}).get("content", {})
        if "application/json" in content:
            return status, content["application/json"].get("schema", {})
    return None


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def says_nothing(doc: dict[str, Any], schema: dict[str, Any]) -> bool:
    """A bare ``object`` (or no schema at all): the answer's keys are not documented."""
    schema = resolve(doc, schema)
    if not schema:
        return True
    return schema.get("type") == "object" and not schema.get("properties")


def test_every_operation_is_typed_named_and_described(server: Any) -> None:
    doc = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    problems: list[str] = []
    ids: dict[str, str] = {}
    for method, path, op in operations(doc):
        where = f"{method} {path}"
        op_id = op.get("operationId", "")
        if not OPERATION_ID.match(op_id) or len(op_id) > MAX_OPERATION_ID:
            problems.append(f"{where}: operation id {op_id!r} is not short snake_case")
        if op_id in ids:
            problems.append(f"{where}: operation id {op_id!r} also names {ids[op_id]}")
        ids[op_id] = where
        if not op.get("summary", "").strip():
            problems.append(f"{where}: no summary")
        if not op.get("description", "").strip():
            problems.append(f"{where}: no description (the route function's docstring)")
        answer = success_schema(op)
        if answer is None:
            if not any(s.startswith("2") for s in op["responses"]):
                problems.append(f"{where}: no success response")
        elif says_nothing(doc, answer[1]):
            problems.append(f"{where}: {answer[0]} answer is a bare object; declare "
                            "response_model= (app/api/answers.py)")
    assert problems == [], "\n".join(problems)
    assert len(ids) >= 55, sorted(ids)  # every route of the API is in the document
    assert {"send_task", "claim_tasks", "get_task", "report_outcomes"} <= set(ids)


def _closed(schemas: dict[str, Any]) -> dict[str, Any]:
    """The document's schemas with every object that lists its keys closed to others (an
    ``OpenAnswer`` says ``additionalProperties: true`` and stays open)."""
    out = copy.deepcopy(schemas)

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(out)
    return out


def _doc_path(route: str) -> str:
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", route)


def test_real_answers_match_the_documented_schemas(make_server: Any) -> None:
    server = make_server(api_token=ADMIN)
    with httpx.Client(base_url=server.url, headers=bearer(ADMIN), timeout=20) as api:
        doc = api.get("/openapi.json").json()
        answers = tour(api)
    components = _closed(doc["components"]["schemas"])
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    for a in answers:
        op = doc["paths"][_doc_path(a.route)][a.method.lower()]
        content = op["responses"][str(a.status)]["content"]["application/json"]
        schema = {**content["schema"], "components": {"schemas": components}}
        errors = [f"{e.instance_path}: {e.message}"
                  for e in jsonschema_rs.Draft202012Validator(schema).iter_errors(a.body)]
        if errors:
            problems.append(f"{a.method} {a.route} {op['operationId']}: " + "; ".join(
                errors[:5]) + f"\n    answer: {json.dumps(a.body)[:300]}")
        seen.add((a.method, _doc_path(a.route)))
    assert problems == [], "\n".join(problems)
    # The tour reaches every operation with a JSON answer: a new route needs a call in
    # tests/openapi_scenario.py, or its answers would go unchecked.
    json_operations = {(m, p) for m, p, op in operations(doc) if success_schema(op)}
    assert sorted(json_operations - seen) == [], "add these to tests/openapi_scenario.py"


def test_an_undeclared_key_is_caught() -> None:
    """The check above fails on a key the model does not declare (so it is no formality)."""
    schemas = _closed({"KVValueOut": {"type": "object", "properties": {
        "key": {"type": "string"}, "value": {"type": "string"}}, "required": ["key", "value"]}})
    schema = {"$ref": "#/components/schemas/KVValueOut", "components": {"schemas": schemas}}
    validator = jsonschema_rs.Draft202012Validator(schema)
    assert validator.is_valid({"key": "a", "value": "1"})
    assert not validator.is_valid({"key": "a", "value": "1", "extra": True})


def test_a_response_model_neither_filters_nor_reencodes_an_answer() -> None:
    """A route's ``response_model`` documents its answer: a key the model lacks still goes
    out, and the bytes are those FastAPI sent for the same dict before the model was declared
    (pydantic's JSON mode: ``...Z`` datetimes, UUID and Decimal as strings)."""
    from fastapi import APIRouter, FastAPI
    from pydantic import BaseModel

    from branchwork.app.jsonutil import JsonResponse, StrictJsonRoute

    class Small(BaseModel):
        id: int

    answer = {"id": 1, "undeclared": [1.5, None],
              "at": datetime.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=datetime.UTC),
              "token": uuid.UUID(int=7), "amount": decimal.Decimal("2.50")}
    before, after = APIRouter(), APIRouter(route_class=StrictJsonRoute)

    @before.get("/before")
    async def untyped() -> dict[str, Any]:
        return answer

    @after.get("/after", response_model=Small)
    async def typed() -> dict[str, Any]:
        return answer

    app = FastAPI(default_response_class=JsonResponse)
    app.include_router(before)
    app.include_router(after)

    async def get_both() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://test") as client:
            return await client.get("/before"), await client.get("/after")

    old, new = asyncio.run(get_both())
    assert new.status_code == old.status_code == 200
    assert new.content == old.content
    assert new.json()["undeclared"] == [1.5, None]
    assert new.json()["at"] == "2026-01-02T03:04:05.000006Z"
    assert app.openapi()["paths"]["/after"]["get"]["responses"]["200"]["content"][
        "application/json"]["schema"] == {"$ref": "#/components/schemas/Small"}


# -- the docs pages in a browser ----------------------------------------------------------------

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no Chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


class OfflineTab:
    """A browser tab that reaches only the server under test (every other host is refused,
    as without internet) and keeps the console errors and the refused requests."""

    def __init__(self, browser: Any, base: str) -> None:
        self.base = base
        self.context = browser.new_context(viewport={"width": 1360, "height": 900})
        self.errors: list[str] = []
        self.refused: list[str] = []
        own = urlsplit(base).netloc
        self.context.route("**/*", lambda route: self._only_own(route, own))
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error"
                     else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _only_own(self, route: Any, own: str) -> None:
        url = route.request.url
        if url.startswith(("data:", "blob:")) or urlsplit(url).netloc == own:
            route.continue_()
        else:
            self.refused.append(url)
            route.abort("internetdisconnected")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def offline(browser: Any) -> Iterator[Any]:
    tabs: list[OfflineTab] = []

    def open_tab(base: str) -> OfflineTab:
        tabs.append(OfflineTab(browser, base))
        return tabs[-1]

    yield open_tab
    for tab in tabs:
        tab.close()


def _operation_count(base: str, headers: dict[str, str]) -> int:
    doc = httpx.get(f"{base}/openapi.json", headers=headers, timeout=10).json()
    return sum(1 for _ in operations(doc))


def _check_pages(tab: OfflineTab, count: int) -> None:
    page = tab.page
    page.goto(tab.base + "/docs")
    page.wait_for_selector(".opblock", timeout=20_000)
    assert page.locator(".opblock").count() == count
    assert page.locator(".opblock-summary-path", has_text="/v1/claim").count() >= 1
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "api-docs.png"))
    page.goto(tab.base + "/redoc")
    page.wait_for_selector("[data-section-id^='operation/']", state="attached",
                           timeout=30_000)
    assert page.locator("[data-section-id^='operation/']").count() == count
    assert page.get_by_text("Lease ready tasks, waiting up to wait_seconds").count() >= 1
    page.screenshot(path=str(SHOTS / "api-redoc.png"))


@needs_chromium
def test_docs_pages_render_without_internet(server: Any, offline: Any) -> None:
    tab = offline(server.url)
    _check_pages(tab, _operation_count(server.url, {}))
    assert tab.refused == [], tab.refused  # nothing was even asked of another host
    assert tab.errors == [], tab.errors


@needs_chromium
def test_docs_open_with_the_studio_login_and_refuse_without(make_server: Any,
                                                          offline: Any) -> None:
    server = make_server(api_token=ADMIN)
    # Without a token or a session: the pages go to the studio's login, the document is 401.
    r = httpx.get(f"{server.url}/docs", timeout=10)
    assert r.status_code == 303 and r.headers["location"] == "/studio/login?next=/docs"
    r = httpx.get(f"{server.url}/redoc", timeout=10)
    assert r.status_code == 303 and r.headers["location"] == "/studio/login?next=/redoc"
    assert httpx.get(f"{server.url}/openapi.json", timeout=10).status_code == 401
    assert httpx.get(f"{server.url}/docs", headers=bearer("wrong"), timeout=10).status_code \
        == 401
    # A bearer token (a script) still opens everything.
    assert httpx.get(f"{server.url}/openapi.json", headers=bearer(ADMIN),
                     timeout=10).status_code == 200

    tab = offline(server.url)
    page = tab.page
    page.goto(server.url + "/docs")
    assert urlsplit(page.url).path == "/studio/login"
    page.fill("#token", ADMIN)
    page.locator("form[action='/studio/login'] button, form[action='/studio/login'] "
                 "[type=submit]").first.click()
    page.wait_for_url(server.url + "/docs", timeout=10_000)
    # The logged-in browser opens both pages and fetches the document itself.
    _check_pages(tab, _operation_count(server.url, bearer(ADMIN)))
    status = page.evaluate("fetch('/openapi.json').then(r => r.status)")
    assert status == 200
    assert tab.refused == [] and tab.errors == [], (tab.refused, tab.errors)
    # The session opens only the docs: the API itself still wants a bearer token.
    assert page.evaluate("fetch('/v1/queues').then(r => r.status)") == 401

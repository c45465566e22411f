"""Every route of the app, called by every role: refused exactly where its rule says.

The routes come from the running app (``app.routes``), not from a list kept here, so a
route added later without a rule in ``app/access.py`` fails ``test_every_route_has_a_rule``,
and one whose rule is wrong fails the matrix.
"""

from __future__ import annotations

import re

import httpx
from fastapi.routing import iter_route_contexts

from branchwork.app.access import RULES, Public, rule_of
from tokens_helpers import ADMIN, bearer, create, studio_headers, studio_login

SAMPLES = {"task_id": "1", "run_id": "1", "name": "emails.x", "key": "k",
           "worker_id": "w", "action": "pause"}
SKIP = {("POST", "/studio/login")}  # the login itself: test_tokens.py covers it


def routes(app) -> list[tuple[str, str]]:
    out = []
    for ctx in iter_route_contexts(app.routes):
        for method in sorted(ctx.methods or ()):
            if method != "HEAD":
                out.append((method, ctx.path))
    return sorted(set(out))


def concrete(path: str) -> str:
    if path == "/studio/static/{name}":
        return "/studio/static/studio.css"
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: SAMPLES[m.group(1)], path)


def call(client: httpx.Client, method: str, path: str,
         headers: dict[str, str]) -> httpx.Response:
    url = concrete(path)
    params = {"timeout_seconds": "0"} if path.endswith("/wait") else None
    body = {} if method in ("POST", "PUT") else None
    if path == "/studio/events":
        with client.stream(method, url, headers=headers) as r:
            return r
    return client.request(method, url, headers=headers, params=params, json=body)


def refused(r: httpx.Response) -> bool:
    """The role-level refusals: no or bad token (401), a rule saying no (403 forbidden), or
    the studio sending the browser to its login form."""
    if r.status_code == 401:
        return True
    if r.status_code == 303 and r.headers.get("location", "").startswith("/studio/login"):
        return True
    if r.status_code == 403:
        try:
            return r.json().get("code") == "forbidden"
        except ValueError:
            return False
    return False


def test_every_route_has_a_rule(server) -> None:
    missing = [(m, p) for m, p in routes(server.app)
               if (m, p) not in RULES and not (m == "GET" and p.startswith("/studio"))]
    assert missing == [], f"routes without a rule in app/access.py RULES: {missing}"


def test_each_role_is_refused_on_every_route_outside_its_rule(make_server) -> None:
    server = make_server(api_token=ADMIN)
    tokens = {
        "admin": ADMIN,
        "worker": create(server.url, "w1", "worker", queues=["emails.*"]),
        "sender": create(server.url, "s1", "sender", names=["emails.*"]),
        "viewer": create(server.url, "v1", "viewer"),
        "stored-admin": create(server.url, "a1", "admin"),
    }
    api_routes = [(m, p) for m, p in routes(server.app)
                  if not p.startswith("/studio") and (m, p) not in SKIP]
    wrong: list[str] = []
    with httpx.Client(base_url=server.url, timeout=20) as c:
        for method, path in api_routes:
            rule = rule_of(method, path)
            r = call(c, method, path, {})
            if refused(r) == isinstance(rule, Public):
                wrong.append(f"no token: {method} {path} -> {r.status_code}")
            for who, token in tokens.items():
                role = "admin" if who.endswith("admin") else who
                expected_refusal = not (isinstance(rule, Public) or role == "admin"
                                        or (rule is not None and role in rule))
                r = call(c, method, path, bearer(token))
                if refused(r) != expected_refusal:
                    wrong.append(f"{who}: {method} {path} -> {r.status_code} {r.text[:120]}")
                if r.status_code >= 500:
                    wrong.append(f"{who}: {method} {path} -> {r.status_code}")
    assert wrong == []
    assert len(api_routes) > 50  # the walk saw the app


def test_studio_routes_by_session_role(make_server) -> None:
    """The studio authenticates by session: admin and viewer tokens log in (a viewer's
    studio refuses every action), worker and sender tokens cannot."""
    server = make_server(api_token=ADMIN)
    viewer = create(server.url, "v1", "viewer")
    worker = create(server.url, "w1", "worker", queues=["*"])
    sender = create(server.url, "s1", "sender")
    studio_routes = [(m, p) for m, p in routes(server.app)
                     if p.startswith("/studio") and (m, p) not in SKIP]
    # Logging out ends the session: last.
    studio_routes.sort(key=lambda route: route == ("POST", "/studio/logout"))
    wrong: list[str] = []
    for who, token in (("admin", ADMIN), ("viewer", viewer), ("worker", worker),
                       ("sender", sender), ("nobody", None)):
        with httpx.Client(base_url=server.url, timeout=20) as c:
            if token:
                login = studio_login(c, token)
                assert login.status_code == (303 if who in ("admin", "viewer") else 403), who
            headers = studio_headers(c)
            for method, path in studio_routes:
                rule = rule_of(method, path)
                if isinstance(rule, Public):
                    expected_refusal = False
                elif who in ("worker", "sender", "nobody"):
                    expected_refusal = True
                else:
                    expected_refusal = not (who == "admin" or (rule is not None and who in rule))
                r = call(c, method, path, headers)
                if path == "/studio/logout":  # answers with the login page either way
                    ended = "bw_session=" in r.headers.get("set-cookie", "")
                    if ended == expected_refusal:
                        wrong.append(f"{who}: {method} {path} -> {r.status_code}")
                    continue
                if refused(r) != expected_refusal or r.status_code >= 500:
                    wrong.append(f"{who}: {method} {path} -> {r.status_code}")
    assert wrong == []


def test_the_rules_say_what_each_role_is_for(server) -> None:
    """The policy itself, written out: what each role may change (every other write is
    admin's), and that a viewer reads everything."""
    all_routes = [r for r in routes(server.app) if r not in SKIP]
    writes = {role: sorted(p for m, p in all_routes if m != "GET"
                           and not isinstance(rule_of(m, p), Public)
                           and role in (rule_of(m, p) or ()))
              for role in ("worker", "sender", "viewer")}
    assert writes["viewer"] == ["/studio/logout"]
    assert writes["sender"] == sorted([
        "/v1/tasks", "/v1/tasks/batch", "/v1/workflows/{name}/runs",
        # durable tasks: events and signals resume waiting tasks (docs/durable.md)
        "/v1/events", "/v1/tasks/{task_id}/signal"])
    assert writes["worker"] == sorted([
        "/v1/events", "/v1/tasks/{task_id}/signal", "/v1/tasks/{task_id}/steps",
        "/v1/claim", "/v1/heartbeat", "/v1/tasks/report", "/v1/tasks/release",
        "/v1/tasks/{task_id}/complete", "/v1/tasks/{task_id}/fail", "/v1/workers/register",
        "/v1/workers/{worker_id}/stop", "/v1/tasks", "/v1/tasks/batch",
        "/v1/queues/{name}", "/v1/workflows/{name}", "/v1/schedules/register",
        "/v1/workflow-runs/{run_id}/directives",
        "/v1/workflow-runs/{run_id}/channel/{key:path}",
        "/v1/workflow-runs/{run_id}/channel/{key:path}/increment", "/v1/kv/{key:path}",
        "/v1/kv/{key:path}", "/v1/kv/{key:path}/set-if-absent", "/v1/kv/{key:path}/increment",
        # rate limits are declared in code, like queue limits (docs/flow-control.md)
        "/v1/rate-limits/{name}", "/v1/queues/{name}/rate-limit",
        # a running attempt's progress and streamed chunks, fenced by its lease (streaming.md)
        "/v1/tasks/{task_id}/stream"])
    unreadable = [p for m, p in all_routes if m == "GET" and not isinstance(
        rule_of(m, p), Public) and "viewer" not in (rule_of(m, p) or ())]
    assert unreadable == ["/v1/tokens"]  # token names and scopes: admin's business

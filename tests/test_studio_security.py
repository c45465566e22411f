"""The studio's own guard: login with the API token, signed session cookie, CSRF checks."""

from __future__ import annotations

import httpx

TOKEN = "s3cret-token"


def _login(client: httpx.Client, token: str = TOKEN) -> httpx.Response:
    return client.post("/studio/login", data={"token": token, "next": "/studio/tasks"},
                       headers={"origin": str(client.base_url).rstrip("/"),
                                "sec-fetch-site": "same-origin"})


def test_token_configured_means_nothing_shown_before_login(make_server) -> None:
    server = make_server(api_token=TOKEN)
    with httpx.Client(base_url=server.url, timeout=10) as c:
        for path in ("/studio", "/studio/tasks", "/studio/tasks/1", "/studio/kv",
                     "/studio/events", "/studio/partials/overview"):
            r = c.get(path)
            assert r.status_code == 303, path
            assert r.headers["location"].startswith("/studio/login"), path
        r = c.get("/studio/partials/tasks", headers={"hx-request": "true"})
        assert r.status_code == 401 and r.headers["hx-redirect"].startswith("/studio/login")
        assert c.get("/studio/login").status_code == 200
        assert c.get("/studio/static/studio.css").status_code == 200
        assert c.get("/v1/tasks").status_code == 401  # the API keeps its bearer token
        assert c.get("/metrics").status_code == 401


def test_login_sets_a_strict_httponly_signed_session(make_server) -> None:
    server = make_server(api_token=TOKEN)
    with httpx.Client(base_url=server.url, timeout=10) as c:
        bad = _login(c, "wrong")
        assert bad.status_code == 401 and "not valid" in bad.text
        assert "bw_session" not in c.cookies
        ok = _login(c)
        assert ok.status_code == 303 and ok.headers["location"] == "/studio/tasks"
        cookie = ok.headers["set-cookie"]
        assert "bw_session=" in cookie and "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
        assert c.get("/studio/tasks").status_code == 200
        # A forged or altered session is refused.
        value = c.cookies["bw_session"]
        # (Path=/: the session also opens the API's docs pages, app/security.py.)
        c.cookies.set("bw_session", value[:-1] + ("0" if value[-1] != "0" else "1"),
                      path="/")
        assert c.get("/studio/tasks").status_code == 303
    # A token from another server (another key) does not open this one.
    other = make_server(api_token="another-token")
    with httpx.Client(base_url=other.url, timeout=10) as c2:
        c2.cookies.set("bw_session", value, path="/")
        assert c2.get("/studio").status_code == 303


def test_cross_site_login_is_refused(make_server) -> None:
    server = make_server(api_token=TOKEN)
    with httpx.Client(base_url=server.url, timeout=10) as c:
        r = c.post("/studio/login", data={"token": TOKEN},
                   headers={"origin": "https://evil.example", "sec-fetch-site": "cross-site"})
        assert r.status_code == 403
        assert "bw_session" not in r.headers.get("set-cookie", "")


def _csrf(client: httpx.Client) -> str:
    client.get("/studio")
    return client.cookies["bw_csrf"]


def test_actions_need_the_csrf_token_and_same_origin(server, api: httpx.Client) -> None:
    tid = api.post("/v1/tasks", json={"name": "keep"}).json()["id"]
    with httpx.Client(base_url=server.url, timeout=10) as c:
        token = _csrf(c)
        origin = server.url
        for headers in ({},  # no token at all
                        {"x-csrf-token": "x" * 43},  # wrong token
                        {"x-csrf-token": token, "origin": "https://evil.example"},
                        {"x-csrf-token": token, "sec-fetch-site": "cross-site"}):
            r = c.post(f"/studio/tasks/{tid}/cancel", headers=headers)
            assert r.status_code == 403, headers
            assert r.json()["code"] == "csrf_failed"
        assert api.get(f"/v1/tasks/{tid}").json()["status"] == "queued"
        # The token from another browser's cookie does not work with this one's.
        with httpx.Client(base_url=server.url, timeout=10) as other:
            other_token = _csrf(other)
        assert c.post(f"/studio/tasks/{tid}/cancel",
                      headers={"x-csrf-token": other_token}).status_code == 403
        r = c.post(f"/studio/tasks/{tid}/cancel", headers={
            "x-csrf-token": token, "origin": origin, "sec-fetch-site": "same-origin",
            "hx-request": "true"})
        assert r.status_code == 200 and "Cancelled." in r.text
        assert api.get(f"/v1/tasks/{tid}").json()["status"] == "cancelled"
        # A plain form post (no JavaScript) works too, and redirects back to the task.
        r = c.post(f"/studio/tasks/{tid}/retry", data={"csrf": token},
                   headers={"origin": origin})
        assert r.status_code == 303 and r.headers["location"] == f"/studio/tasks/{tid}"
        assert api.get(f"/v1/tasks/{tid}").json()["status"] == "queued"
        assert c.post("/studio/tasks/999999/retry",
                      headers={"x-csrf-token": token}).status_code == 404


def test_pages_send_security_headers(api: httpx.Client) -> None:
    r = api.get("/studio")
    assert r.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "unsafe-inline" not in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"


def test_bad_input_gets_a_clear_4xx(server, api: httpx.Client) -> None:
    tid = api.post("/v1/tasks", json={"name": "keep"}).json()["id"]
    with httpx.Client(base_url=server.url, timeout=10) as c:
        token = _csrf(c)
        form = {"content-type": "application/x-www-form-urlencoded"}
        r = c.post(f"/studio/tasks/{tid}/cancel", content=b"csrf=\xff\xfe", headers=form)
        assert r.status_code == 400 and r.json()["code"] == "bad_form"
        r = c.post(f"/studio/tasks/{tid}/cancel", content=b"x=" + b"a" * 70000, headers=form)
        assert r.status_code == 413
        assert c.post("/studio/tasks/0/cancel",
                      headers={"x-csrf-token": token}).status_code == 422
        assert c.post(f"/studio/tasks/{2**63}/retry",
                      headers={"x-csrf-token": token}).status_code == 422
        bad_search = c.get("/studio/tasks", params={"q": "abc"})  # a note, not a JSON 422
        assert bad_search.status_code == 200 and "is not a task id" in bad_search.text
        assert c.get("/studio/tasks", params={"name": "x\x00"}).status_code == 400
        assert c.get("/studio/partials/tree/1", params={"open": "1," * 3000}).status_code == 422
    assert api.get(f"/v1/tasks/{tid}").json()["status"] == "queued"

"""Shared by the token tests: create tokens over the API, log in to the studio with one."""

from __future__ import annotations

import httpx

ADMIN = "admin-secret-token"


def bearer(token: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"} if token else {}


def create(url: str, name: str, role: str, admin: str = ADMIN, **scopes: list[str]) -> str:
    r = httpx.post(f"{url}/v1/tokens", json={"name": name, "role": role, **scopes},
                   headers=bearer(admin), timeout=10)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == name and body["role"] == role and "secret_sha256" not in body
    return body["token"]


def studio_login(client: httpx.Client, token: str) -> httpx.Response:
    origin = str(client.base_url).rstrip("/")
    return client.post("/studio/login", data={"token": token, "next": "/studio"},
                       headers={"origin": origin, "sec-fetch-site": "same-origin"})


def studio_headers(client: httpx.Client) -> dict[str, str]:
    """What a studio page's own POST carries: the CSRF token and same-origin headers."""
    client.get("/studio")
    return {"x-csrf-token": client.cookies.get("bw_csrf", ""), "sec-fetch-site": "same-origin",
            "origin": str(client.base_url).rstrip("/")}

"""The OpenAPI document and its pages (docs/api.md, "Reading the API").

- The error body the server really sends: FastAPI documents a ``422 HTTPValidationError`` of
  its own shape; every error of this API is ``{"code", "message", "details"}``
  (:mod:`.errors`), with 4xx codes beyond 422. Clients generated from the document, and
  schema-driven fuzzers, must see that shape.
- Short operation ids: the route function's name (``send_task``, ``claim_tasks``), so a
  generated client has ``send_task.sync(...)``, not ``send_task_v1_tasks_post``.
- The bearer scheme, so Swagger UI's "Authorize" and generated clients send the token.
- ``/docs`` and ``/redoc`` served with Swagger UI's and ReDoc's files from the
  ``fastapi-offline`` package (no CDN: they work without internet), opened with a bearer
  token or the studio's session (``app/security.py``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from starlette.responses import HTMLResponse, Response

from . import access

OPENAPI_URL = "/openapi.json"
DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
# Swagger UI's and ReDoc's files, as the package ships them (ReDoc's script: see
# ``redoc_script``). Nothing secret: they need no token.
DOCS_STATIC_URL = "/docs/static"
DOCS_STATIC_DIR = Path(fastapi_offline.__file__).parent / "static"
REDOC_SCRIPT_URL = "/docs/redoc.js"
DOCS_ASSETS = (DOCS_STATIC_URL + "/", REDOC_SCRIPT_URL)
REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
# The pages a browser opens; without a token or a session they send it to the studio's login.
DOC_PAGES = (DOCS_URL, REDOC_URL, OAUTH2_REDIRECT_URL)
BEARER = "bearer"
# The groups of the docs pages, in the order a newcomer reads them (a tag not listed here
# still shows, after these).
TAGS: list[dict[str, str]] = [
    {"name": "tasks", "description": "Send, read, list, cancel and retry tasks."},
    {"name": "workers", "description": "The worker protocol: register, claim, heartbeat, "
                                       "report, release (docs/protocol.md)."},
    {"name": "queues", "description": "Queue settings, counts and throughput."},
    {"name": "trees", "description": "Tasks that send tasks: whole trees (docs/trees.md)."},
    {"name": "workflows", "description": "DAG workflows and their runs (docs/workflows.md)."},
    {"name": "durable", "description": "Steps, events and signals of durable tasks "
                                       "(docs/durable.md)."},
    {"name": "approvals", "description": "Tasks waiting for a person's decision."},
    {"name": "streams", "description": "A running task's streamed output and progress."},
    {"name": "flow control", "description": "Named rate limits (docs/flow-control.md)."},
    {"name": "schedules", "description": "Cron schedules and the leader lease (docs/cron.md)."},
    {"name": "operations", "description": "Bulk cancel, retry and delete; re-runs; pruning "
                                          "(docs/operations.md)."},
    {"name": "kv", "description": "A key-value store for task code."},
    {"name": "tokens", "description": "Access tokens (admin only)."},
    {"name": "health", "description": "Whether this replica reaches its database."},
    {"name": "metrics", "description": "Prometheus metrics (docs/metrics.md)."},
]

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "description": "Every 4xx and 5xx body; docs/api.md lists the codes.",
    "properties": {
        "code": {"type": "string", "description": "stable, machine-readable"},
        "message": {"type": "string", "description": "for people"},
        "details": {"description": "code-specific, or null"},
    },
    "required": ["code", "message", "details"],
}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_FASTAPI_ONLY = ("HTTPValidationError", "ValidationError")


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR_REF}}}


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Point every operation's error responses at the one error body."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = _error_response("Validation error")
            responses.setdefault("4XX", _error_response("Refused; nothing changed"))
            responses.setdefault("5XX", _error_response("Database unavailable (503), or a bug"))
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_ONLY:
        components.pop(name, None)
    components["Error"] = ERROR_SCHEMA
    return schema


def operation_id(route: APIRoute) -> str:
    """The route function's name: unique across the API (tests/test_openapi.py checks)."""
    return route.name


@functools.cache
def redoc_script() -> bytes:
    """The package's ReDoc, its one request to another host (the logo of its "API docs by
    Redocly" link) pointed at a file of this server: offline it would fail, logging an error
    in the browser's console."""
    script = (DOCS_STATIC_DIR / "redoc.standalone.js").read_bytes()
    return script.replace(REDOC_LOGO, f"{DOCS_STATIC_URL}/favicon.png".encode())


def offline_app(**kwargs: Any) -> FastAPI:
    """A FastAPI app whose docs pages load their scripts from this server, not a CDN."""
    app = FastAPIOffline(docs_url=DOCS_URL, redoc_url=None, static_url=DOCS_STATIC_URL,
                         openapi_url=OPENAPI_URL, swagger_ui_oauth2_redirect_url=
                         OAUTH2_REDIRECT_URL, generate_unique_id_function=operation_id,
                         # Swagger UI keeps the token given to "Authorize" across reloads.
                         swagger_ui_parameters={"persistAuthorization": True},
                         openapi_tags=TAGS, **kwargs)

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc_html() -> HTMLResponse:
        return get_redoc_html(openapi_url=OPENAPI_URL, title=f"{app.title} - ReDoc",
                              redoc_js_url=REDOC_SCRIPT_URL, with_google_fonts=False,
                              redoc_favicon_url=f"{DOCS_STATIC_URL}/favicon.png")

    @app.get(REDOC_SCRIPT_URL, include_in_schema=False)
    async def redoc_js() -> Response:
        return Response(redoc_script(), media_type="text/javascript",
                        headers={"cache-control": "public, max-age=86400"})

    return app


def document_security(schema: dict[str, Any], public: set[str]) -> dict[str, Any]:
    """Every operation takes a bearer token (when tokens are on), but the ``public`` paths."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})[BEARER] = {
        "type": "http", "scheme": "bearer",
        "description": "BRANCHWORK_API_TOKEN or a token from POST /v1/tokens "
                       "(needed only when tokens are on; docs/operations.md)"}
    schema["security"] = [{BEARER: []}]
    for path in public & set(schema.get("paths", {})):
        for operation in schema["paths"][path].values():
            operation["security"] = []
    return schema


def install(app: FastAPI) -> None:
    """Build the document once, as FastAPI does, then state the error body and the bearer
    scheme in it (after every route is included, so every operation gets them)."""
    build = app.openapi
    public = {path for (_, path), rule in access.RULES.items() if isinstance(rule, access.Public)}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_security(document_errors(build()), public)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

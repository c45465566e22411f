"""The OpenAPI document tells the error body the server really sends.

FastAPI documents a ``422 HTTPValidationError`` of its own shape; every error of this API is
``{"code", "message", "details"}`` (:mod:`.errors`), with 4xx codes beyond 422. Clients
generated from the document, and schema-driven fuzzers, must see that shape.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

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


def install(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

"""The one error shape of the API: ``{"code": ..., "message": ..., "details": ...}``, and the
one table from the engine's domain errors to HTTP statuses.

Every 4xx and 5xx the server sends has this body; ``docs/api.md`` lists the codes. The engine
raises :class:`~.engine.errors.DomainError` subclasses (no HTTP in them); ``STATUS`` below
says which status each class is. ``ApiError`` is for the HTTP layer's own refusals (a
malformed form, a failed CSRF check), never raised below the routes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
import psycopg
import psycopg_pool
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from .engine.errors import (
    AlreadyRecorded,
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    StaleLease,
)
from .store.sql import UnstorableValue

log = logging.getLogger("branchwork.errors")

# Each domain error class and its HTTP status; a subclass not listed takes its base's.
STATUS: dict[type[DomainError], int] = {
    NotFound: 404,
    InvalidInput: 422,
    Conflict: 409,
    Forbidden: 403,
    StaleLease: 409,
    AlreadyRecorded: 409,
    PayloadTooLarge: 413,
}


def status_of(exc: DomainError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


class ApiError(Exception):
    """An HTTP-layer refusal (the studio's form and CSRF checks) with a status and a code."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"code": code, "message": message, "details": details}


def error_response(status: int, code: str, message: str, details: Any = None,
                   headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(error_body(code, message, details)), status_code=status,
                    media_type="application/json", headers=headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def _clean_validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cleaned = []
    for err in errors:
        item = {"loc": list(err.get("loc", ())), "msg": err.get("msg"), "type": err.get("type")}
        cleaned.append(item)
    return cleaned


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> str:
    """Every method some route takes at this path (Starlette's own ``Allow`` names only the
    first route that matched the path, e.g. POST but not GET on ``/v1/tasks``)."""
    routes = request.app.router.routes
    allowed = [m for m in METHODS if any(
        r.matches({**request.scope, "method": m})[0] == Match.FULL for r in routes)]
    return ", ".join(allowed)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain_error(_: Request, exc: DomainError) -> Response:
        return error_response(status_of(exc), exc.code, exc.message, exc.details)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(UnstorableValue)
    async def _unstorable(_: Request, exc: UnstorableValue) -> Response:
        return error_response(422, "invalid_value", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        invalid = [e for e in errors if e.get("type") == "json_invalid"]
        if invalid:
            reason = (invalid[0].get("ctx") or {}).get("error")
            message = "request body is not valid JSON" + (f": {reason}" if reason else "")
            return error_response(400, "malformed_json", message,
                                  _clean_validation_errors(errors))
        return error_response(422, "validation_error", "request does not match the schema",
                              _clean_validation_errors(errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        return error_response(exc.status_code, code, str(exc.detail), headers=headers or None)

    @app.exception_handler(psycopg.errors.DataError)
    async def _data_error(_: Request, exc: psycopg.errors.DataError) -> Response:
        # Values PostgreSQL refuses (out-of-range numbers, bad encodings) are the caller's.
        return error_response(422, "invalid_value", str(exc).splitlines()[0])

    @app.exception_handler(psycopg.OperationalError)
    async def _db_down(_: Request, exc: psycopg.OperationalError) -> Response:
        # A dropped connection or a restarting database. The caller may retry; a send that
        # carries an idempotency key is safe to retry even if the cut came during commit.
        log.warning("database unavailable: %s", exc)
        return error_response(503, "database_unavailable",
                              "the database is unavailable; retry shortly")

    @app.exception_handler(psycopg_pool.PoolTimeout)
    async def _pool_timeout(_: Request, exc: psycopg_pool.PoolTimeout) -> Response:
        log.warning("no database connection available: %s", exc)
        return error_response(503, "database_unavailable",
                              "no database connection available; retry shortly")

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal server error")

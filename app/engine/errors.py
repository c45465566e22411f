"""The engine's domain errors: what went wrong, in the engine's words, with no HTTP in them.

Each carries a stable ``code`` (the ``code`` of the JSON error body, see ``docs/api.md``),
a message for people and optional ``details``; ``app/errors.py`` alone maps each class to an
HTTP status. The store raises none of these: it returns rows (or ``None``), and the engine
decides what a missing row means.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every expected failure of a use case."""

    code = "domain_error"

    def __init__(self, message: str, details: Any = None, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code


class NotFound(DomainError):
    """The named thing (task, run, schedule, key, worker, workflow) does not exist."""

    code = "not_found"

    @classmethod
    def of(cls, what: str, ident: Any) -> NotFound:
        return cls(f"{what} {ident} does not exist", {"id": ident})


class InvalidInput(DomainError):
    """Well-formed input the use case refuses (an unknown parent, args against a schema)."""

    code = "invalid_input"


class Conflict(DomainError):
    """The request is valid but the current state forbids it (not cancellable, not waiting)."""

    code = "conflict"


class StaleLease(Conflict):
    """The lease token is not the task's current one: the attempt was re-leased or ended."""

    code = "stale_lease"


class AlreadyRecorded(Conflict):
    """This attempt's outcome is already recorded; a repeated report changes nothing."""

    code = "already_recorded"


class Forbidden(DomainError):
    """The caller's token is valid, but its role or scopes do not cover this request."""

    code = "forbidden"


class PayloadTooLarge(DomainError):
    """A value over its size limit."""

    code = "payload_too_large"

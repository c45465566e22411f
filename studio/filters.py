"""A list page's filters read leniently: a bad value (``?status=bogus``, a malformed time, a
cursor that is not an id) does not answer a raw JSON 422 to a person. The page is shown with
that filter left out and a note saying why (``Filters.notes``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..protocol import MAX_TASK_ID


@dataclass
class Filters:
    notes: list[str] = field(default_factory=list)

    def choice(self, label: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
        if not value:
            return None
        if value in allowed:
            return value
        self.notes.append(f"Unknown {label} “{value[:40]}”: showing every {label}. "
                          f"Choose one of: {', '.join(allowed)}.")
        return None

    def time(self, label: str, value: str | None) -> datetime | None:
        if not value:
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            self.notes.append(f"“{value[:40]}” is not a date and time ({label} left out); "
                              "write it as 2026-01-31T14:00 (UTC).")
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    def cursor(self, value: str | None) -> int | None:
        if not value:
            return None
        if value.isdigit() and 0 < int(value) <= MAX_TASK_ID:
            return int(value)
        self.notes.append(f"“{value[:40]}” is not a page position: showing the first page.")
        return None

    def task_id(self, value: str) -> int | None:
        ident = value.strip().lstrip("#")
        if ident.isdigit() and 0 < int(ident) <= MAX_TASK_ID:
            return int(ident)
        self.notes.append(f"“{value[:40]}” is not a task id: search by a task's number, "
                          "such as 42 or #42.")
        return None

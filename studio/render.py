"""Jinja2 rendering for the studio: autoescaping always on, and the display filters.

Autoescape is forced for every template (HTML and inline SVG alike), and no filter marks
user data as safe: args, results, errors, logs, KV values and names are always text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import orjson
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.responses import HTMLResponse

from .._humanize import ago

STATUS_ORDER = ("queued", "running", "succeeded", "failed", "cancelled")


def pretty_json(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return repr(value)


def short_json(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else pretty_json(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def ts(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") + " UTC"


def duration(start: datetime | None, end: datetime | None = None) -> str:
    if start is None:
        return "—"
    seconds = ((end or datetime.now(UTC)) - start).total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def segment(value: Any) -> str:
    """One URL path segment from user text: every reserved character escaped, "/" included,
    and "." / ".." too (URL normalisation would make them mean "here" and "up")."""
    quoted = quote(str(value), safe="")
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted


def number(value: int | float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,}".replace(",", "\u2009")


env = Environment(
    loader=PackageLoader("branchwork.studio", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters.update(pretty_json=pretty_json, short_json=short_json, ts=ts, ago=ago,
                   duration=duration, number=number, segment=segment)
env.globals.update(STATUS_ORDER=STATUS_ORDER)


def render(template: str, context: dict[str, Any], status_code: int = 200,
           headers: dict[str, str] | None = None) -> HTMLResponse:
    html = env.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=headers)

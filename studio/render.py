"""Jinja2 rendering for the studio: autoescaping always on, and the display filters.

Autoescape is forced for every template (HTML and inline SVG alike), and no filter marks
user data as safe: args, results, errors, logs, KV values and names are always text.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import orjson
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.responses import HTMLResponse

from .._humanize import ago

STATUS_ORDER = ("queued", "running", "waiting", "succeeded", "failed", "cancelled")


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


def seconds(value: float | None) -> str:
    """A number of seconds as a person reads it: 3 ms, 1.2 s, 4.5 min."""
    if value is None:
        return "—"
    if value < 1:
        return f"{value * 1000:.0f} ms" if value >= 0.001 else f"{value * 1000:.2f} ms"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def segment(value: Any) -> str:
    """One URL path segment from user text: every reserved character escaped, "/" included,
    and "." / ".." too (URL normalisation would make them mean "here" and "up")."""
    quoted = quote(str(value), safe="")
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted


def number(value: int | float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,}".replace(",", "\u2009")


def _clip_middle(text: str, limit: int) -> str:
    """Long values keep both ends: URLs and paths differ at the end, ids at the start."""
    if len(text) <= limit:
        return text
    half = (limit - 1) // 2
    return text[:half] + "…" + text[-(limit - 1 - half):]


def args_label(value: Any, limit: int = 64) -> str:
    """A short summary of a task's args for a tree node or a timeline row: ``url=…/page/3,
    depth=2``. Takes the args or their JSON text (possibly cut short, as the list reads it)."""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:  # cut short: read the keys and values as they are
            text = re.sub(r'"([^"]{1,40})":\s*', r"\1=", value.strip().lstrip("{["))
            return _clip_middle(text.replace('"', ""), limit)
    if value is None or value == {} or value == []:
        return ""

    def one(v: Any) -> str:
        text = v if isinstance(v, str) else orjson.dumps(v).decode()
        return _clip_middle(text, 32)

    if isinstance(value, dict):
        text = ", ".join(f"{k}={one(v)}" for k, v in value.items())
    elif isinstance(value, list):
        text = ", ".join(one(v) for v in value)
    else:
        text = one(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


ERROR_KEYS = ("type", "message", "traceback")


def error_parts(error: Any) -> dict[str, Any]:
    """An error body as the page shows it: ``type``, ``message``, ``traceback`` (text, never
    JSON-escaped), ``extra`` (any other fields) and ``cause`` (a nested ``error``, as a
    workflow run's error holds its failed node's task error)."""
    if error is None:
        return {"type": None, "message": None, "traceback": None, "extra": {}, "cause": None}
    if not isinstance(error, dict):
        text = error if isinstance(error, str) else pretty_json(error)
        first, _, rest = text.partition("\n")
        return {"type": None, "message": first, "traceback": rest or None, "extra": {},
                "cause": None}
    cause = error.get("error")
    extra = {k: v for k, v in error.items() if k not in ERROR_KEYS and k != "error"}
    tb = error.get("traceback")
    return {"type": error.get("type"), "message": error.get("message"),
            "traceback": tb if isinstance(tb, str) or tb is None else pretty_json(tb),
            "extra": extra, "cause": error_parts(cause) if cause is not None else None}


env = Environment(
    loader=PackageLoader("branchwork.studio", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters.update(pretty_json=pretty_json, short_json=short_json, ts=ts, ago=ago,
                   duration=duration, number=number, segment=segment,
                   args_label=args_label, seconds=seconds)
env.globals.update(error_parts=error_parts)
env.globals.update(STATUS_ORDER=STATUS_ORDER)


def render(template: str, context: dict[str, Any], status_code: int = 200,
           headers: dict[str, str] | None = None) -> HTMLResponse:
    html = env.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=headers)

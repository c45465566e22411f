"""What every operator command shares: the client, ``--json`` output, one-line errors.

The top-level group stores a ``CliState`` in ``ctx.obj``; a command takes it with
``@pass_state``, calls ``state.client()`` inside ``api_errors()`` and prints with
``state.emit(data, render)``: JSON for scripts, a rich table or text for people.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import click
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from .. import _humanize as humanize
from .._exceptions import ApiError, BranchworkError, TransportError
from .._http import Client

STATUS_STYLES = {"queued": "cyan", "running": "yellow", "succeeded": "green",
                 "failed": "red", "cancelled": "magenta"}


@dataclass
class CliState:
    """The options of the top-level group and the client built from them (once)."""

    url: str | None = None
    token: str | None = None
    as_json: bool = False
    # No markup: task names, args, results and errors are printed as they are (a result such
    # as "[/x]" would be a rich markup error); styles come from Text objects (``styled``).
    console: Console = field(default_factory=lambda: Console(markup=False, highlight=False))
    _client: Client | None = None

    def client(self) -> Client:
        if self._client is None:
            # Few retries: an operator at a terminal wants the error, not a minute of backoff.
            self._client = Client(self.url, self.token, retries=1, timeout=30.0)
        return self._client

    def emit(self, data: Any, render: Callable[[], RenderableType | str]) -> None:
        """``data`` as JSON with ``--json``, else what ``render()`` returns."""
        if self.as_json:
            click.echo(json.dumps(data, indent=2, default=str))
        else:
            self.console.print(render())

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


pass_state = click.make_pass_decorator(CliState, ensure=True)


@contextlib.contextmanager
def api_errors() -> Iterator[None]:
    """A failed call ends the command with one line on stderr and exit code 1."""
    try:
        yield
    except TransportError as exc:
        url = exc.args[0] if exc.args else ""
        click.echo(f"branchwork: cannot reach the server ({url})\n"
                   "  is `branchwork server` running? set --url or BRANCHWORK_URL",
                   err=True)
        sys.exit(1)
    except ApiError as exc:
        click.echo(f"branchwork: {exc}{_details(exc.details)}", err=True)
        sys.exit(1)
    except BranchworkError as exc:
        click.echo(f"branchwork: {exc}", err=True)
        sys.exit(1)


def _details(details: Any) -> str:
    """The server's reasons for a 422, on the same line: ``(body.queue: String should...)``."""
    if not isinstance(details, list):
        return ""
    reasons = []
    for d in details[:3]:
        if isinstance(d, dict) and "msg" in d:
            where = ".".join(str(p) for p in d.get("loc", []) if p != "body")
            reasons.append(f"{where}: {d['msg']}" if where else str(d["msg"]))
    return f" ({'; '.join(reasons)})" if reasons else ""


def table(*columns: str, title: str | None = None) -> Table:
    t = Table(title=title, title_justify="left", header_style="bold", box=None,
              pad_edge=False)
    for c in columns:
        t.add_column(c, overflow="fold")
    return t


def styled(status: str | None) -> Text:
    """A status in its colour."""
    status = status or "-"
    return Text(status, style=STATUS_STYLES.get(status, ""))


def ago(stamp: str | None) -> str:
    """An API timestamp (ISO 8601 text) as the studio shows it; "-" for none."""
    if not stamp:
        return "-"
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    return humanize.ago(when)


def parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON ({exc.msg} at column {exc.colno})",
                                 param_hint=what) from None

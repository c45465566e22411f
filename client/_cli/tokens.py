"""``branchwork tokens create/ls/revoke``: access tokens with a role, over the HTTP API with
the admin token (``--token`` / ``BRANCHWORK_API_TOKEN``)."""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text

from ..protocol import TOKEN_ROLES
from .common import CliState, ago, api_errors, pass_state, table


@click.group("tokens")
def tokens() -> None:
    """Create, list and revoke access tokens (needs the admin token)."""


def _scope(row: dict[str, Any]) -> str:
    parts = [f"queue {q}" for q in row.get("queues") or []]
    parts += [f"name {n}" for n in row.get("names") or []]
    unscoped = {"admin": "everything", "viewer": "read only", "sender": "any task"}
    return ", ".join(parts) or unscoped.get(row.get("role", ""), "-")


def token_table(rows: list[dict[str, Any]]) -> Any:
    t = table("NAME", "ROLE", "SCOPE", "CREATED", "LAST USED", "REVOKED")
    for r in rows:
        t.add_row(r["name"], r["role"], _scope(r), ago(r.get("created_at")),
                  ago(r.get("last_used_at")), ago(r.get("revoked_at")))
    return t if rows else Text("no tokens", style="dim")


@tokens.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(TOKEN_ROLES), required=True,
              help="admin: everything; worker: run tasks of its queues; sender: send tasks "
                   "and runs and read them; viewer: read only (and a read-only studio)")
@click.option("--queue", "queues", multiple=True, metavar="PATTERN",
              help="a queue or glob (emails.*) the token is limited to; repeat for more "
                   "(worker: at least one)")
@click.option("--name", "names", multiple=True, metavar="PATTERN",
              help="a task or workflow name or glob a sender is limited to; repeatable")
@pass_state
def create(state: CliState, name: str, role: str, queues: tuple[str, ...],
           names: tuple[str, ...]) -> None:
    """Create token NAME and print its secret (shown this once only)."""
    with api_errors():
        row = state.client().create_token(name, role, queues=queues, names=names)
    if state.as_json:
        state.emit(row, lambda: "")
        return
    click.echo(row["token"])  # alone on stdout, so `$(branchwork tokens create ...)` works
    click.echo(f"# {role} token {name!r} ({_scope(row)}): keep it now, it is not shown "
               "again", err=True)


@tokens.command("ls")
@click.option("--all", "show_all", is_flag=True, help="include revoked tokens")
@pass_state
def ls(state: CliState, show_all: bool) -> None:
    """Tokens with their role, scope and last use (never their secrets)."""
    with api_errors():
        rows = state.client().list_tokens(show_all)
    state.emit(rows, lambda: token_table(rows))


@tokens.command("revoke")
@click.argument("name")
@pass_state
def revoke(state: CliState, name: str) -> None:
    """Revoke token NAME; every replica refuses it within about a second."""
    with api_errors():
        row = state.client().revoke_token(name)
    state.emit(row, lambda: f"revoked {row['name']} ({row['role']})")

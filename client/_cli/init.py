"""``branchwork init [DIR]``: a runnable project to start from.

The tasks module only defines tasks (a worker imports it); sending lives in a separate
script, so ``branchwork run-worker tasks:registry`` never sends or waits at import.
"""

from __future__ import annotations

from pathlib import Path

import click

TASKS = '''"""The tasks of this project: `branchwork run-worker tasks:registry` runs them.

Defining tasks only; nothing is sent at import (send from your app, or `python send.py`).
"""

from branchwork import Registry, get_context

registry = Registry()


@registry.task(max_retries=3)
def add(a: int, b: int) -> int:
    print(f"adding {a} and {b}")   # lands in the task's logs (see `branchwork tasks show ID`)
    return a + b


@registry.task(queue="email", timeout_seconds=30)
def send_welcome(to: str) -> dict:
    ctx = get_context()
    return {"sent_to": to, "attempt": ctx.attempt_number}
'''

SEND = '''"""Send a task and wait for its result: `python send.py` (the worker must be running)."""

from tasks import add

if __name__ == "__main__":
    run = add.send(a=2, b=3)
    print(f"sent task {run.id}")
    print("result:", run.wait(timeout=60))
'''

ENV = '''# Read by `branchwork server`, the worker and the client (export them, or use a tool that
# loads .env). Unset BRANCHWORK_DATABASE_URL: the server starts an embedded PostgreSQL.
BRANCHWORK_URL=http://127.0.0.1:8000
# BRANCHWORK_DATABASE_URL=postgresql://postgres:postgres@127.0.0.1:5432/branchwork
# BRANCHWORK_API_TOKEN=change-me
'''

COMPOSE = '''# `docker compose up`: PostgreSQL, the Branchwork server (studio at http://localhost:8000)
# and a worker running tasks.py. The image is built once, by the server service.
services:
  db:
    image: postgres:16
    environment:
      POSTGRES_PASSWORD: postgres
      POSTGRES_DB: branchwork
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U postgres"]
      interval: 2s
      retries: 30
  server:
    build:
      context: .
      dockerfile_inline: |
        FROM python:3.12-slim
        RUN pip install --no-cache-dir 'branchwork[server]'
        WORKDIR /app
        COPY tasks.py send.py ./
    image: {name}-branchwork
    command: branchwork server --host 0.0.0.0
    environment:
      BRANCHWORK_DATABASE_URL: postgresql://postgres:postgres@db:5432/branchwork
    ports: ["8000:8000"]
    depends_on:
      db: {{condition: service_healthy}}
  worker:
    image: {name}-branchwork   # the server's image: built once
    pull_policy: never
    command: branchwork run-worker tasks:registry
    environment:
      BRANCHWORK_URL: http://server:8000
    depends_on: [server]
'''

README = '''# {name}

A Branchwork project. In three terminals:

```sh
branchwork server                          # the service; studio at http://127.0.0.1:8000/studio
branchwork run-worker tasks:registry       # a worker running tasks.py
python send.py                             # sends add(2, 3) and prints its result
```

Or: `branchwork send add --args '{{"a": 2, "b": 3}}' --wait`, `branchwork status`,
`branchwork tasks ls`. With Docker: `docker compose up`.
'''


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--force", is_flag=True, help="overwrite files that exist")
def init(directory: Path, force: bool) -> None:
    """Create a runnable project in DIRECTORY (default: here)."""
    directory.mkdir(parents=True, exist_ok=True)
    name = directory.resolve().name or "app"
    files = {"tasks.py": TASKS, "send.py": SEND, ".env": ENV,
             "docker-compose.yml": COMPOSE.format(name=_slug(name)),
             "README.md": README.format(name=name)}
    existing = [f for f in files if (directory / f).exists()]
    if existing and not force:
        raise click.ClickException(f"{', '.join(existing)} already exist(s) in {directory}; "
                                   "use --force to overwrite")
    for file, text in files.items():
        (directory / file).write_text(text)
        click.echo(f"created {directory / file}")
    where = "" if directory.resolve() == Path.cwd() else f"cd {directory} && "
    click.echo(f"\nnext, in three terminals:\n"
               f"  {where}branchwork server\n"
               f"  {where}branchwork run-worker tasks:registry\n"
               f"  {where}python send.py")


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "app"

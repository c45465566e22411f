"""The smallest worker registry; ``docker-compose.yml`` runs it:

    branchwork run-worker examples.hello:reg

Send it work with curl (or ``hello.send(name="you")`` from Python):

    curl -X POST localhost:8000/v1/tasks -H 'content-type: application/json' \\
      -d '{"name": "hello", "args": {"name": "you"}}'
"""

from __future__ import annotations

from branchwork import Registry

reg = Registry()


@reg.task(name="hello", max_retries=2)
def hello(name: str = "world") -> str:
    return f"hello, {name}"

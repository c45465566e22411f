"""Tasks the studio's action tests run in a real worker (``run-worker studio_app:reg``)."""

from __future__ import annotations

import time
from typing import Literal

from branchwork import Registry, get_context

reg = Registry()


@reg.task(queue="studio")
def greet(name: str, times: int = 1, loud: bool = False,
          mood: Literal["calm", "happy"] = "calm", tags: list[str] | None = None) -> str:
    """A definition whose args schema has a string, an integer, a boolean, an enum and a list
    (a JSON box in the studio's form)."""
    text = " ".join([f"hello {name} ({mood})"] * times) + "".join(f" #{t}" for t in tags or [])
    return text.upper() if loud else text


def _sleep(seconds: float) -> None:
    ctx = get_context()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ctx is not None:
            ctx.raise_if_cancelled()
        time.sleep(0.05)


@reg.task(queue="studio")
def nap(seconds: float) -> None:
    _sleep(seconds)


@reg.task(queue="studio")
def crawl_site(url: str, children: int = 0) -> None:
    """Sends ``children`` crawls of sub-pages, then waits (until cancelled)."""
    for i in range(children):
        crawl_site.send(f"{url}/page/{i}")
    _sleep(60)


@reg.task(queue="studio")
def explode(message: str) -> None:
    raise RuntimeError(message)

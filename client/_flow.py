"""Multi-step operations written once, as generators, run by one sync and one async driver.

A flow is a generator that yields steps and receives each step's result (or has its exception
thrown in), the way httpx drives its auth flows; what it returns is the operation's result.
``Client.run`` and ``AsyncClient.run`` are the two drivers; nothing else does I/O. Steps:

- ``Call`` (``_calls.py``): one endpoint with the retry rule → its parsed answer;
- ``Send(call)``: one raw HTTP attempt → the ``httpx.Response`` (the retry flow is made of it);
- ``Sleep(seconds)``;
- ``Once(key, make)``: the call ``make()`` builds, unless this client already made one under
  ``key`` successfully → its answer, or None.

So "ensure the queue limit, then send", "poll until final", "register then start a run" and
the retry loop itself exist once, whichever client runs them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from ._calls import Call

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Send:
    call: Call


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class Once:
    key: Hashable
    make: Callable[[], Call]  # built only when the call is made


Step = Call | Send | Sleep | Once
Flow = Generator[Step, Any, T]


class Deadline:
    """A wait's end: ``None`` waits for ever. Long-polls are cut into ``slice``-second calls."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.at = None if timeout is None else time.monotonic() + timeout

    def left(self) -> float | None:
        return None if self.at is None else max(0.0, self.at - time.monotonic())

    def passed(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at

    def slice(self, most: float) -> float:
        left = self.left()
        return most if left is None else min(left, most)

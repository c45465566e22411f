"""Send windows in the Python API (docs/flow-control.md): ``Debounce``, and the
``unique_for`` / ``unique_while`` modifiers of an idempotency key. Checked where they are
written, with ``protocol``'s rules; the server checks the same ones."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from . import protocol
from ._exceptions import DefinitionError

_KEY_PATH = re.compile(protocol.KEY_PATH_PATTERN)


def _seconds(value: Any) -> float | None:
    """``value`` (seconds or a timedelta) as seconds in (0, MAX_SECONDS], else None."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 < value <= protocol.MAX_SECONDS else None


@dataclass(frozen=True)
class Debounce:
    """Sends with the same key within ``seconds`` fold into one task, which runs once no send
    came for ``seconds``, with the latest args. The key is given (``key``) or read from the
    args (``key_path``, dotted: ``"doc.id"``); keys are per task name. ``max_seconds``: the
    task runs at the latest this long after the send that opened the window, even while
    sends keep coming (None: no limit)."""

    seconds: float | timedelta
    key: str | None = None
    key_path: str | None = None
    max_seconds: float | timedelta | None = None

    def __post_init__(self) -> None:
        if _seconds(self.seconds) is None:
            raise DefinitionError(f"Debounce: seconds must be > 0 (at most "
                                  f"{protocol.MAX_SECONDS:.0f}), not {self.seconds!r}")
        if self.max_seconds is not None and _seconds(self.max_seconds) is None:
            raise DefinitionError(f"Debounce: max_seconds must be > 0, not {self.max_seconds!r}")
        if (self.key is None) == (self.key_path is None):
            raise DefinitionError("Debounce: give key or key_path (one of them)")
        key = self.key
        if key is not None and not (isinstance(key, str) and 0 < len(key) <= protocol.KEY_MAX
                                    and "\x00" not in key):
            raise DefinitionError(f"Debounce: key must be a non-empty string of at most "
                                  f"{protocol.KEY_MAX} characters")
        path = self.key_path
        if path is not None and not (isinstance(path, str)
                                     and len(path) <= protocol.KEY_PATH_MAX
                                     and _KEY_PATH.match(path)):
            raise DefinitionError("Debounce: key_path must be a dotted path into the args "
                                  "(\"doc.id\")")

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"debounce_seconds": _seconds(self.seconds)}
        if self.max_seconds is not None:
            out["debounce_max_seconds"] = _seconds(self.max_seconds)
        if self.key is not None:
            out["debounce_key"] = self.key
        else:
            out["debounce_key_path"] = self.key_path
        return out


def debounce_option(value: Any, what: str) -> Debounce | None:
    """A task's or a send's ``debounce`` option; ``DefinitionError`` unless a Debounce."""
    if value is None or isinstance(value, Debounce):
        return value
    raise DefinitionError(f"{what}: debounce must be a Debounce(seconds, key=... or "
                          f"key_path=...), not {value!r}")


def check_unique(options: Mapping[str, Any], error: Callable[[str], Exception]) -> None:
    """``unique_for`` (seconds or a timedelta) and ``unique_while`` ("active")."""
    until = options.get("unique_for")
    if until is not None and _seconds(until) is None:
        raise error(f"unique_for must be seconds > 0 or a timedelta, not {until!r}")
    while_ = options.get("unique_while")
    if while_ is not None and while_ not in protocol.UNIQUE_WHILE:
        raise error(f"unique_while must be one of {list(protocol.UNIQUE_WHILE)}, "
                    f"not {while_!r}")


def window_body(debounce: Debounce | None, options: Mapping[str, Any]) -> dict[str, Any]:
    """The send fields of the windows, in TaskIn names (absent when not used)."""
    out = debounce.body() if debounce is not None else {}
    if options.get("unique_for") is not None:
        out["unique_for"] = _seconds(options["unique_for"])
    if options.get("unique_while") is not None:
        out["unique_while"] = options["unique_while"]
    return out

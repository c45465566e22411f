"""What the server can store: JSON with string keys, finite numbers, 64-bit integers, no NUL,
nested at most ``MAX_JSON_DEPTH`` levels.

Checked on the client so a bad value fails at ``.send()`` (or when a result is dumped) with
the path to it, instead of as a 422 from the server or, worse, silently altered (NaN → null).
"""

from __future__ import annotations

import math
from typing import Any

from .protocol import MAX_JSON_DEPTH

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def json_problem(value: Any, path: str = "$", max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """None if ``value`` is storable JSON; otherwise where and why it is not. ``max_depth``:
    how deep ``value`` may nest (a scalar is 0, ``[1]`` 1), the server's limit for a body."""
    if _storable(value, max_depth):
        return None  # the common case, checked without building a path per node
    return _where_not_storable(value, path, max_depth)


def _storable(value: Any, max_depth: int) -> bool:
    """``json_problem``'s rules, answering only yes or no (every request body passes here)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, str):
            if "\x00" in item:
                return False
        elif isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                return False
        elif isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif isinstance(item, dict | list | tuple) and level >= max_depth:
            return False
        elif isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str) or "\x00" in key:
                    return False
                stack.append((sub, level + 1))
        elif isinstance(item, list | tuple):
            stack.extend((sub, level + 1) for sub in item)
        else:
            return False
    return True


def _where_not_storable(value: Any, path: str, max_depth: int) -> str | None:
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, level = stack.pop()
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, str):
            if "\x00" in item:
                return f"{where}: NUL characters cannot be stored"
        elif isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                return f"{where}: integer {item} does not fit in 64 bits"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{where}: {item} is not a JSON number"
        elif isinstance(item, dict | list | tuple) and level >= max_depth:
            return f"{where}: nested deeper than {max_depth} levels"
        elif isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    return f"{where}: key {key!r} is not a string"
                if "\x00" in key:
                    return f"{where}: NUL characters cannot be stored"
                stack.append((sub, f"{where}.{key}", level + 1))
        elif isinstance(item, list | tuple):
            stack.extend((sub, f"{where}[{i}]", level + 1) for i, sub in enumerate(item))
        else:
            return f"{where}: {type(item).__name__} is not JSON"
    return None


def lossy_problem(value: Any, path: str = "$") -> str | None:
    """What a JSON dump would silently change in ``value`` (pydantic's python-mode dump):
    NaN and infinities become null, non-string keys become strings. Other types are left to
    the JSON dump; None when nothing would be lost."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return f"{where}: {item} is not a JSON number"
        if isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    return f"{where}: key {key!r} is not a string"
                stack.append((sub, f"{where}.{key}"))
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend((sub, f"{where}[{i}]") for i, sub in enumerate(item))
    return None

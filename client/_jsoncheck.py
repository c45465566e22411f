"""What the server can store: JSON with string keys, finite numbers, 64-bit integers, no NUL.

Checked on the client so a bad value fails at ``.send()`` (or when a result is dumped) with
the path to it, instead of as a 422 from the server or, worse, silently altered (NaN → null).
"""

from __future__ import annotations

import math
from typing import Any

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def json_problem(value: Any, path: str = "$") -> str | None:
    """None if ``value`` is storable JSON; otherwise where and why it is not."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
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
        elif isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    return f"{where}: key {key!r} is not a string"
                if "\x00" in key:
                    return f"{where}: NUL characters cannot be stored"
                stack.append((sub, f"{where}.{key}"))
        elif isinstance(item, list | tuple):
            stack.extend((sub, f"{where}[{i}]") for i, sub in enumerate(item))
        else:
            return f"{where}: {type(item).__name__} is not JSON"
    return None

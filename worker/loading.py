"""Finding the user's registry from a ``module:attribute`` spec."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any


class SpecError(ValueError):
    """The spec does not name an importable registry."""


def load_registry(spec: str) -> Any:
    """Import ``module:attribute`` (the current directory is importable, like ``python -m``)."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise SpecError(f"expected module:registry, got {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(f"cannot import {module_name!r}: {exc}") from exc
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise SpecError(f"{module_name!r} has no attribute {attribute!r}") from exc
    if not hasattr(target, "tasks"):
        raise SpecError(f"{spec!r} is a {type(target).__name__}, not a branchwork Registry")
    return target

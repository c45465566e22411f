"""Building LIKE patterns from user text, where ``%``, ``_`` and ``\\`` must match literally."""

from __future__ import annotations


def escape_like(text: str) -> str:
    """``text`` as a LIKE pattern that matches exactly it (backslash is LIKE's default escape)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")

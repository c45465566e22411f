"""How long ago something happened, in the few characters a table cell has.

One rule for the terminal (``branchwork tasks ls``) and the studio, so both say the same
thing about the same row.
"""

from __future__ import annotations

from datetime import UTC, datetime


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """``"42s ago"``, ``"3m ago"``, ``"in 2h"``, ``"now"``; ``"—"`` for no time."""
    if value is None:
        return "—"
    seconds = ((now or datetime.now(UTC)) - value).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 1:
        return "now"
    if seconds < 60:
        text = f"{int(seconds)}s"
    elif seconds < 3600:
        text = f"{int(seconds // 60)}m"
    elif seconds < 86400:
        text = f"{int(seconds // 3600)}h"
    else:
        text = f"{int(seconds // 86400)}d"
    return f"in {text}" if future else f"{text} ago"

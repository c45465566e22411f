"""The README documents every server setting (they are read from ``BRANCHWORK_*``)."""

from __future__ import annotations

from pathlib import Path

from branchwork.app.settings import Settings

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_server_setting_is_in_the_readme_table() -> None:
    rows = [line for line in README.read_text().splitlines() if line.startswith("| `BRANCHWORK_")]
    missing = [name for name in Settings.model_fields
               if not any(f"`BRANCHWORK_{name.upper()}`" in row for row in rows)]
    assert missing == []

"""Every cron example in README.md and docs/ means what the sentence around it says.

Issue 12: docs/cron.md called ``"*/10 * * * * *"`` "every ten seconds"; with croniter the
seconds are the sixth field, so it fired every second during minute :10. Here each example's
claim ("every ten seconds", "at 09:00", "names no real date", ...) is read from the text
next to it and checked against the fire times croniter computes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from croniter import CroniterBadDateError, croniter

from cli_helpers import ROOT

CRON = re.compile(r"[\"`]((?:[\d*/,\-]+ ){4,5}[\d*/,\-]+)[\"`]")
NUMBERS = {"one": 1, "two": 2, "five": 5, "ten": 10, "fifteen": 15, "thirty": 30}
START = datetime(2026, 3, 28, 23, 57, 0)  # across a month end and a DST change in Europe


def fires(expr: str, n: int = 30, tz: str | None = None) -> list[datetime]:
    start = START.replace(tzinfo=ZoneInfo(tz)) if tz else START
    it = croniter(expr, start)
    return [it.get_next(datetime) for _ in range(n)]


def _gaps(times: list[datetime]) -> set[float]:
    return {(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)}


def _number(word: str) -> int:
    return int(word) if word.isdigit() else NUMBERS[word]


# claim pattern -> check(expression, match, zone); each returns a failure message or None.
def _every_seconds(expr: str, m: re.Match[str], tz: str | None) -> str | None:
    gaps = _gaps(fires(expr))
    return None if gaps == {float(_number(m[1]))} else f"gaps between fires are {gaps} s"


def _every_minutes(expr: str, m: re.Match[str], tz: str | None) -> str | None:
    gaps = _gaps(fires(expr))
    return None if gaps == {60.0 * _number(m[1])} else f"gaps between fires are {gaps} s"


def _every_second_during(expr: str, m: re.Match[str], tz: str | None) -> str | None:
    times = fires(expr, 120)
    minutes = {t.minute for t in times}
    if 1.0 not in _gaps(times):
        return "it does not fire every second"
    listed = [int(x) for x in re.findall(r"\d+", m.string[: m.start()].split("minutes", 1)[-1])]
    if listed and not minutes <= set(range(listed[0], 60, listed[1] - listed[0])):
        return f"it fires in minutes {sorted(minutes)}"
    return None


def _at_time(expr: str, m: re.Match[str], tz: str | None) -> str | None:
    wanted = (int(m[1]), int(m[2]))
    got = {(t.hour, t.minute) for t in fires(expr, 10, tz)}
    return None if got == {wanted} else f"it fires at {sorted(got)} ({tz or 'UTC'})"


def _no_date(expr: str, m: re.Match[str], tz: str | None) -> str | None:
    try:
        fires(expr, 1)
    except CroniterBadDateError:
        return None
    return "croniter finds a date for it"


CLAIMS: list[tuple[re.Pattern[str], Callable[..., str | None]]] = [
    (re.compile(r"every (\d+|one|two|five|ten|fifteen|thirty) seconds"), _every_seconds),
    (re.compile(r"every (\d+|one|two|five|ten|fifteen|thirty) minutes"), _every_minutes),
    (re.compile(r"every second\b"), _every_second_during),
    (re.compile(r"\bat (\d\d):(\d\d)\b"), _at_time),
    (re.compile(r"names no real date"), _no_date),
]
ZONE = re.compile(r"`([A-Z][a-z]+/[A-Za-z_]+)`")


def examples() -> list[tuple[str, str, str]]:
    """(where, expression, the text around it: a little before, the rest of its sentence)."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for para in re.split(r"\n\s*\n", path.read_text()):
            flat = " ".join(para.split())
            hits = list(CRON.finditer(flat))
            for i, m in enumerate(hits):
                if not croniter.is_valid(m[1]):
                    continue
                begin = max(hits[i - 1].end() if i else 0, m.start() - 30)
                end = hits[i + 1].start() if i + 1 < len(hits) else len(flat)
                found.append((f"{path.relative_to(ROOT)}: {m[1]!r}", m[1],
                              flat[begin:m.start()] + flat[m.end():end]))
    return found


EXAMPLES = examples()


def test_the_examples_are_found() -> None:
    exprs = {e for _, e, _ in EXAMPLES}
    assert {"*/5 * * * *", "0 9 * * *", "* * * * * */10"} <= exprs
    claimed = [w for w, e, text in EXAMPLES if any(p.search(text) for p, _ in CLAIMS)]
    assert len(claimed) >= 4, claimed


@pytest.mark.parametrize(("where", "expr", "text"), EXAMPLES, ids=[w for w, _, _ in EXAMPLES])
def test_each_example_means_what_its_sentence_says(where: str, expr: str, text: str) -> None:
    zone = ZONE.search(text)
    for pattern, check in CLAIMS:
        for m in pattern.finditer(text):
            problem = check(expr, m, zone[1] if zone else None)
            assert problem is None, f"{where} is said to fire {m[0]!r}, but {problem}: {text!r}"


def test_the_checks_catch_the_old_mistake() -> None:
    """The sentence docs/cron.md had before issue 12 fails the check."""
    m = CLAIMS[0][0].search('is every ten seconds')
    assert m is not None and _every_seconds("*/10 * * * * *", m, None) is not None
    assert _every_seconds("* * * * * */10", m, None) is None

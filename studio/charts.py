"""Server-drawn SVG charts: geometry computed here, drawn by templates (text autoescaped)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .render import seconds


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    bars: list[Bar]
    peak: int
    total_succeeded: int
    total_failed: int


def throughput_chart(succeeded: list[int], failed: list[int], width: int = 240,
                     height: int = 48) -> BarChart:
    """Stacked bars per minute (succeeded below failed) over the last len(series) minutes."""
    n = len(succeeded)
    peak = max((s + f for s, f in zip(succeeded, failed, strict=True)), default=0)
    slot = width / max(n, 1)
    gap = 1.0 if slot > 3 else 0.0
    bars: list[Bar] = []
    scale = (height - 2) / peak if peak else 0.0
    for i, (s, f) in enumerate(zip(succeeded, failed, strict=True)):
        x = round(i * slot, 2)
        minutes_ago = n - i
        label = f"{minutes_ago} min ago: {s} succeeded, {f} failed"
        base = float(height)
        if s:
            h = max(1.0, s * scale)
            bars.append(Bar(x, round(base - h, 2), round(slot - gap, 2), round(h, 2),
                            "bar-succeeded", label))
            base -= h
        if f:
            h = max(1.0, f * scale)
            bars.append(Bar(x, round(base - h, 2), round(slot - gap, 2), round(h, 2),
                            "bar-failed", label))
    return BarChart(width, height, bars, peak, sum(succeeded), sum(failed))


def combine(series: dict[str, dict[str, list[int]]]) -> dict[str, list[int]]:
    """All queues added together, minute by minute."""
    total = {"succeeded": [0] * 60, "failed": [0] * 60}
    for per_queue in series.values():
        for status in ("succeeded", "failed"):
            for i, value in enumerate(per_queue[status]):
                total[status][i] += value
    return total


# --- lines: queue depth over time -----------------------------------------------------------

PALETTE = ("#3b5bdb", "#e8590c", "#2b8a3e", "#c2255c", "#0c8599", "#7048e8", "#a87900",
           "#495057")
LINES_SHOWN = len(PALETTE)


@dataclass(frozen=True)
class Line:
    label: str
    points: str  # "x,y x,y ..." for a <polyline>
    color: str
    last: int
    peak: int


@dataclass(frozen=True)
class LineChart:
    width: int
    height: int
    lines: list[Line]
    peak: int
    grid: list[tuple[float, str]]  # (y, label) of horizontal guides
    hidden: int  # series left out (beyond the palette)


def line_chart(series: dict[str, list[int]], width: int = 720, height: int = 160,
               pad: int = 4) -> LineChart:
    """One polyline per series (the ``LINES_SHOWN`` with the highest peak), all on one scale."""
    ranked = sorted(series.items(), key=lambda kv: (-max(kv[1], default=0), kv[0]))
    shown = ranked[:LINES_SHOWN]
    peak = max((max(v, default=0) for _, v in shown), default=0)
    top = max(peak, 1)
    lines: list[Line] = []
    for i, (label, values) in enumerate(shown):
        n = max(len(values) - 1, 1)
        pts = " ".join(
            f"{round(j * width / n, 1)},{round(height - pad - v * (height - 2 * pad) / top, 1)}"
            for j, v in enumerate(values))
        lines.append(Line(label, pts, PALETTE[i], values[-1] if values else 0,
                          max(values, default=0)))
    guides = [(round(height - pad - f * (height - 2 * pad), 1), f"{round(top * f):,}")
              for f in (0.5, 1.0)] if peak else []
    return LineChart(width, height, lines, peak, guides, max(len(ranked) - LINES_SHOWN, 0))


# --- bars per task name: run time p50/p95 and failure rate ---------------------------------

@dataclass(frozen=True)
class RunTimeRow:
    name: str
    finished: int
    failed: int
    p50: float | None
    p95: float | None
    p50_width: float
    p95_width: float
    failure_rate: float  # 0..1
    failure_width: float


def run_time_rows(rows: list[dict[str, Any]], width: int = 220) -> list[RunTimeRow]:
    """Bar widths on one scale for every name (the slowest p95 fills ``width``)."""
    slowest = max((r["p95"] or 0.0 for r in rows), default=0.0) or 1.0
    out: list[RunTimeRow] = []
    for r in rows:
        p50, p95 = r["p50"], r["p95"]
        rate = r["failed"] / r["finished"] if r["finished"] else 0.0
        out.append(RunTimeRow(
            r["name"], r["finished"], r["failed"], p50, p95,
            round(max((p50 or 0.0) / slowest * width, 1.0), 1),
            round(max((p95 or 0.0) / slowest * width, 1.0), 1),
            rate, round(rate * width, 1)))
    return out


# --- a timeline (Gantt) of a tree's or a run's tasks ----------------------------------------

GANTT_ROW, GANTT_LABEL, GANTT_BARS = 20, 300, 560


@dataclass(frozen=True)
class GanttRow:
    id: int
    label: str
    detail: str
    status: str
    y: int
    wait_x: float
    wait_w: float
    run_x: float
    run_w: float
    title: str


@dataclass(frozen=True)
class Gantt:
    width: int
    height: int
    label_width: int
    rows: list[GanttRow]
    span_seconds: float
    ticks: list[tuple[float, str]]  # (x, label)
    row_height: int = GANTT_ROW


def gantt(spans: list[dict[str, Any]], now: datetime, label: Callable[[dict[str, Any]], str],
          detail: Callable[[dict[str, Any]], str]) -> Gantt:
    """One row per task in the given order: waiting (created → started) as a pale bar,
    running (started → finished, or now) as a bar coloured by status."""
    if not spans:
        return Gantt(GANTT_LABEL + GANTT_BARS, GANTT_ROW, GANTT_LABEL, [], 0.0, [])
    start = min(s["created_at"] for s in spans)
    end = max(max(s["finished_at"] or now, s["created_at"]) for s in spans)
    total = max((end - start).total_seconds(), 0.001)
    scale = GANTT_BARS / total

    def x(at: datetime) -> float:
        return round(GANTT_LABEL + (at - start).total_seconds() * scale, 1)

    rows: list[GanttRow] = []
    for i, s in enumerate(spans):
        created, started, finished = s["created_at"], s["started_at"], s["finished_at"]
        wait_end = started or finished or now
        run_end = finished or now
        run_x = x(started) if started else x(wait_end)
        run_w = max(x(run_end) - run_x, 1.5) if started else 0.0
        took = seconds((run_end - started).total_seconds()) if started else "not started"
        waited = seconds((wait_end - created).total_seconds())
        title = f"#{s['id']} {s['name']}: {s['status']}, waited {waited}, ran {took}"
        rows.append(GanttRow(s["id"], label(s), detail(s), s["status"], 18 + i * GANTT_ROW,
                             x(created), max(x(wait_end) - x(created), 0.0), run_x, run_w,
                             title))
    ticks = [(round(GANTT_LABEL + f * GANTT_BARS, 1), seconds(f * total) if f else "0")
             for f in (0.0, 0.25, 0.5, 0.75, 1.0)]
    return Gantt(GANTT_LABEL + GANTT_BARS + 10, 24 + len(rows) * GANTT_ROW, GANTT_LABEL, rows,
                 total, ticks)

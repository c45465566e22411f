"""Server-drawn SVG charts: geometry computed here, drawn by templates (text autoescaped)."""

from __future__ import annotations

from dataclasses import dataclass


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

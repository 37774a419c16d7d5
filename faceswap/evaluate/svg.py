"""Inline SVG line plots for the HTML report (no plotting library needed, renders in any browser)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


@dataclass
class Line:
    label: str
    xs: Sequence[float]
    ys: Sequence[float]  # NaN / None leave a gap
    colour: str = ""


@dataclass
class Plot:
    title: str
    x_label: str
    y_label: str
    lines: list[Line]
    hlines: list[tuple[float, str]] = field(default_factory=list)  # (y, label) reference lines
    width: int = 760
    height: int = 280
    y_min: float | None = None
    log_y: bool = False


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(s * magnitude for s in (1, 2, 2.5, 5, 10) if s * magnitude >= raw)
    first = math.ceil(lo / step) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.01:
        return f"{value:.2g}"
    return f"{value:.3g}"


def render(plot: Plot) -> str:
    """The plot as an ``<svg>`` element string."""
    left, right, top, bottom = 62, 14, 44, 42
    w, h = plot.width, plot.height
    pw, ph = w - left - right, h - top - bottom
    transform = (lambda v: math.log10(v)) if plot.log_y else (lambda v: v)
    points = [
        (x, transform(y))
        for line in plot.lines
        for x, y in zip(line.xs, line.ys, strict=False)
        if _finite(x) and _finite(y) and (not plot.log_y or y > 0)
    ]
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        f'role="img" aria-label="{escape(plot.title)}" class="plot">',
        f'<text x="{w / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">'
        f"{escape(plot.title)}</text>",
    ]
    if not points:
        out.append(f'<text x="{w / 2}" y="{h / 2}" text-anchor="middle" fill="#777">no data</text></svg>')
        return "".join(out)
    xs = [p[0] for p in points]
    ys = [p[1] for p in points] + [transform(y) for y, _ in plot.hlines if not plot.log_y or y > 0]
    x_lo, x_hi = min(xs), max(xs)
    y_lo = transform(plot.y_min) if plot.y_min is not None and not plot.log_y else min(ys)
    y_hi = max(ys)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    if y_hi == y_lo:
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5
    pad = (y_hi - y_lo) * 0.05
    y_hi += pad
    if plot.y_min is None or plot.log_y:
        y_lo -= pad

    def sx(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * pw

    def sy(y: float) -> float:
        return top + (1 - (y - y_lo) / (y_hi - y_lo)) * ph

    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" stroke="#999"/>')
    for tick in _nice_ticks(y_lo, y_hi):
        label = _fmt(10**tick) if plot.log_y else _fmt(tick)
        out.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{sy(tick):.1f}" y2="{sy(tick):.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{sy(tick) + 4:.1f}" text-anchor="end" font-size="11">{label}</text>'
        )
    for tick in _nice_ticks(x_lo, x_hi, 8):
        out.append(
            f'<text x="{sx(tick):.1f}" y="{top + ph + 16}" text-anchor="middle" font-size="11">'
            f"{_fmt(tick)}</text>"
        )
    out.append(
        f'<text x="{left + pw / 2}" y="{h - 6}" text-anchor="middle" font-size="12">'
        f"{escape(plot.x_label)}</text>"
        f'<text x="14" y="{top + ph / 2}" text-anchor="middle" font-size="12" '
        f'transform="rotate(-90 14 {top + ph / 2})">{escape(plot.y_label)}</text>'
    )
    for y, label in plot.hlines:
        if plot.log_y and y <= 0:
            continue
        yy = sy(transform(y))
        out.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#555" '
            f'stroke-dasharray="5,4"/><text x="{left + pw - 4}" y="{yy - 4:.1f}" text-anchor="end" '
            f'font-size="11" fill="#555">{escape(label)}</text>'
        )
    legend_x = left + 8
    for i, line in enumerate(plot.lines):
        colour = line.colour or PALETTE[i % len(PALETTE)]
        segments: list[list[str]] = [[]]
        for x, y in zip(line.xs, line.ys, strict=False):
            if _finite(x) and _finite(y) and (not plot.log_y or y > 0):
                segments[-1].append(f"{sx(x):.1f},{sy(transform(y)):.1f}")
            elif segments[-1]:
                segments.append([])
        for seg in segments:
            if len(seg) == 1:
                cx, cy = seg[0].split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{colour}"/>')
            elif seg:
                out.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{" ".join(seg)}"/>'
                )
        out.append(
            f'<rect x="{legend_x}" y="{top - 12}" width="12" height="3" fill="{colour}"/>'
            f'<text x="{legend_x + 16}" y="{top - 7}" font-size="11">{escape(line.label)}</text>'
        )
        legend_x += 24 + 7 * len(line.label)
    out.append("</svg>")
    return "".join(out)

"""Inline SVG charts drawn from Python: lines over time with labelled axes in human units,
reference lines (trend, warm-up, ceiling, limit) and small sparklines. No JavaScript needed.

Every text that lands in the SVG goes through markupsafe.escape: labels can come from the target.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from markupsafe import Markup, escape

from memsleuth import units
from memsleuth.model import FloatArray
from memsleuth.reports.plot import (
    byte_axis,
    downsample_minmax,
    finite_xy,
    nice_step,
    nice_ticks,
    tick_label,
    time_unit,
)

YKind = Literal["bytes", "count", "seconds"]
# Approximate width of one character of the 12px UI font, for laying out legend entries.
_CHAR_PX = 6.6
# A line is broken where nothing was read for this many times its usual spacing.
GAP_FACTOR = 3.0
# ... and its readings are marked when it has this few.
MARK_POINTS_UP_TO = 60


@dataclass(frozen=True, slots=True)
class Line:
    """One plotted series: `css` names its colour class (see the page's stylesheet)."""

    label: str
    t: FloatArray
    y: FloatArray
    css: str
    dashed: bool = False


@dataclass(frozen=True, slots=True)
class Rule:
    """A reference line: vertical at a time (axis="x") or horizontal at a value (axis="y")."""

    axis: Literal["x", "y"]
    value: float
    label: str
    css: str


@dataclass(frozen=True, slots=True)
class Chart:
    """What to draw; `span_s` fixes the time axis so stacked charts line up."""

    title: str
    lines: tuple[Line, ...]
    y_kind: YKind
    span_s: float
    rules: tuple[Rule, ...] = ()
    shade_until_s: float | None = None  # a shaded band from 0 (the warm-up)
    width: int = 960
    height: int = 340
    key: str = "chart"  # unique within the page: names the chart's clip path
    y_title: str = ""  # the y axis title; default by y_kind ("memory", "count", "duration")


def _y_axis(lo: float, hi: float, kind: YKind) -> tuple[tuple[float, ...], str, float, str]:
    """Tick values (data units), the axis unit, the divisor for tick labels and their suffix."""
    if kind == "bytes":
        ticks, unit, divisor = byte_axis(lo, hi)
        return ticks, unit, divisor, ""
    if kind == "seconds":
        mag = max(abs(lo), abs(hi))
        divisor, unit = (1e-6, "µs") if mag < 1e-3 else (1e-3, "ms") if mag < 1 else (1.0, "s")
        ticks = nice_ticks(lo / divisor, hi / divisor)
        return tuple(v * divisor for v in ticks), unit, divisor, ""
    mag = max(abs(lo), abs(hi))
    if mag >= 10_000:
        # 20M, not 20,000,000: long tick labels would not fit left of the axis.
        divisor, suffix = (1e6, "M") if mag >= 10_000_000 else (1e3, "k")
        ticks = nice_ticks(lo / divisor, hi / divisor)
        return tuple(v * divisor for v in ticks), "", divisor, suffix
    ticks = nice_ticks(lo, hi)
    if len(ticks) >= 2 and ticks[1] - ticks[0] < 1:
        # Counts are whole: a step below one would label 8.5 threads.
        ticks = tuple(float(v) for v in range(math.floor(lo), math.ceil(hi) + 1))
    return ticks, "", 1.0, ""


def _y_domain(chart: Chart, lines: Sequence[tuple[FloatArray, FloatArray]]) -> tuple[float, float]:
    ys = [y for _, y in lines if y.size]
    lo = min(float(y.min()) for y in ys) if ys else 0.0
    hi = max(float(y.max()) for y in ys) if ys else 1.0
    for r in chart.rules:
        if r.axis == "y" and math.isfinite(r.value):
            lo, hi = min(lo, r.value), max(hi, r.value)
    if chart.y_kind == "count" or lo < 0.25 * hi:
        lo = min(lo, 0.0)  # small counts and wide ranges read best from zero
    if hi <= lo:
        hi = lo + (abs(lo) * 0.1 or 1.0)
    pad = (hi - lo) * 0.05
    return (lo - pad if lo != 0 else lo), hi + pad


def _fmt(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


@dataclass(frozen=True, slots=True)
class _Frame:
    """The plot area in SVG pixels and the data ranges mapped onto it."""

    left: float
    top: float
    width: float
    height: float
    span_s: float
    y_lo: float
    y_hi: float

    def x(self, t: float) -> float:
        return self.left + self.width * (t / self.span_s)

    def y(self, v: float) -> float:
        return self.top + self.height * (1 - (v - self.y_lo) / (self.y_hi - self.y_lo))

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height


def render_chart(chart: Chart, max_points: int = 2000) -> Markup:
    """The chart as an inline <svg> (responsive: it scales to its container's width)."""
    w, h = chart.width, chart.height
    data = [downsample_minmax(ln.t, ln.y, max_points) for ln in chart.lines]
    y_lo, y_hi = _y_domain(chart, data)
    ticks, y_unit, y_div, suffix = _y_axis(y_lo, y_hi, chart.y_kind)
    if ticks:
        y_lo, y_hi = min(y_lo, ticks[0]), max(y_hi, ticks[-1])
    f = _Frame(64, 34, w - 64 - 20, h - 34 - 44, chart.span_s or 1.0, y_lo, y_hi)
    out: list[str] = [
        f'<svg class="chart" viewBox="0 0 {w} {h}" role="img" preserveAspectRatio="xMidYMid meet"'
        f' xmlns="http://www.w3.org/2000/svg" aria-label="{escape(chart.title)}">',
        f"<title>{escape(chart.title)}</title>",
    ]
    if chart.shade_until_s is not None and chart.shade_until_s > 0:
        x1 = f.x(min(chart.shade_until_s, f.span_s))
        out.append(
            f'<rect class="band" x="{f.left}" y="{f.top}" width="{_fmt(x1 - f.left)}"'
            f' height="{f.height}"/>'
        )
    out += _y_grid(f, ticks, y_div, suffix)
    out += _x_axis(f, h)
    y_title = (
        chart.y_title or {"bytes": "memory", "count": "count", "seconds": "duration"}[chart.y_kind]
    )
    y_title += f" ({y_unit})" if y_unit else ""
    out.append(
        f'<text class="axis-title" transform="translate(14 {_fmt(f.top + f.height / 2)})'
        f' rotate(-90)" text-anchor="middle">{escape(y_title)}</text>'
    )
    # Data lines, clipped to the plot area so a trend past the range cannot spill over the axes.
    clip = f"clip-{escape(chart.key)}"
    out.append(
        f'<clipPath id="{clip}"><rect x="{f.left}" y="{f.top - 2}" width="{f.width}"'
        f' height="{f.height + 4}"/></clipPath>'
    )
    out.append(f'<g clip-path="url(#{clip})">')
    for ln, (t, y) in zip(chart.lines, data, strict=True):
        dash = " dashed" if ln.dashed else ""
        for a, b in _unbroken(t, finite_xy(ln.t, ln.y)[0]):
            pts = _points(f, t[a:b], y[a:b])
            out.append(f'<polyline class="line {escape(ln.css)}{dash}" points="{pts}"/>')
        if 0 < t.size <= MARK_POINTS_UP_TO:
            # Few points, or one: each reading is shown, so a line between two reads is not
            # taken for readings (and a run of one sample draws a point, not empty axes).
            out += [
                f'<circle class="mark {escape(ln.css)}" cx="{_fmt(cx)}" cy="{_fmt(cy)}" r="2.4"/>'
                for cx, cy in zip(*_xy(f, t, y), strict=True)
            ]
    out += _rules(f, chart.rules)
    out.append("</g>")
    out += _rule_labels(f, chart.rules)
    out.append(_legend(chart, int(f.left)))
    out.append("</svg>")
    return Markup("\n".join(out))


def _unbroken(t: FloatArray, read: FloatArray) -> list[tuple[int, int]]:
    """[a, b) runs of the drawn points `t` with no gap in the readings `read` (all of them,
    before downsampling) longer than GAP_FACTOR × their median spacing: a stretch nothing was
    read in (a recorder stopped, a costly column skipped) is left open rather than drawn as a
    straight ramp that never happened. Measured on the readings: the min and max kept per
    bucket are unevenly spaced, and had broken a long line into pieces."""
    if t.size < 2:
        return []
    dt = np.diff(read)
    resumed = read[1:][dt > GAP_FACTOR * float(np.median(dt))]  # first reading after a gap
    cuts = np.unique(np.searchsorted(t, resumed))
    bounds = [0, *cuts[(cuts > 0) & (cuts < t.size)].tolist(), int(t.size)]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b - a >= 2]


def _xy(f: _Frame, t: FloatArray, y: FloatArray) -> tuple[list[float], list[float]]:
    xs = (f.left + f.width * (t / f.span_s)).tolist()
    ys = (f.top + f.height * (1 - (y - f.y_lo) / (f.y_hi - f.y_lo))).tolist()
    return xs, ys


def _points(f: _Frame, t: FloatArray, y: FloatArray) -> str:
    return " ".join(f"{_fmt(a)},{_fmt(b)}" for a, b in zip(*_xy(f, t, y), strict=True))


def _y_grid(f: _Frame, ticks: tuple[float, ...], y_div: float, suffix: str) -> list[str]:
    out: list[str] = []
    step = ticks[1] - ticks[0] if len(ticks) >= 2 else 1.0
    for v in ticks:
        y = _fmt(f.y(v))
        label = tick_label(v / y_div, step / y_div) + (suffix if v else "")
        out.append(f'<line class="grid" x1="{f.left}" x2="{f.right}" y1="{y}" y2="{y}"/>')
        out.append(
            f'<text class="tick" x="{f.left - 8}" y="{_fmt(f.y(v) + 4)}" text-anchor="end">'
            f"{label}</text>"
        )
    return out


def _x_axis(f: _Frame, height: int) -> list[str]:
    t_div, t_unit = time_unit(f.span_s)
    step = nice_step(f.span_s / t_div, 6)
    out: list[str] = []
    for tv in nice_ticks(0, f.span_s / t_div, 6):
        if tv * t_div > f.span_s * (1 + 1e-9):
            break
        x = _fmt(f.x(tv * t_div))
        out.append(f'<line class="xtick" x1="{x}" x2="{x}" y1="{f.bottom}" y2="{f.bottom + 5}"/>')
        out.append(
            f'<text class="tick" x="{x}" y="{f.bottom + 18}" text-anchor="middle">'
            f"{tick_label(tv, step)}</text>"
        )
    out.append(f'<line class="axis" x1="{f.left}" x2="{f.right}" y1="{f.bottom}" y2="{f.bottom}"/>')
    out.append(
        f'<text class="axis-title" x="{_fmt(f.left + f.width / 2)}" y="{height - 6}"'
        f' text-anchor="middle">time since start ({t_unit})</text>'
    )
    return out


def _rules(f: _Frame, rules: tuple[Rule, ...]) -> list[str]:
    out: list[str] = []
    for r in rules:
        if not math.isfinite(r.value):
            continue
        if r.axis == "x":
            x = _fmt(f.x(min(max(r.value, 0.0), f.span_s)))
            coords = f'x1="{x}" x2="{x}" y1="{f.top}" y2="{f.bottom}"'
        else:
            y = _fmt(f.y(r.value))
            coords = f'x1="{f.left}" x2="{f.right}" y1="{y}" y2="{y}"'
        out.append(f'<line class="rule {escape(r.css)}" {coords}/>')
    return out


def _rule_labels(f: _Frame, rules: tuple[Rule, ...]) -> list[str]:
    """Labels outside the clip path, so they are never cut off; close ones do not overlap."""
    out: list[str] = []
    last_y: float | None = None
    y_rules = sorted(
        (r for r in rules if r.axis == "y" and math.isfinite(r.value) and r.label),
        key=lambda r: f.y(r.value),
    )
    for r in y_rules:
        y = f.y(r.value) - 5  # above its line ...
        if last_y is not None and y - last_y < 14:
            y = f.y(r.value) + 14  # ... or below it, when the label above is too close
        last_y = y
        out.append(
            f'<text class="rule-label {escape(r.css)}" x="{f.right - 4}" y="{_fmt(y)}"'
            f' text-anchor="end">{escape(r.label)}</text>'
        )
    for r in rules:
        if r.axis == "x" and math.isfinite(r.value) and r.label:
            x = _fmt(f.x(min(max(r.value, 0.0), f.span_s)) + 4)
            out.append(
                f'<text class="rule-label {escape(r.css)}" x="{x}" y="{f.top + 12}">'
                f"{escape(r.label)}</text>"
            )
    return out


def _legend(chart: Chart, left: int) -> str:
    parts: list[str] = []
    x = float(left)
    for ln in chart.lines:
        dash = " dashed" if ln.dashed else ""
        parts.append(
            f'<line class="line {escape(ln.css)}{dash}" x1="{_fmt(x)}" x2="{_fmt(x + 18)}"'
            ' y1="14" y2="14"/>'
        )
        parts.append(f'<text class="legend" x="{_fmt(x + 24)}" y="18">{escape(ln.label)}</text>')
        x += 24 + len(ln.label) * _CHAR_PX + 18
    return "\n".join(parts)


def sparkline(points: Sequence[tuple[float, float]], width: int = 220, height: int = 44) -> Markup:
    """A small line with a filled area and an end dot, for a culprit's size over time."""
    if len(points) < 2:
        return Markup("")
    arr = np.asarray(points, dtype=np.float64)
    t, y = finite_xy(arr[:, 0], arr[:, 1])
    t, y = downsample_minmax(t, y, 400)
    if t.size < 2:
        return Markup("")
    t0, t1 = float(t[0]), float(t[-1])
    lo, hi = float(y.min()), float(y.max())
    lo = min(lo, 0.0) if lo < 0.25 * hi else lo
    tspan = (t1 - t0) or 1.0
    yspan = (hi - lo) or 1.0
    pad = 3.0

    def sx(v: float) -> float:
        return pad + (width - 2 * pad) * (v - t0) / tspan

    def sy(v: float) -> float:
        return pad + (height - 2 * pad) * (1 - (v - lo) / yspan)

    pts = " ".join(
        f"{_fmt(sx(a))},{_fmt(sy(b))}" for a, b in zip(t.tolist(), y.tolist(), strict=True)
    )
    base = _fmt(sy(lo))
    area = f"{_fmt(sx(t0))},{base} {pts} {_fmt(sx(t1))},{base}"
    return Markup(
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        ' xmlns="http://www.w3.org/2000/svg" aria-hidden="true">'
        f'<polygon class="spark-area" points="{area}"/>'
        f'<polyline class="spark-line" points="{pts}"/>'
        f'<circle class="spark-end" cx="{_fmt(sx(t1))}" cy="{_fmt(sy(float(y[-1])))}" r="2.5"/>'
        "</svg>"
    )


def format_value(value: float, kind: YKind) -> str:
    """A value in a chart's unit, for captions next to it."""
    if kind == "bytes":
        return units.format_bytes(value)
    if kind == "seconds":
        return units.format_duration(value) if value >= 1 else f"{value * 1000:.3g} ms"
    return units.format_count(value)

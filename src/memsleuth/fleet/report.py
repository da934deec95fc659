"""The fleet as one self-contained HTML page: the worst offenders' plots and the growth rates.

Every text from Prometheus (labels) is escaped by jinja2's autoescape; SVG is built here.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import jinja2
import numpy as np
from markupsafe import Markup

from memsleuth import units
from memsleuth.fleet.judging import FleetEntry
from memsleuth.fleet.scan import ScanResult, ScanSpec, matchers


@dataclass(frozen=True, slots=True)
class FleetReportOptions:
    plots: int = 12  # worst offenders plotted
    rows: int = 500  # rows of the ranked table
    title: str = "memsleuth fleet report"


def label_text(entry: FleetEntry, *, with_name: bool = True, omit: Collection[str] = ()) -> str:
    """The series' labels as a PromQL selector, without the labels in `omit`."""
    d = {k: v for k, v in entry.label_dict.items() if k not in omit}
    name = d.pop("__name__", "") if with_name else ""
    d.pop("__name__", None)
    # Values quoted and escaped as in PromQL: a quote or a newline in a value had printed a
    # selector that could not be pasted back (and split a table row over two lines).
    inner = matchers(sorted(d.items()))
    return name if name and not inner else f"{name}{{{inner}}}"


def _pts(xs: Sequence[float], ys: Sequence[float]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))


def series_svg(entry: FleetEntry, width: int = 440, height: int = 150) -> Markup:
    """Memory over time, the judged segment shaded, the fitted trend dashed."""
    t, y = entry.plot_t, entry.plot_y
    if t.size < 2:
        return Markup("")
    pad_l, pad_b, pad_t = 62.0, 20.0, 8.0
    t0, t1 = float(t[0]), float(t[-1]) if t[-1] > t[0] else float(t[0]) + 1
    lo, hi = float(np.min(y)), float(np.max(y))
    if hi <= lo:
        hi = lo + 1.0
    pw, ph = width - pad_l - 6, height - pad_b - pad_t

    def sx(v: float) -> float:
        return pad_l + pw * (v - t0) / (t1 - t0)

    def sy(v: float) -> float:
        return pad_t + ph * (1 - (v - lo) / (hi - lo))

    parts = [
        f'<svg viewBox="0 0 {width} {height}" class="plot" xmlns="http://www.w3.org/2000/svg">'
    ]
    right = pad_l + pw  # the judged span, clipped to the plot (its last bucket ends early)
    seg = min(sx(max(entry.segment_start_s, t0)), right)
    seg_end = min(sx(entry.segment_end_s), right) if math.isfinite(entry.segment_end_s) else right
    seg_end = max(seg_end, seg)
    parts.append(
        f'<rect class="seg" x="{seg:.1f}" y="{pad_t}" width="{seg_end - seg:.1f}" height="{ph}"/>'
    )
    for v in (lo, hi):
        parts.append(
            f'<text class="tick" x="{pad_l - 4}" y="{sy(v) + 4:.1f}" text-anchor="end">'
            f"{units.format_bytes(v)}</text>"
        )
    span = units.format_duration(t1 - t0)
    parts.append(
        f'<text class="tick" x="{pad_l + pw:.1f}" y="{height - 4}" text-anchor="end">{span}</text>'
    )
    parts.append(f'<polyline class="mem" points="{_pts([sx(a) for a in t], [sy(b) for b in y])}"/>')
    tr = entry.verdict.trend if entry.verdict else None
    if tr is not None and math.isfinite(tr.slope_bytes_per_s):
        a = entry.segment_start_s + tr.t0_s
        b = entry.segment_start_s + tr.t1_s
        ya = tr.intercept_bytes
        yb = tr.intercept_bytes + tr.slope_bytes_per_s * (tr.t1_s - tr.t0_s)
        if all(math.isfinite(v) for v in (a, b, ya, yb)):
            ya, yb = min(max(ya, lo), hi), min(max(yb, lo), hi)
            parts.append(
                f'<line class="trend" x1="{sx(a):.1f}" x2="{sx(b):.1f}" '
                f'y1="{sy(ya):.1f}" y2="{sy(yb):.1f}"/>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def histogram_svg(entries: Sequence[FleetEntry], width: int = 900, height: int = 220) -> Markup:
    """How many series grow how fast: MiB/h on a signed log axis, leaks in their own colour."""
    rates = [
        (e.verdict.growth_bytes_per_hour or 0.0, e.verdict.is_problem)
        for e in entries
        if e.verdict is not None
        and e.verdict.growth_bytes_per_hour is not None
        and math.isfinite(e.verdict.growth_bytes_per_hour)
    ]
    if not rates:
        return Markup("")
    # Signed log10(1 + KiB/h): 3 is 1 MiB/h, 6 is 1 GiB/h, either way; beyond 7 is clipped.
    edges = np.linspace(-7, 7, 29)
    vals = np.array([math.copysign(math.log10(1 + abs(r) / 1024), r) for r, _ in rates])
    vals = np.clip(vals, edges[0], edges[-1] - 1e-9)
    prob = np.array([p for _, p in rates])
    h_all, _ = np.histogram(vals, edges)
    h_bad, _ = np.histogram(vals[prob], edges)
    top = max(1, int(h_all.max()))
    pad_b, pad_t = 34.0, 10.0
    bw = (width - 20) / (len(edges) - 1)
    ph = height - pad_b - pad_t
    parts = [
        f'<svg viewBox="0 0 {width} {height}" class="hist" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, (n, nb) in enumerate(zip(h_all.tolist(), h_bad.tolist(), strict=True)):
        x = 10 + i * bw
        for count, css in ((n, "bar"), (nb, "bar bad")):
            if count:
                hh = ph * math.sqrt(count / top)  # sqrt: a few leaks stay visible next to 10k
                parts.append(
                    f'<rect class="{css}" x="{x:.1f}" y="{pad_t + ph - hh:.1f}" '
                    f'width="{bw - 1:.1f}" height="{hh:.1f}"><title>{count}</title></rect>'
                )
    for v, text in ((-6, "-1 GiB/h"), (-3, "-1 MiB/h"), (0, "0"), (3, "+1 MiB/h"), (6, "+1 GiB/h")):
        x = 10 + (v - edges[0]) / (edges[-1] - edges[0]) * (width - 20)
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{height - 12}" text-anchor="middle">{text}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ opts.title }}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse}td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left}
.num{text-align:right;font-variant-numeric:tabular-nums}
.v-leak,.v-thread-leak,.v-task-leak,.v-fd-leak,.v-fragmentation,.v-degradation{color:#b00020;font-weight:600}
.v-inconclusive{color:#8a6d00}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(440px,1fr));gap:16px}
.card{border:1px solid #ddd;padding:8px}.card h3{font-size:13px;margin:0 0 4px;word-break:break-all}
svg text{font-size:11px;fill:#555}.mem{fill:none;stroke:#1f5fbf;stroke-width:1.2}
.trend{stroke:#b00020;stroke-dasharray:5 3;stroke-width:1.5}.seg{fill:#f2f6fc}
.bar{fill:#9bb7e0}.bar.bad{fill:#b00020}.warn{color:#b00020}
</style></head><body>
<h1>{{ opts.title }}</h1>
<p>Query <code>{{ spec.query }}</code> from {{ start }} to {{ end }} at {{ step }} steps
{%- if spec.aggregate %} (each point the mean of the step's samples){% endif %}:
{{ result.entries|length }} series, {{ result.judged|length }} judged
{%- for name, n in counts %}, {{ n }} {{ name }}{% endfor %}.</p>
{% for f in result.failures %}<p class="warn">batch {{ f.index + 1 }} failed
({{ f.series }} series): {{ f.message }}</p>{% endfor %}
<h2>Growth rates</h2>
<p>Series per growth rate of the judged segment (red: a problem verdict).</p>
{{ hist }}
<h2>Worst offenders</h2>
<div class="grid">{% for e, svg, row in plots %}<div class="card">
<h3>{{ loop.index }}. <span class="v-{{ row.verdict }}">{{ row.verdict }}</span>
{{ row.rate }}{% if row.ttl == "gone" %}, gone{% elif row.ttl == "past it" %}, past the
limit{% elif row.ttl != "n/a" %}, limit in {{ row.ttl }}{% endif %}</h3>
<div>{{ row.labels }}</div>{{ svg }}</div>{% endfor %}</div>
<h2>Ranked series</h2>
<table><tr><th>#</th><th>verdict</th><th class="num">growth/h</th><th class="num">to limit</th>
<th class="num">last</th><th class="num">restarts</th><th>series</th></tr>
{% for row in rows %}<tr><td class="num">{{ loop.index }}</td>
<td class="v-{{ row.verdict }}">{{ row.verdict }}</td><td class="num">{{ row.rate }}</td>
<td class="num">{{ row.ttl }}</td><td class="num">{{ row.last }}</td>
<td class="num">{{ row.restarts }}</td><td>{{ row.labels }}</td></tr>{% endfor %}
</table></body></html>
"""


def _row(e: FleetEntry) -> dict[str, object]:
    v = e.verdict
    return {
        "verdict": v.verdict if v else "error",
        "rate": units.format_rate(v.growth_bytes_per_hour if v else None),
        "ttl": "gone" if e.gone else units.format_time_to_limit(v.time_to_limit_s if v else None),
        "last": units.format_bytes(e.last_bytes),
        "restarts": e.restarts,
        "labels": label_text(e) + (f" ({e.error})" if e.error else ""),
    }


def render_html(result: ScanResult, spec: ScanSpec, opts: FleetReportOptions) -> str:
    import datetime as dt

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    worst = [e for e in result.entries if e.verdict is not None][: opts.plots]

    def iso(x: float) -> str:
        return dt.datetime.fromtimestamp(x, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    return env.from_string(_TEMPLATE).render(
        opts=opts,
        spec=spec,
        result=result,
        start=iso(spec.start),
        end=iso(spec.end),
        step=units.format_duration(spec.step_s),
        counts=sorted(result.counts().items(), key=lambda kv: -kv[1]),
        hist=histogram_svg(result.entries),
        plots=[(e, series_svg(e), _row(e)) for e in worst],
        rows=[_row(e) for e in result.entries[: opts.rows]],
    )

"""Small factories for the reporters' tests: a RunReport of a leak, built by hand (no analysis).

Imported as `tests.report_factories` by tests/unit/test_report*.py and
tests/integration/test_html_chromium.py (tests/ is a package).
"""

from __future__ import annotations

import numpy as np

from memsleuth.model import Culprit, Run, Series, Trend, Verdict
from memsleuth.reports.base import RunReport


def build_leak_report(
    *,
    command: tuple[str, ...] = ("./server", "--port", "8080"),
    culprit_name: str = "module app.dedup, global PROCESSED_SIGNATURES (dict)",
    n: int = 721,
    interval_s: float = 10.0,
    culprits: int = 3,
) -> RunReport:
    """A RunReport of a 2 h leak: RSS 80 MiB + 40 MiB/h with a GC sawtooth, threads, fds."""
    rng = np.random.default_rng(7)
    t = np.arange(n, dtype=np.float64) * interval_s
    mib = 1024.0 * 1024.0
    slope = 40 * mib / 3600
    warm = 60 * mib * (1 - np.exp(-t / 300))
    saw = 6 * mib * ((t % 120) / 120)
    rss = 20 * mib + warm + slope * t + saw + rng.normal(0, 0.5 * mib, n)
    threads = np.full(n, 8.0)
    threads[n // 2 :] = 9.0
    fds = 20 + np.floor(t / 1800)
    series = Series.from_arrays(
        t, rss, pss_bytes=rss * 0.9, uss_bytes=rss * 0.8, threads=threads, fds=fds
    )
    points = tuple((float(x), float(10_000 + 160 * x)) for x in t[::20])
    made = tuple(
        Culprit(
            name=culprit_name if i == 0 else f"module app.cache{i}, global CACHE{i} (list)",
            kind="container",
            growth=f"10,000 → {10_000 + 160 * int(t[-1]):,} entries, +9.6k/min",
            growth_per_hour=576_000.0 / (i + 1),
            unit="entries",
            share=(0.62, 0.24, 0.09, 0.05)[i % 4],
            evidence=(f"grew in {19 - i} of 20 snapshots",),
            bytes_estimate=(130 * mib) / (i + 1),
            points=points if i == 0 else tuple((x, y / (i + 1)) for x, y in points),
        )
        for i in range(culprits)
    )
    verdict = Verdict(
        verdict="leak",
        confidence=0.93,
        evidence=(
            "Theil–Sen slope of the post-GC floor: +40.1 MiB/h (95% CI +38.2 – +42.0 MiB/h)",
            "Mann–Kendall trend test with autocorrelation correction: p < 0.001",
            "no plateau: a saturating fit explains less than a line",
        ),
        growth_bytes_per_hour=40.1 * mib,
        growth_ci_bytes_per_hour=(38.2 * mib, 42.0 * mib),
        warmup_end_s=900.0,
        time_to_limit_s=5.2 * 3600,
        limit_bytes=512 * 1024 * 1024,
        would_change=("the floor stops rising for 30 min (then: plateau)",),
        trend=Trend(
            t0_s=900.0, t1_s=float(t[-1]), intercept_bytes=float(rss[90]), slope_bytes_per_s=slope
        ),
        culprits=made,
        samples=n,
        span_s=float(t[-1]),
    )
    run = Run(
        id=3,
        name="server",
        kind="record",
        command=command,
        pid=4242,
        host="build-01",
        started_at=1_700_000_000.0,
        ended_at=1_700_000_000.0 + float(t[-1]),
        exit_status=None,
        version="0.1.0",
        interval_s=interval_s,
        limit_bytes=512 * 1024 * 1024,
        sample_count=n,
    )
    return RunReport(run=run, series=series, verdict=verdict)

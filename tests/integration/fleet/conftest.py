"""A real Prometheus on loopback, backfilled with labelled series in the shared corpus format.

One instance per test session (per xdist worker; the tests share the "prometheus" group).
"""

from __future__ import annotations

import gzip
import json
import math
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

CORPUS = Path("/work/shared/corpus/series-dev.jsonl.gz")
STEP = 60.0
DAY = 86400


def needs(binary: str, why: str) -> None:
    """Skip when a Debian-packaged tool is missing - but under CI=true, fail instead."""
    if shutil.which(binary) is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{binary} is required under CI=true ({why}); .ci/run installs it")
        pytest.skip(f"{binary} not installed ({why})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def synthetic() -> list[dict[str, object]]:
    """Corpus-format series with known shapes, 24 h at 60 s, each tagged with its instance."""
    rng = np.random.default_rng(7)
    n = DAY // 60
    t = np.arange(n) * STEP
    h = t / 3600
    mib = 1024**2
    out: list[dict[str, object]] = []

    def add(instance: str, label: str, rss: np.ndarray) -> None:
        out.append({"id": instance, "label": label, "interval_s": STEP, "rss": rss.tolist()})

    add("leak-fast", "leak", 200 * mib + 60 * mib * h + rng.normal(0, 2 * mib, n))
    add("leak-slow", "leak", 500 * mib + 10 * mib * h + rng.normal(0, 2 * mib, n))
    add("saw", "stable", 300 * mib + (t % 600) / 600 * 100 * mib + rng.normal(0, mib, n))
    # A 5-minute sawtooth whose peaks grow and whose floor does not: a cache, not a leak. Faster
    # than a 3-minute step, so only the per-step floors (not the means) show its floor.
    peaks = (np.arange(n) % 5) / 4 * (40 * mib + 2 * mib * h)
    add("saw-fast", "stable", 300 * mib + peaks + rng.normal(0, 0.3 * mib, n))
    add("plateau", "plateau", 100 * mib + 300 * mib * (1 - np.exp(-h / 2)) + rng.normal(0, mib, n))
    add("stable", "stable", 150 * mib + rng.normal(0, 3 * mib, n))
    # Leaks 50 MiB/h and is restarted every 8 h: three segments, two restarts.
    add("restarter", "leak", 200 * mib + 50 * mib * (h % 8) + rng.normal(0, mib, n))
    # Busy and idle every 3 h (120 MiB of swing); the second also leaks 3 MiB/h, which each
    # idle phase hides: a leak only once the cycle is taken out.
    busy = 60 * mib * np.sign(np.sin(2 * np.pi * h / 3))
    add("cyclic", "stable", 400 * mib + busy + rng.normal(0, 2 * mib, n))
    add("cyclic-leak", "leak", 400 * mib + busy + 3 * mib * h + rng.normal(0, 2 * mib, n))
    nans = 150 * mib + rng.normal(0, mib, n)
    nans[::97] = np.nan
    add("nans", "stable", nans)
    return out


def daily() -> list[dict[str, object]]:
    """Two days at 60 s under a daily load cycle (±100 MiB on 500 MiB) that is rising fastest
    at the end; the second also leaks 1 MiB/h (5% a day)."""
    rng = np.random.default_rng(11)
    n = 2 * DAY // 60
    h = (np.arange(n) - (n - 1)) * STEP / 3600  # hours before the end
    mib = 1024**2
    cycle = 500 * mib + 100 * mib * np.sin(2 * np.pi * h / 24)
    rows = {"daily": cycle, "daily-leak": cycle + mib * (h - h[0])}
    return [
        {"id": k, "label": "stable" if k == "daily" else "leak", "interval_s": STEP, "rss": v}
        for k, v in ((k, (v + rng.normal(0, 2 * mib, n)).tolist()) for k, v in rows.items())
    ]


def lives() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """A day at 60 s of processes that export their start time, as every Prometheus client
    library does, and their start-time series:
    - `flusher`: its cache is flushed back to its first level every 6 hours (one life);
    - `restarter-hourly`: leaks 200 MiB/h, restarted every hour (more falls than the falls
      alone may call restarts); slow to start, its first scrape comes 5 minutes after its
      start, so Prometheus carries the old life's values over the gap;
    - `restarter-shallow`: leaks 40 MiB/h from 250 MiB, restarted every 6 hours: it falls to
      51% of its peak, not under half;
    - `deployed`: leaks 20 MiB/h from 400 MiB, restarted by a deploy every 10 hours: it falls
      by a sixth, and its last life is 4 hours old;
    - `restarted-late`: leaks 30 MiB/h all day, restarted 30 minutes before the end;
    - `flusher-jitter`: a cache flushed every 3 hours; its start time (from the kernel's boot
      time, to the second) is one second later for one hour in four."""
    rng = np.random.default_rng(5)
    n = DAY // 60
    t = np.arange(n) * STEP
    mib = 1024**2
    memory = {
        "flusher": 300 * mib + 700 * mib * (t % (6 * 3600)) / (6 * 3600),
        "restarter-hourly": 150 * mib + 200 * mib * (t % 3600) / 3600,
        "restarter-shallow": 250 * mib + 40 * mib * (t % (6 * 3600)) / 3600,
        "deployed": 400 * mib + 20 * mib * (t % (10 * 3600)) / 3600,
        "restarted-late": 300 * mib + 30 * mib * np.where(t < t[-1] - 1800, t, t - t[-1]) / 3600,
        "flusher-jitter": 300 * mib + 500 * mib * (t % (3 * 3600)) / (3 * 3600),
    }
    # Start times as offsets from the first sample (openmetrics() shifts times, not values).
    born = {
        "flusher": np.full(n, -3600.0),
        "restarter-hourly": t - t % 3600,
        "restarter-shallow": t - t % (6 * 3600),
        "deployed": t - t % (10 * 3600),
        "restarted-late": np.where(t < t[-1] - 1800, -60.0, t[-1] - 1800),
        "flusher-jitter": -7200.0 + ((t // 3600) % 4 == 1),
    }
    missed = (t % 3600 < 300) & (t >= 3600)  # restarter-hourly: not scraped yet
    rows, starts = [], []
    for k in memory:
        rss = (memory[k] + rng.normal(0, mib, n)).tolist()
        born_k = born[k].tolist()
        if k == "restarter-hourly":
            rss = [None if m else v for v, m in zip(rss, missed, strict=True)]
            born_k = [None if m else v for v, m in zip(born_k, missed, strict=True)]
        rows.append({"id": k, "label": "x", "interval_s": STEP, "rss": rss})
        starts.append({"id": k, "label": "x", "interval_s": STEP, "rss": born_k})
    return rows, starts


def scraped_every_15s() -> list[dict[str, object]]:
    """A day scraped every 15 s: 5-minute sawtooths, one whose floor is flat while its peaks
    grow 3 MiB/h (a cache), one whose floor leaks 5 MiB/h. A 60 s step samples each at one
    instant, rarely its trough."""
    rng = np.random.default_rng(3)
    n = DAY // 15
    t = np.arange(n) * 15.0
    h = t / 3600
    mib = 1024**2
    tooth = (t % 300) / 300
    rows = {
        "saw15-peaks": 300 * mib + tooth * (50 * mib + 3 * mib * h),
        "saw15-leak": 300 * mib + 5 * mib * h + tooth * 60 * mib,
    }
    return [
        {
            "id": k,
            "label": "x",
            "interval_s": 15.0,
            "rss": (v + rng.normal(0, 0.3 * mib, n)).tolist(),
        }
        for k, v in rows.items()
    ]


def corpus_picks() -> list[dict[str, object]]:
    """A few real corpus series sampled at 60 s, one per label."""
    picks: dict[str, dict[str, object]] = {}
    with gzip.open(CORPUS, "rt") as f:
        for line in f:
            row = json.loads(line)
            if row["interval_s"] == 60.0 and len(row["rss"]) <= 2880:
                picks.setdefault(row["label"], row)
    return list(picks.values())


def openmetrics(
    rows: list[dict[str, object]],
    end: float,
    metric: str = "process_resident_memory_bytes",
    offset: bool = False,
) -> str:
    """The series (each row with its `job`) as OpenMetrics text, each ending at `end`; missing
    samples are left out. `offset`: the values are seconds from the series' first sample."""
    lines = [f"# TYPE {metric} gauge"]
    for row in rows:
        rss = row["rss"]
        assert isinstance(rss, list)
        step = float(row["interval_s"])  # type: ignore[arg-type]
        start = end - (len(rss) - 1) * step
        labels = f'job="{row["job"]}",instance="{row["id"]}",kind="{row["label"]}"'
        for i, v in enumerate(rss):
            if v is None:
                continue
            v = float(v) + (start if offset else 0.0)
            value = "NaN" if math.isnan(v) else repr(v)
            lines.append(f"{metric}{{{labels}}} {value} {start + i * step:.0f}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Prom:
    url: str
    end: float  # where the backfilled series end (a few hours before now)
    exporter_port: int  # the port the live test's exporter must listen on
    data: Path


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prom]:
    needs("prometheus", "the fleet scan runs against a real Prometheus")
    needs("promtool", "backfilling history needs promtool")
    root = tmp_path_factory.mktemp("prom")
    data = root / "data"
    data.mkdir()
    end = math.floor((time.time() - 3 * 3600) / 60) * 60
    om = root / "series.om"
    memory, born = lives()
    jobs = {
        "app": synthetic(),
        "corpus": corpus_picks(),
        "daily": daily(),
        "lives": memory,
        "scrape15": scraped_every_15s(),
    }
    families = [
        openmetrics([dict(r, job=job) for job, rows in jobs.items() for r in rows], end),
        openmetrics(
            [dict(r, job="lives") for r in born], end, "process_start_time_seconds", offset=True
        ),
    ]
    om.write_text("".join(f.removesuffix("# EOF\n") for f in families) + "# EOF\n")
    subprocess.run(
        [
            "promtool",
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "-q",
            # One block per month instead of one per 2 h: backfilling is ~16x faster.
            "--max-block-duration=744h",
            str(om),
            str(data),
        ],
        check=True,
        capture_output=True,
    )
    port, exporter_port = free_port(), free_port()
    config = root / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: memsleuth\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{exporter_port}']\n"
    )
    log = (root / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            shutil.which("prometheus") or "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            "--storage.tsdb.retention.time=3650d",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((root / "prometheus.log").read_text()[-2000:])
            time.sleep(0.2)
        yield Prom(url, float(end), exporter_port, data)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()

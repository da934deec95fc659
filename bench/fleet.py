"""Fleet benchmark and rule calibration against a real local Prometheus.

    python bench/fleet.py        # scan 10,000 series x 7 days at 60 s (TSDB cached in bench/out)
    python bench/fleet.py rules  # score `memsleuth rules` and predict_linear on the corpus

`main()` and `score_rules()` return their numbers as dicts.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import math
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
CORPUS = Path(os.environ.get("MEMSLEUTH_CORPUS", "/work/shared/corpus/series-dev.jsonl.gz"))
METRIC = "process_resident_memory_bytes"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_prometheus(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    cfg = data.parent / "prometheus.yml"
    cfg.write_text("global:\n  scrape_interval: 1m\nscrape_configs: []\n")
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={cfg}",
            f"--storage.tsdb.path={data}",
            "--storage.tsdb.retention.time=3650d",
            f"--web.listen-address=127.0.0.1:{port}",
            "--query.max-samples=200000000",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("prometheus did not start")


def backfill(om_lines: object, data: Path) -> None:
    data.mkdir(parents=True, exist_ok=True)
    om = data.parent / "input.om"
    with om.open("w") as f:
        f.write(f"# TYPE {METRIC} gauge\n")
        for line in om_lines:  # type: ignore[attr-defined]
            f.write(line)
        f.write("# EOF\n")
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
    )
    om.unlink()


def _no_verdict(series: object) -> object:
    from memsleuth.model import Verdict

    return Verdict("stable", 1.0, ())


def _own_cpu(exclude: int) -> float:
    """CPU of this process and every process it started but `exclude` (Prometheus): reaped
    children, and live ones with what they reaped (the fork server and its judging processes)."""
    import psutil

    own = sum(
        r.ru_utime + r.ru_stime
        for r in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    )
    for child in psutil.Process().children(recursive=True):
        if child.pid == exclude:
            continue
        try:
            c = child.cpu_times()
        except psutil.Error:
            continue
        own += c.user + c.system + c.children_user + c.children_system
    return own


def _cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(
    series: int = 10_000,
    days: float = 7.0,
    step: float | None = None,
    concurrency: int = 2,
    jobs: int = 0,
    daily: bool = False,
) -> dict[str, float]:
    """Scan `series` x `days` of 60 s samples; where the time went, Prometheus vs memsleuth.

    `step=None` is `memsleuth fleet`'s default (per-step means past a day); `step=60` fetches
    every raw sample, as the scan did before. `daily`: every series swings +-20 MB a day (its
    own phase) and the leaks under it are small, 50 MB a week: what a fleet's memory looks like.
    """
    from memsleuth.fleet.scan import ScanSpec, plan_step, scan
    from memsleuth.sources.prometheus import PromConfig, PrometheusClient

    n = int(days * 1440)
    base = OUT / f"fleet-{series}x{n}{'-daily' if daily else ''}"
    data = base / "data"
    meta = base / "meta.json"
    if not meta.exists():
        shutil.rmtree(base, ignore_errors=True)
        end = math.floor((time.time() - 3 * 3600) / 3600) * 3600
        rng = np.random.default_rng(1)

        def lines() -> object:
            t = end - np.arange(n)[::-1] * 60
            for i in range(series):
                leak = i % 50 == 0  # one in fifty leaks
                rate = (0.3e6 if daily else 3e6) if leak else 0.0  # bytes an hour
                y = 2e8 + rate * np.arange(n) / 60 + rng.normal(0, 2e6, n)
                if daily:
                    y += 2e7 * np.sin(2 * np.pi * np.arange(n) / 1440 + rng.uniform(0, 6.3))
                lab = f'{METRIC}{{job="bench",instance="host{i // 10}:9100",pid="{i}"}}'
                yield "".join(f"{lab} {v:.0f} {ts:.0f}\n" for v, ts in zip(y, t, strict=True))

        started = time.perf_counter()
        backfill(lines(), data)
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps({"end": end, "backfill_s": time.perf_counter() - started}))
    end = json.loads(meta.read_text())["end"]
    proc, url = start_prometheus(data)
    try:
        client = PrometheusClient(PromConfig(url, timeout_s=600), pool_size=2)
        client.series(METRIC, end - 60, end)  # warm up: open the blocks
        prom_cpu0, self0 = _cpu_of(proc.pid), _own_cpu(proc.pid)
        step_s, aggregate = plan_step(days * 86400, step)
        spec = ScanSpec(
            METRIC,
            end - days * 86400,
            end,
            step_s,
            200,
            concurrency,
            aggregate=aggregate,
            jobs=jobs,
        )
        result = scan(client, spec)
        prom_cpu = _cpu_of(proc.pid) - prom_cpu0
        ours = _own_cpu(proc.pid) - self0  # with the judging processes
        # The same scan with a verdict that costs nothing: the wall time of fetching and
        # parsing alone, so what judging adds to the wall is measured, not inferred.
        client = PrometheusClient(PromConfig(url, timeout_s=600), pool_size=2)
        prom_cpu0, self0 = _cpu_of(proc.pid), _own_cpu(proc.pid)
        unjudged = scan(client, spec, judge=_no_verdict).timings["wall_s"]
        # ... and its CPU: the scan's own machinery (listing, fetching, parsing, restarts,
        # ranking) without the verdict that `analyze` shares.
        fetch_prom_cpu = _cpu_of(proc.pid) - prom_cpu0
        fetch_cpu = _own_cpu(proc.pid) - self0
        pages = _rule_pages(client, end, days) if daily else {}
    finally:
        proc.terminate()
        proc.wait()
    t = result.timings
    planted = {f"{i}" for i in range(0, series, 50)}
    leaks = {e.label_dict.get("pid") for e in result.judged if e.verdict.verdict == "leak"}  # type: ignore[union-attr]
    wall = t["wall_s"]
    out = {
        "series": float(len(result.entries)),
        "judged": float(len(result.judged)),
        "step_s": spec.step_s,
        "points_per_series": float(np.mean([e.samples for e in result.judged])),
        "leaks_planted": float(len(planted)),
        "leaks_found": float(len(leaks & planted)),
        "false_leaks": float(len(leaks - planted)),
        "failed_batches": float(len(result.failures)),
        "wall_s": wall,
        "series_per_s": len(result.entries) / wall,
        "prometheus_cpu_s": prom_cpu,
        "memsleuth_cpu_s": ours,
        # memsleuth's CPU over everyone's CPU spent on the scan.
        "memsleuth_cpu_share": ours / (ours + prom_cpu),
        # memsleuth's CPU over the wall time (one core's worth; parsing and judging overlap
        # the other batch's request, so this is an upper bound on the wall it adds).
        "memsleuth_cpu_per_wall": ours / wall,
        # Wall time with no request at Prometheus in flight: memsleuth alone on the clock.
        "memsleuth_only_wall_share": (wall - t["busy_s"]) / wall,
        # The share of the wall time that judging adds: (wall - wall without it) / wall.
        "fetch_only_wall_s": unjudged,
        "fetch_only_memsleuth_cpu_s": fetch_cpu,
        "fetch_only_prometheus_cpu_s": fetch_prom_cpu,
        "fetch_only_cpu_share": fetch_cpu / (fetch_cpu + fetch_prom_cpu),
        "verdict_cpu_ms_per_series": (ours - fetch_cpu) / max(1, len(result.judged)) * 1e3,
        "judging_wall_share": max(0.0, wall - unjudged) / wall,
        "parse_s": t["parse_s"],
        "judge_s": t["judge_s"],
        "requests": t["requests"],
        "answer_mb": t["bytes"] / 1e6,
    }
    planted_pids = {str(i) for i in range(0, series, 50)}
    for season, paged in pages.items():
        out[f"rule_{season}_false_pages"] = float(len(paged - planted_pids))
        out[f"rule_{season}_leaks_paged"] = float(len(paged & planted_pids))
    _print_scan(out)
    return out


def _rule_pages(client: object, end: float, days: float) -> dict[str, set[str]]:
    """The pids `memsleuth rules`' alert pages on at least once (`for` held, checked hourly)
    from the second day on, with the daily season check and without it."""
    from memsleuth.fleet.rules import RuleOptions, leak_expr
    from memsleuth.sources.prometheus import PrometheusClient

    assert isinstance(client, PrometheusClient)
    out: dict[str, set[str]] = {}
    for season in ("1d", None):
        opts = RuleOptions(metric=METRIC, season=season)
        cond = f"count_over_time(({leak_expr(opts)})[30m:1m]) >= 30"
        start = end - (days - 1) * 86400 + 3600
        got = client.query_range(cond, start, end, 3600.0)
        out[season or "none"] = {s.label_dict["pid"] for s in got if s.t.size}
    return out


def _print_scan(r: dict[str, float]) -> None:
    """The figures side by side: where the scan's time went, Prometheus vs memsleuth."""
    print(
        f"scan of {r['series']:,.0f} series, {r['points_per_series']:.0f} points each "
        f"(step {r['step_s']:.0f} s, {r['answer_mb']:.0f} MB of JSON in {r['requests']:.0f} "
        f"requests)\n"
        f"  wall {r['wall_s']:.1f} s ({r['series_per_s']:,.0f} series/s); the same scan with a "
        f"free verdict {r['fetch_only_wall_s']:.1f} s: judging adds "
        f"{r['judging_wall_share']:.0%} of the wall\n"
        f"  CPU: Prometheus {r['prometheus_cpu_s']:.1f} s, memsleuth {r['memsleuth_cpu_s']:.1f} s "
        f"(memsleuth's share {r['memsleuth_cpu_share']:.0%}; target 20%); wall with only "
        f"memsleuth at work {r['memsleuth_only_wall_share']:.0%}\n"
        f"  without the verdict: Prometheus {r['fetch_only_prometheus_cpu_s']:.1f} s, memsleuth "
        f"{r['fetch_only_memsleuth_cpu_s']:.2f} s (share {r['fetch_only_cpu_share']:.0%}); the "
        f"verdict costs {r['verdict_cpu_ms_per_series']:.2f} ms a series\n"
        f"  leaks found {r['leaks_found']:.0f} of {r['leaks_planted']:.0f}, false "
        f"{r['false_leaks']:.0f}, failed batches {r['failed_batches']:.0f}"
        + "".join(
            f"\n  `memsleuth rules` --season {season}: pages on "
            f"{r[f'rule_{season}_false_pages']:.0f} series that do not leak and "
            f"{r[f'rule_{season}_leaks_paged']:.0f} of {r['leaks_planted']:.0f} leaks"
            for season in ("1d", "none")
            if f"rule_{season}_false_pages" in r
        ),
        flush=True,
    )


def _corpus() -> list[dict[str, object]]:
    with gzip.open(CORPUS, "rt") as f:
        return [json.loads(line) for line in f]


def score_rules() -> dict[str, dict[str, float]]:
    """The corpus README's streaming protocol, evaluated by Prometheus itself at checkpoints."""
    from memsleuth.fleet.rules import RuleOptions, leak_expr
    from memsleuth.sources.prometheus import PromConfig, PrometheusClient

    rows = _corpus()
    base = OUT / "corpus-tsdb"
    end = None
    if (base / "meta.json").exists():
        end = json.loads((base / "meta.json").read_text())["end"]
    else:
        shutil.rmtree(base, ignore_errors=True)
        end = math.floor((time.time() - 3 * 3600) / 60) * 60

        def lines() -> object:
            for r in rows:
                step = float(r["interval_s"])  # type: ignore[arg-type]
                rss = r["rss"]
                start = end - (len(rss) - 1) * step  # type: ignore[arg-type]
                for i, v in enumerate(rss):  # type: ignore[arg-type]
                    if v is not None:
                        yield f'{METRIC}{{instance="{r["id"]}"}} {v} {start + i * step:.3f}\n'

        backfill(lines(), base / "data")
        (base / "meta.json").write_text(json.dumps({"end": end}))
    proc, url = start_prometheus(base / "data")
    client = PrometheusClient(PromConfig(url, timeout_s=120))
    variants: dict[str, object] = {
        "predict_linear(rss[1h], 4h) > 1.5 x first-hour median": "baseline",
    }
    for window, for_, g, season in (
        ("15m", "30m", 0.01, "1d"),
        ("15m", "30m", 0.01, None),
        ("15m", "30m", 0.02, "1d"),
        ("10m", "30m", 0.02, "1d"),
        ("30m", "30m", 0.02, "1d"),
        ("5m", "15m", 0.02, "1d"),
        ("2m", "5m", 0.02, "1d"),
    ):
        name = f"memsleuth rules --window {window} --for {for_} --min-growth {g}"
        variants[name + f" --season {season or 'none'}"] = RuleOptions(
            window=window, for_=for_, min_growth=g, season=season
        )
    results: dict[str, dict[str, float]] = {}
    try:
        for name, variant in variants.items():
            fa = fa_n = rec = rec_n = 0
            delays: list[float] = []
            for r in rows:
                step = float(r["interval_s"])  # type: ignore[arg-type]
                n = len(r["rss"])  # type: ignore[arg-type]
                span = (n - 1) * step
                start = end - span
                sel = f'{METRIC}{{instance="{r["id"]}"}}'
                if variant == "baseline":
                    ref = start + min(3600.0, span)
                    cond = (
                        f"predict_linear({sel}[1h], 14400) > 1.5 * "
                        f"quantile_over_time(0.5, {sel}[1h] @ {ref:.3f})"
                    )
                else:
                    assert isinstance(variant, RuleOptions)
                    from memsleuth.units import parse_duration

                    opts = dataclasses.replace(variant, metric=sel)
                    f = int(parse_duration(variant.for_) / 60)
                    cond = f"count_over_time(({leak_expr(opts)})[{variant.for_}:1m]) >= {f}"
                cps = [start + c / 100 * span for c in range(10, 101, 5)]
                got = client.query_range(cond, cps[0], cps[-1], 0.05 * span)
                fired = set()
                for s in got:
                    for tt in s.t.tolist():
                        fired.add(round((tt - start) / span * 100))
                label = r["label"]
                meta = r["meta"]
                assert isinstance(meta, dict)
                if label in ("plateau", "stable", "step"):
                    fa_n += 1
                    settled = float(r.get("settled_s") or 0.0)  # type: ignore[arg-type]
                    late = [
                        c
                        for c in range(10, 101, 5)
                        if c / 100 * span >= settled + 0.15 * span or c == 100
                    ]
                    fa += any(c in fired for c in late)
                elif label == "leak" and meta.get("snr", 0) >= 5:
                    rec_n += 1
                    if 100 in fired:
                        rec += 1
                        onset = float(r.get("onset_s") or 0.0)  # type: ignore[arg-type]
                        first = 100
                        for c in range(100, 9, -5):
                            if c not in fired or c / 100 * span < onset:
                                break
                            first = c
                        delays.append((first / 100 * span - onset) / max(span - onset, 1.0))
            results[name] = {
                "false_alarms": fa / fa_n,
                "recall": rec / rec_n,
                "median_delay": float(np.median(delays)) if delays else math.nan,
                "non_leaks": float(fa_n),
                "detectable_leaks": float(rec_n),
            }
            print(f"{name}: {results[name]}", flush=True)
    finally:
        proc.terminate()
        proc.wait()
    return results


if __name__ == "__main__":
    if sys.argv[1:] == ["rules"]:
        print(json.dumps(score_rules(), indent=1))
    else:
        print(json.dumps(main(), indent=1))

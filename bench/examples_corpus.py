"""Record the bundled examples for real and write them as a labelled corpus (the shared format),
so `bench/verdicts.py` scores memsleuth and the baseline rules on real programs too.

    python bench/examples_corpus.py [OUT.jsonl]     # default bench/out/examples.jsonl
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXAMPLES = ROOT / "examples"
SECONDS = 120
INTERVAL_S = 1.0

# name -> (label, argv builder, onset_s or settled_s). Times come from each program's own
# description: the leaks leak from their first second; the caches fill within ~10 s.
PY = sys.executable
TARGETS: dict[str, tuple[str, list[str], float]] = {
    "seed003-dedup": ("leak", [PY, str(EXAMPLES / "seed003_dedup.py")], 0.0),
    "seed000-slow-consumer": ("leak", [PY, str(EXAMPLES / "seed000_slow_consumer.py")], 20.0),
    "bounded-cache": ("plateau", [PY, str(EXAMPLES / "bounded_cache.py")], 10.0),
    "gc-sawtooth": ("stable", [PY, str(EXAMPLES / "gc_sawtooth.py")], 3.0),
    # 16 s cycles: at a sample a second, 2 minutes are 60 bins of two, and such a cycle spans
    # eight of them (taken out of the bins; a 4 s one is averaged inside them).
    "busy-idle": ("stable", [PY, str(EXAMPLES / "busy_idle.py"), "--period", "16"], 8.0),
    "busy-idle-leak": (
        "leak",
        [PY, str(EXAMPLES / "busy_idle.py"), "--leak", "--period", "16"],
        0.0,
    ),
    "frame-processor": ("leak", ["{bin}/frame_processor"], 0.0),
    "native-cache": ("plateau", ["{bin}/native_cache"], 10.0),
}


def record_all(out: Path) -> Path:
    from memsleuth.store import Store

    with tempfile.TemporaryDirectory() as d:
        bins = Path(d)
        for c in ("frame_processor", "native_cache"):
            subprocess.run(
                ["gcc", "-O2", "-o", str(bins / c), str(EXAMPLES / f"{c}.c")], check=True
            )
        db = bins / "examples.db"
        procs = []
        for name, (_label, argv, _when) in TARGETS.items():
            cmd = [a.format(bin=bins) for a in argv]
            procs.append(
                subprocess.Popen(
                    [
                        PY,
                        "-m",
                        "memsleuth",
                        "record",
                        "-q",
                        "--store",
                        str(db),
                        "--name",
                        name,
                        "--interval",
                        str(INTERVAL_S),
                        "--duration",
                        str(SECONDS),
                        "--",
                        *cmd,
                    ],
                )
            )
        for p in procs:
            p.wait()
        lines = []
        with Store(db, readonly=True) as store:
            for name, (label, _argv, when) in TARGETS.items():
                series = store.load_series(store.get_run(name).id)
                row = {
                    "id": name,
                    "label": label,
                    "interval_s": INTERVAL_S,
                    "rss": [int(x) for x in series.rss],
                    "threads": [int(x) for x in series.columns["threads"]],
                    "onset_s": when if label == "leak" else None,
                    "settled_s": None if label == "leak" else when,
                    "meta": {"snr": 100.0, "base_bytes": int(series.rss[0]), "source": "examples/"},
                }
                lines.append(json.dumps(row))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return out


def main(argv: list[str] | None = None) -> Path:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else HERE / "out" / "examples.jsonl"
    print(f"recording {len(TARGETS)} examples for {SECONDS} s each, side by side ...", flush=True)
    return record_all(out)


if __name__ == "__main__":
    print(main())

"""`make demo`: record three bundled examples side by side, judge them, write HTML reports.

About a minute: a Python dedup map that leaks (seed 003), a bounded cache that plateaus, and a
C frame processor that leaks a header on an error path (seed 002), all into one SQLite store.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-out"
SECONDS = 40


def memsleuth(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "memsleuth", *args], check=check)


def main() -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    (OUT / "bin").mkdir(parents=True)
    store = str(OUT / "memsleuth.db")
    frames = OUT / "bin" / "frame_processor"
    subprocess.run(
        ["gcc", "-O2", "-o", str(frames), str(ROOT / "examples" / "frame_processor.c")],
        check=True,
    )
    py = sys.executable
    targets = {
        "seed003-dedup": ["run", "--", py, "examples/seed003_dedup.py"],
        "bounded-cache": ["run", "--", py, "examples/bounded_cache.py"],
        "seed002-frames": [
            "record",
            "--work-file",
            str(OUT / "frames.count"),
            "--",
            str(frames),
            str(OUT / "frames.count"),
        ],
    }
    print(f"memsleuth demo: recording {len(targets)} programs for {SECONDS} s each, side by side")
    procs = []
    for name, (cmd, *rest) in targets.items():
        args = [
            cmd,
            "--store",
            store,
            "--name",
            name,
            "--interval",
            "0.5",
            "--duration",
            str(SECONDS),
            "-q",
            *rest,
        ]
        procs.append(subprocess.Popen([py, "-m", "memsleuth", *args], cwd=ROOT))
    for p in procs:
        p.wait()
    memsleuth("runs", "--store", store)
    for name in targets:
        print()
        memsleuth("analyze", name, "--store", store, check=False)
        memsleuth(
            "report", name, "--store", store, "--format", "html", "-o", str(OUT / f"{name}.html")
        )
    print(f"\nmemsleuth demo: HTML reports are in {OUT}/ (open {OUT / 'seed003-dedup.html'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

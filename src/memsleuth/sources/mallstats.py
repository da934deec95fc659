"""A native program's allocator, read from inside it (`memsleuth record --malloc-stats`).

From outside, memory glibc keeps after `free` (per-thread arenas, pages pinned by a few live
blocks) is RSS like any other: a program whose in-use bytes stayed at 10.7 MiB while RSS went
from 54 to 207 MiB read as a leak. A small shared object (native/mallstats.c), loaded with
LD_PRELOAD, writes glibc's mallinfo2() every interval to a file the recorder reads beside RSS:
its free and in-use bytes become the same `native:malloc_free` and `native:malloc_inuse` points
the Python probe writes, and the verdict tells fragmentation from a leak for C, C++, Rust, Zig
(on glibc) as for Python.

It is built with the C compiler on first use, into the user's cache, once per version of its
source.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from memsleuth.errors import MemsleuthError

SOURCE = Path(__file__).with_name("native") / "mallstats.c"
DIR_ENV = "MEMSLEUTH_MALLSTATS_DIR"
INTERVAL_ENV = "MEMSLEUTH_MALLSTATS_INTERVAL"


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "memsleuth"


def build(cache_dir: Path | None = None) -> Path:
    """The shared object, compiled now unless this version of it already was."""
    source = SOURCE.read_bytes()
    out_dir = cache_dir or _cache_dir()
    out = out_dir / f"mallstats-{hashlib.sha256(source).hexdigest()[:16]}.so"
    if out.is_file():
        return out
    cc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    if cc is None:
        raise MemsleuthError(
            "--malloc-stats needs a C compiler to build its allocator reader",
            "install gcc (Debian: apt-get install gcc), or record without --malloc-stats",
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".so")
        os.close(fd)
    except OSError as exc:
        raise MemsleuthError(
            f"cannot write the allocator reader to {out_dir}: {exc.strerror}",
            "set XDG_CACHE_HOME to a writable directory",
        ) from exc
    done = subprocess.run(
        [cc, "-O2", "-shared", "-fPIC", "-o", tmp, str(SOURCE), "-lpthread"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        os.unlink(tmp)
        first = (done.stderr.strip().splitlines() or ["no message"])[0]
        raise MemsleuthError(
            f"could not build the allocator reader: {first}",
            "it needs glibc 2.33 or later (mallinfo2); record without --malloc-stats",
        )
    os.replace(tmp, out)
    return out


def preload_env(shim: Path, stats_dir: Path, interval_s: float) -> dict[str, str]:
    """What the target's environment gets: the shim first in LD_PRELOAD, where to write."""
    preload = os.environ.get("LD_PRELOAD", "")
    return {
        "LD_PRELOAD": f"{shim} {preload}".strip(),
        DIR_ENV: str(stats_dir),
        INTERVAL_ENV: f"{interval_s:g}",
    }


def read(stats_dir: Path, pid: int) -> tuple[float, float] | None:
    """What malloc holds in `pid`, as last written: the bytes free inside its arenas
    (mallinfo2's fordblks) and the bytes in use (uordblks, plus hblkhd: blocks mmapped on their
    own). None before the first write, or when the target does not use glibc's malloc."""
    try:
        fields = (stats_dir / f"mallstats.{pid}").read_text().split()
        return float(fields[0]), float(fields[1]) + float(fields[2])
    except (OSError, ValueError, IndexError):
        return None

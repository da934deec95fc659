"""This process's own memory, read cheaply for the watchdog: RSS, cgroup usage and limit."""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

# cgroup v1 reports "no limit" as a page-rounded 2**63 - 1; anything this large means none.
UNLIMITED = 1 << 60


@dataclass(frozen=True, slots=True)
class MemoryReading:
    """One look at this process: its RSS, and its cgroup's usage and limit when it has them."""

    rss_bytes: int
    cgroup_bytes: int | None = None
    cgroup_limit_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class CgroupFiles:
    """The files holding the memory usage and limit of the cgroup this process is in."""

    current: Path
    limit: Path
    version: int


def find_cgroup_files(proc: Path = Path("/proc/self")) -> CgroupFiles | None:
    """cgroup v2 memory.current/memory.max, else v1 memory.usage/limit_in_bytes, else None."""
    try:
        memberships = (proc / "cgroup").read_text().splitlines()
        mounts = (proc / "mountinfo").read_text().splitlines()
    except OSError:
        return None
    for version in (2, 1):
        for line in memberships:
            hier, _, rest = line.partition(":")
            controllers, _, path = rest.partition(":")
            if version == 2 and not (hier == "0" and controllers == ""):
                continue
            if version == 1 and "memory" not in controllers.split(","):
                continue
            for directory in _candidate_dirs(mounts, version, path):
                names = (
                    ("memory.current", "memory.max")
                    if version == 2
                    else ("memory.usage_in_bytes", "memory.limit_in_bytes")
                )
                current, limit = directory / names[0], directory / names[1]
                if current.is_file():
                    return CgroupFiles(current, limit, version)
    return None


def _candidate_dirs(mounts: list[str], version: int, path: str) -> list[Path]:
    dirs: list[Path] = []
    for line in mounts:
        fields, _, tail = line.partition(" - ")
        parts, fs = fields.split(), tail.split()
        if len(parts) < 5 or len(fs) < 3:
            continue
        if version == 2 and fs[0] != "cgroup2":
            continue
        if version == 1 and not (fs[0] == "cgroup" and "memory" in fs[2].split(",")):
            continue
        root, mount_point = parts[3], Path(parts[4])
        relative = os.path.relpath(path, root) if path.startswith(root) else path.lstrip("/")
        dirs.append(mount_point / relative if relative != "." else mount_point)
        # In a container the cgroup namespace may show the host's path: its mount is ours.
        dirs.append(mount_point)
    return dirs


class MemoryReader:
    """Reads this process's memory with one pread per file, keeping the files open."""

    def __init__(self, cgroup: CgroupFiles | bool | None = True) -> None:
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._statm = _open("/proc/self/statm")
        files = find_cgroup_files() if cgroup is True else (cgroup or None)
        self.cgroup = files
        self._current = _open(files.current) if files else None
        self._limit = _open(files.limit) if files else None
        self._psutil_process: object | None = None

    def rss_bytes(self) -> int:
        if self._statm is not None:
            # statm's second field is resident pages: cheaper than parsing /proc/self/status.
            return int(os.pread(self._statm, 128, 0).split()[1]) * self._page
        import psutil  # only where /proc is missing (macOS, Windows)

        if self._psutil_process is None:
            self._psutil_process = psutil.Process()
        rss: int = self._psutil_process.memory_info().rss  # type: ignore[attr-defined]
        return rss

    def read(self) -> MemoryReading:
        current = _read_int(self._current)
        limit = _read_int(self._limit)
        if limit is not None and limit >= UNLIMITED:
            limit = None
        return MemoryReading(self.rss_bytes(), current, limit)

    def close(self) -> None:
        for fd in (self._statm, self._current, self._limit):
            if fd is not None:
                os.close(fd)
        self._statm = self._current = self._limit = None

    def __call__(self) -> MemoryReading:
        return self.read()

    def __del__(self) -> None:
        self.close()


def _open(path: str | Path) -> int | None:
    try:
        return os.open(path, os.O_RDONLY)
    except OSError:
        return None


def _read_int(fd: int | None) -> int | None:
    if fd is None:
        return None
    raw = os.pread(fd, 64, 0).strip()
    if raw == b"max":  # cgroup v2: no limit
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def find_malloc_trim(libname: str | None = None) -> Callable[[int], int] | None:
    """glibc's malloc_trim(pad) via ctypes; None where it does not exist (musl, macOS, Windows).

    `libname` None looks in the symbols already loaded into this process (the C library it runs
    on); the watchdog passes a name only in tests, to see the lookup fail.
    """
    try:
        lib = ctypes.CDLL(libname)
        trim = lib.malloc_trim
    except (OSError, AttributeError, TypeError) as exc:
        logger.debug("malloc_trim not available (%s): skipping it", exc)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def call(pad: int) -> int:
        return int(trim(pad))

    return call

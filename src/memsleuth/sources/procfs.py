"""Samples of any process from /proc and cgroupfs: cheap files always, costly ones on a budget."""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from memsleuth.errors import TargetError
from memsleuth.guards.memory import UNLIMITED, CgroupFiles, find_cgroup_files
from memsleuth.model import Sample
from memsleuth.sources.status import parse_status

log = logging.getLogger(__name__)

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")

# Share of one core that all costly reads (smaps_rollup, smaps) of one recorder may use
# together. smaps_rollup walks page tables (~18 ms per GiB of RSS): read at 1 Hz it alone would
# cost a core for a big target, so costly reads come round as often as this budget allows.
COSTLY_BUDGET = 0.003


class CostBudget:
    """Splits a share of a core between costly readers: each reads once per round, and a round
    lasts as long as the readers' summed cost divided by the share."""

    def __init__(self, fraction: float = COSTLY_BUDGET) -> None:
        self.fraction = fraction
        self._costs: dict[tuple[int, str], float] = {}
        self._total = 0.0  # kept up to date: summing per call would cost O(readers²) a round

    def delay_after(self, key: tuple[int, str], cost_s: float) -> float:
        self._total += cost_s - self._costs.get(key, 0.0)
        self._costs[key] = cost_s
        return self._total / self.fraction

    def forget(self, pid: int) -> None:
        for key in [k for k in self._costs if k[0] == pid]:
            self._total -= self._costs.pop(key)


@dataclass(frozen=True, slots=True)
class ProcIdentity:
    """A pid plus its start time: a pid reused by another process is told apart."""

    pid: int
    start_ticks: int
    name: str
    cmdline: tuple[str, ...]


# The kernel's flag for its own threads (include/linux/sched.h), field 9 of /proc/PID/stat.
PF_KTHREAD = 0x00200000


def identify(pid: int) -> ProcIdentity:
    """The identity of a live process, or a TargetError saying why it cannot be watched."""
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            stat = (PROC / str(pid) / "stat").read_text()
            name = proc.name()
            try:
                cmdline = tuple(proc.cmdline())
            except psutil.AccessDenied:
                cmdline = ()
        after = stat[stat.rindex(")") + 2 :].split()
        if after[0] == "Z":
            raise psutil.ZombieProcess(pid)
        if int(after[6]) & PF_KTHREAD:
            raise TargetError(
                f"process {pid} ({name}) is a kernel thread: it has no memory of its own to watch",
                "watch a user process instead (find one with `pgrep NAME`)",
            )
        os.listdir(PROC / str(pid) / "fd")
    except psutil.ZombieProcess:  # before NoSuchProcess, which it is a kind of
        raise TargetError(
            f"process {pid} is a zombie: it has exited, and its parent has not reaped it yet",
            "nothing is left to watch; record the program again from its start",
        ) from None
    except (psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError):
        raise TargetError(
            f"no process with pid {pid}", "check the pid with `ps -p PID` or `pgrep NAME`"
        ) from None
    except (psutil.AccessDenied, PermissionError):
        raise TargetError(
            f"not allowed to read process {pid}'s /proc files",
            "run memsleuth as the process's user, or as root",
        ) from None
    return ProcIdentity(pid, _start_ticks(stat), name, cmdline)


def _start_ticks(stat_text: str) -> int:
    # Field 22; the command name (field 2) may hold spaces and parentheses, so split after it.
    return int(stat_text[stat_text.rindex(")") + 2 :].split()[19])


def _read_bytes(path: str) -> bytes:
    """One read of a small /proc file, without the cost of a Python text file object."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 16384)
    finally:
        os.close(fd)


def _status_kib(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0])
    return out


def cgroup_files(pid: int) -> CgroupFiles | None:
    """The memory usage and limit files of a process's cgroup: v2, else v1 (the same lookup
    as the watchdog's; v1 hosts had recorded no cgroup memory and found no limit)."""
    return find_cgroup_files(PROC / str(pid))


def cgroup_limit(pid: int) -> int | None:
    """The memory limit of the process's cgroup, None when unlimited or unknown."""
    files = cgroup_files(pid)
    if files is None:
        return None
    try:
        text = files.limit.read_text().strip()
        value = None if text == "max" else int(text)
    except (OSError, ValueError):
        return None
    return None if value is None or value >= UNLIMITED else value


def machine_memory() -> int:
    """RAM and swap of this machine, in bytes: what a bounded cache's ceiling is held to when
    no other limit is known."""
    return int(psutil.virtual_memory().total + psutil.swap_memory().total)


def fd_limit(pid: int) -> int | None:
    """The process's open-files limit (`ulimit -n`, its soft RLIMIT_NOFILE), None when
    unlimited or unreadable: an fd leak that reaches it stops growing, and every open fails."""
    try:
        text = (PROC / str(pid) / "limits").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Max open files"):
            soft = line[len("Max open files") :].split()[0]
            return int(soft) if soft.isdigit() else None
    return None


# Points a recording without --children writes: its descendants' summed RSS, and how many.
LEFT_OUT_RSS = "children:rss"
LEFT_OUT_COUNT = "children:count"
CHILDREN_EVERY_S = 5.0  # how often (a scan of /proc, ~2 ms with 200 processes)


def program(pid: int) -> tuple[str, bytes] | None:
    """The program the process runs now (/proc/PID/exe) and its auxiliary vector, which each
    exec() gives anew (the vdso's address is random): a process that execs another program,
    or the same interpreter with another script, keeps its pid. None when unreadable, and
    while an exec() is under way: the new program's vector is not written yet (nor its command
    line), and a target read then had been said to exec "`mem frag` at 1.0 s (it ran `?`
    before)"."""
    try:
        # A binary deleted or replaced while it runs (a rebuild, an upgrade) is the same one.
        exe = os.readlink(PROC / str(pid) / "exe").removesuffix(" (deleted)")
        auxv = (PROC / str(pid) / "auxv").read_bytes()
    except OSError:
        return None
    return (exe, auxv) if auxv.strip(b"\0") else None


def command_line(pid: int) -> str:
    """The process's command line, its first words: `python3.11 b.py`."""
    try:
        words = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return ""
    shown = [os.path.basename(w.decode(errors="replace")) for w in words[:1]]
    shown += [w.decode(errors="replace") for w in words[1:3] if w]
    return " ".join(shown)


def descendants(pid: int) -> list[psutil.Process]:
    """The process's descendants now (none when it is gone)."""
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


def summed_rss(procs: list[psutil.Process]) -> tuple[int, int]:
    """(how many, their summed RSS in bytes) of those still there: what a recording without
    --children leaves out of RSS (a launcher's or a pre-fork master's workers)."""
    count = total = 0
    for proc in procs:
        try:
            resident = int((PROC / str(proc.pid) / "statm").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        count += 1
        total += resident * PAGE_SIZE
    return count, total


class _Budgeted:
    """One costly read of one pid, run no more often than the shared budget allows."""

    def __init__(
        self,
        key: tuple[int, str],
        read: Callable[[int], dict[str, int]],
        budget: CostBudget,
        clock: Callable[[], float],
    ) -> None:
        self._key = key
        self._read = read
        self._budget = budget
        self._clock = clock
        self._next = 0.0

    def maybe(self) -> dict[str, int]:
        """The values when read this time, {} when skipped (stored as NULL: not read)."""
        now = self._clock()
        if now < self._next:
            return {}
        started = time.perf_counter()
        try:
            values = self._read(self._key[0])
        except OSError:
            values = {}
        cost = time.perf_counter() - started
        self._next = now + self._budget.delay_after(self._key, cost)
        return values


def read_smaps_rollup(pid: int) -> dict[str, int]:
    kib = _status_kib((PROC / str(pid) / "smaps_rollup").read_text())
    return {
        "pss": kib.get("Pss", 0) * 1024,
        "uss": (kib.get("Private_Clean", 0) + kib.get("Private_Dirty", 0)) * 1024,
        # Freed with madvise(MADV_FREE) (jemalloc, mimalloc, Go before 1.16): still counted
        # in RSS until the kernel needs the memory and takes them.
        "lazyfree": kib.get("LazyFree", 0) * 1024,
    }


def read_heap_rss(pid: int) -> dict[str, int]:
    """RSS of the [heap] mapping (the brk heap glibc malloc grows), from the full smaps."""
    in_heap = False
    with (PROC / str(pid) / "smaps").open() as f:
        for line in f:
            if line[0] in "0123456789abcdef" and "-" in line.split(" ", 1)[0]:
                in_heap = line.rstrip().endswith("[heap]")
            elif in_heap and line.startswith("Rss:"):
                return {"heap": int(line.split()[1]) * 1024}
    return {"heap": 0}


# The fields of the costly reads (smaps_rollup, smaps), read on a budget.
COSTLY_FIELDS = frozenset({"pss", "uss", "lazyfree", "heap"})


class ProcSampler:
    """Samples one process, or its whole tree with children=True, into `Sample`s."""

    def __init__(
        self,
        identity: ProcIdentity,
        *,
        children: bool = False,
        work_file: Path | None = None,
        budget: CostBudget | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.identity = identity
        self.children = children
        self.work_file = work_file
        self._budget = budget or CostBudget()
        self._clock = clock
        self._costly: dict[int, tuple[_Budgeted, _Budgeted]] = {}
        self._cgroup = cgroup_files(identity.pid)
        self.rss_by_pid: dict[int, float] = {}  # the processes the last sample summed, RSS each
        self.descendants: list[psutil.Process] = []  # as last seen (with children=True)
        self._last_costly: dict[int, dict[str, float]] = {}  # each pid's latest costly reads

    @property
    def pids(self) -> tuple[int, ...]:
        """The processes the last sample summed, the target first."""
        return tuple(self.rss_by_pid)

    def _pids(self) -> list[int]:
        if not self.children:
            return [self.identity.pid]
        self.descendants = descendants(self.identity.pid)
        return [self.identity.pid, *(k.pid for k in self.descendants)]

    def sample(self) -> Sample | None:
        """One sample, or None when the process is gone (or its pid was reused)."""
        pids = self._pids()
        for gone in set(self._costly) - set(pids):  # children come and go: forget the dead
            del self._costly[gone]
            self._last_costly.pop(gone, None)
            self._budget.forget(gone)
        read = [(pid, p) for pid in pids if (p := self._read_one(pid)) is not None]
        parts = [p for _, p in read]
        if not parts or parts[0].get("start") != self.identity.start_ticks:
            return None
        self.rss_by_pid = {pid: part["rss"] for pid, part in read}
        # A field counts only when every process of the tree had it read this time.
        keys = set.intersection(*(set(p) for p in parts)) - {"start"}
        totals = {k: sum(p[k] for p in parts) for k in keys}
        if len(read) > 1:
            totals.update(self._tree_costly(read))
        return Sample(
            t=time.time(),
            rss_bytes=int(totals["rss"]),
            pss_bytes=_opt_int(totals.get("pss")),
            uss_bytes=_opt_int(totals.get("uss")),
            anon_bytes=_opt_int(totals.get("anon")),
            file_bytes=_opt_int(totals.get("file")),
            lazyfree_bytes=_opt_int(totals.get("lazyfree")),
            swap_bytes=_opt_int(totals.get("swap")),
            heap_bytes=_opt_int(totals.get("heap")),
            hwm_bytes=_opt_int(totals.get("hwm")),
            threads=_opt_int(totals.get("threads")),
            fds=_opt_int(totals.get("fds")),
            cgroup_bytes=self._cgroup_current(),
            cpu_s=totals.get("cpu"),
            work=self._work(),
        )

    def _tree_costly(self, read: list[tuple[int, dict[str, float]]]) -> dict[str, float]:
        """A tree's costly fields (PSS, USS, heap): each process's latest reading, summed,
        whenever one of them was read now. Each pid is read on its own schedule, so they never
        all came together: with --children, PSS had been recorded in 2 samples of 91."""
        fresh: set[str] = set()
        for pid, part in read:
            got = {k: v for k, v in part.items() if k in COSTLY_FIELDS}
            self._last_costly.setdefault(pid, {}).update(got)
            fresh |= set(got)
        known = [self._last_costly.get(pid, {}) for pid, _ in read]
        return {k: sum(last[k] for last in known) for k in fresh if all(k in n for n in known)}

    def _read_one(self, pid: int) -> dict[str, float] | None:
        base = f"/proc/{pid}/"
        try:
            stat = _read_bytes(base + "stat")
            status = parse_status(_read_bytes(base + "status"))
            fds = len(os.listdir(base + "fd"))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return None
        fields = stat[stat.rindex(b")") + 2 :].split()
        if fields[0] in (b"Z", b"X") or "VmRSS" not in status:
            # No address space: exiting (its memory being torn down: RSS read 0 while a killed
            # 1.5 GB process was freed, and the exporter served that 0), or a kernel thread.
            return None
        out: dict[str, float] = {
            "start": int(fields[19]),
            "rss": status.get("VmRSS", 0),
            "anon": status.get("RssAnon", 0),
            "file": status.get("RssFile", 0),
            "swap": status.get("VmSwap", 0),
            "hwm": status.get("VmHWM", 0),
            "threads": status.get("Threads", 0),
            "fds": fds,
            "cpu": (int(fields[11]) + int(fields[12])) / CLOCK_TICKS,
        }
        costly = self._costly.get(pid)
        if costly is None:
            costly = self._costly[pid] = (
                _Budgeted((pid, "rollup"), read_smaps_rollup, self._budget, self._clock),
                _Budgeted((pid, "heap"), read_heap_rss, self._budget, self._clock),
            )
        for reader in costly:
            out.update(reader.maybe())
        return out

    def _cgroup_current(self) -> int | None:
        if self._cgroup is None:
            return None
        try:
            return int(self._cgroup.current.read_text())
        except (OSError, ValueError):
            return None

    def _work(self) -> float | None:
        if self.work_file is None:
            return None
        try:
            text = read_counter(self.work_file).split()
            return float(text[0]) if text else None
        except (OSError, ValueError):
            return None


def read_counter(path: Path, limit: int = 4096) -> str:
    """The start of a regular file, read without ever blocking: a FIFO or a device put in its
    place is refused (OSError), not waited on (a FIFO as --work-file had hung the sampler,
    past --duration and Ctrl-C)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        return os.read(fd, limit).decode("utf-8", "replace")
    finally:
        os.close(fd)


def _opt_int(v: float | None) -> int | None:
    return None if v is None else int(v)

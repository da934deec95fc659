"""The shared vocabulary: samples, runs, series, verdicts and culprits, as frozen values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

VerdictName = Literal[
    "leak",
    "plateau",
    "stable",
    "step",
    "thread-leak",
    "task-leak",
    "fd-leak",
    "fragmentation",
    "degradation",
    "inconclusive",
]
VERDICT_NAMES: tuple[VerdictName, ...] = (
    "leak",
    "plateau",
    "stable",
    "step",
    "thread-leak",
    "fd-leak",
    "fragmentation",
    "degradation",
    "inconclusive",
)
# Verdicts that mean "something is wrong": `analyze` exits with ExitCode.PROBLEM on these.
PROBLEM_VERDICTS: frozenset[VerdictName] = frozenset(
    {"leak", "thread-leak", "task-leak", "fd-leak", "fragmentation", "degradation"}
)

# What a growth is, beyond its shape (Verdict.cause): from the probe's culprits, or from USS.
Cause = Literal["backlog", "bounded-fill", "in-slack", "copy-on-write", "recycled-workers"]

RunKind = Literal["record", "run", "soak", "import"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Sample:
    """One observation of a process (or process tree). Sizes in bytes; None = not read this time."""

    t: float  # unix time, seconds
    rss_bytes: int
    pss_bytes: int | None = None
    uss_bytes: int | None = None  # private (clean + dirty)
    anon_bytes: int | None = None
    file_bytes: int | None = None  # RssFile: pages of mapped files, which the kernel reclaims
    lazyfree_bytes: int | None = None  # LazyFree: pages freed with MADV_FREE, reclaimed likewise
    swap_bytes: int | None = None
    heap_bytes: int | None = None  # the [heap] mapping's RSS (brk heap)
    hwm_bytes: int | None = None  # VmHWM, peak RSS
    threads: int | None = None
    fds: int | None = None
    cgroup_bytes: int | None = None  # cgroup v2 memory.current
    cpu_s: float | None = None  # user + system CPU time of the target
    work: float | None = None  # a work counter the target exposes (frames, requests, cycles)
    latency_s: float | None = None  # a duration per unit of work (soak cycles)


# The Sample fields that are stored as columns and loaded into a Series, in order.
SAMPLE_FIELDS: tuple[str, ...] = (
    "rss_bytes",
    "pss_bytes",
    "uss_bytes",
    "anon_bytes",
    "file_bytes",
    "lazyfree_bytes",
    "swap_bytes",
    "heap_bytes",
    "hwm_bytes",
    "threads",
    "fds",
    "cgroup_bytes",
    "cpu_s",
    "work",
    "latency_s",
)


@dataclass(frozen=True, slots=True)
class Run:
    """A recording: one target watched over time, with what is known about it."""

    id: int
    name: str
    kind: RunKind
    command: tuple[str, ...]
    pid: int | None
    host: str
    started_at: float  # unix time
    ended_at: float | None  # None while recording, or when the recorder was killed
    exit_status: int | None  # the target's exit status when memsleuth started it
    version: str  # memsleuth version that recorded it
    interval_s: float
    limit_bytes: int | None  # memory limit (--limit, cgroup memory.max), None if unlimited
    note: str = ""  # free text: how the run ended, why the probe was not injected, ...
    sample_count: int = 0

    @property
    def stopped_by_memsleuth(self) -> bool:
        """memsleuth ended the target (--duration, Ctrl-C, a soak's end): its exit status is
        memsleuth's doing, not the target failing."""
        return self.note.startswith(STOPPED_NOTES)


# How the notes of runs whose target memsleuth stopped begin (the recorder's reasons, and a
# soak's end): "exit status 143" after a soak --url had read as the server failing.
STOPPED_NOTES = ("duration reached", "interrupted", "soak done")


@dataclass(frozen=True, eq=False)
class Series:
    """Columnar samples for analysis: `t` in seconds from the first sample, NaN where missing.

    `columns` maps a Sample field name (see SAMPLE_FIELDS) to an array as long as `t`.
    """

    t: FloatArray
    columns: dict[str, FloatArray] = field(default_factory=dict)

    def get(self, name: str) -> FloatArray | None:
        """The column, or None when it was never recorded (all NaN or absent)."""
        col = self.columns.get(name)
        if col is None or col.size == 0 or bool(np.all(np.isnan(col))):
            return None
        return col

    @property
    def rss(self) -> FloatArray:
        return self.columns["rss_bytes"]

    def __len__(self) -> int:
        return int(self.t.size)

    def prefix(self, until_s: float) -> Series:
        """The samples with t <= until_s: what an alert would have known then."""
        n = int(np.searchsorted(self.t, until_s, side="right"))
        return Series(self.t[:n], {k: v[:n] for k, v in self.columns.items()})

    def since(self, from_s: float) -> Series:
        """The samples with t >= from_s, their times unchanged."""
        n = int(np.searchsorted(self.t, from_s, side="left"))
        return Series(self.t[n:], {k: v[n:] for k, v in self.columns.items()})

    @classmethod
    def from_arrays(
        cls,
        t: npt.ArrayLike,
        rss: npt.ArrayLike,
        **others: npt.ArrayLike | None,
    ) -> Series:
        """Build a series from plain arrays (None entries become NaN)."""
        ta = np.asarray(t, dtype=np.float64)
        cols = {"rss_bytes": _as_float(rss)}
        for k, v in others.items():
            if v is not None:
                cols[k] = _as_float(v)
        return cls(ta, cols)


def _as_float(values: npt.ArrayLike) -> FloatArray:
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
        return np.asarray(values, dtype=np.float64)  # numbers already: no None to look for
    arr = np.asarray(values, dtype=object)
    if arr.dtype == object:
        arr = np.where(arr == None, np.nan, arr)  # noqa: E711 - elementwise None test
    return np.asarray(arr, dtype=np.float64)


# The points a tree recorded with --children gets, each process's RSS: "process:<pid> <name>".
PROCESS_PREFIX = "process:"


@dataclass(frozen=True, slots=True)
class Trend:
    """The fitted line the verdict rests on, for plots: value = intercept + slope * (t - t0)."""

    t0_s: float  # start of the fitted window (seconds from the first sample)
    t1_s: float  # end of the fitted window
    intercept_bytes: float
    slope_bytes_per_s: float


@dataclass(frozen=True, slots=True)
class Culprit:
    """What grows, named by how it is reached, ranked by its share of the growth."""

    name: str  # "module app.dedup, global PROCESSED_SIGNATURES (dict)"
    kind: str  # "container", "type", "allocation-site", "threads", "tasks", "native", "fds",
    # "process" (one process of a tree recorded with --children)
    growth: str  # human: "10,204 → 1,203,991 entries, +9.8k/min, ~310 MB retained"
    growth_per_hour: float  # in the culprit's own unit (entries, bytes, threads) per hour
    unit: str  # "entries", "bytes", "objects", "threads", "tasks", "fds"
    share: float  # estimated share of the memory growth, 0..1 (0 when unknown)
    evidence: tuple[str, ...] = ()
    bytes_estimate: float | None = None  # bytes retained by it at the end, when known
    points: tuple[tuple[float, float], ...] = ()  # (t seconds from run start, size) over time
    bound: float | None = None  # a container that can hold at most this many entries
    queue: bool = False  # a work queue's storage: a consumer takes entries out (a backlog)

    @property
    def full(self) -> bool:
        """A bounded container at its bound: it has stopped growing."""
        return self.bound is not None and bool(self.points) and self.points[-1][1] >= self.bound


@dataclass(frozen=True, slots=True)
class Verdict:
    """The judgement on one series, with the evidence it used and what would change it."""

    verdict: VerdictName
    confidence: float  # 0..1
    evidence: tuple[str, ...]
    growth_bytes_per_hour: float | None = None
    growth_ci_bytes_per_hour: tuple[float, float] | None = None  # 95% interval of the slope
    warmup_end_s: float | None = None  # seconds from the first sample
    ceiling_bytes: float | None = None  # plateau's estimated ceiling
    time_to_limit_s: float | None = None
    limit_bytes: int | None = None
    more_time_s: float | None = None  # inconclusive: how much longer to record
    would_change: tuple[str, ...] = ()
    trend: Trend | None = None
    metric: str = "rss_bytes"  # the column judged
    growth_per_work: float | None = None  # bytes per unit of work, when a counter was recorded
    latency_ratio: float | None = None  # last-N over first-N median duration, when recorded
    thread_growth_per_hour: float | None = None
    fd_growth_per_hour: float | None = None
    task_growth_per_hour: float | None = None  # pending asyncio tasks, when the probe counted them
    task_unit: str = "tasks"  # what those tasks are: asyncio's "tasks", Go's "goroutines"
    culprits: tuple[Culprit, ...] = ()
    samples: int = 0
    span_s: float = 0.0
    # What the growth is: from the probe's culprits, "backlog" (a work queue filled faster than
    # it is drained), "bounded-fill" (bounded containers filling: a plateau), "in-slack" (a
    # leak of Python objects in memory the process already held, RSS flat); from USS,
    # "copy-on-write" (memory shared after fork becoming private: USS grows, RSS flat; a
    # plateau at RSS); from a tree's processes, "recycled-workers" (bounded because the
    # processes that grow are replaced); or None.
    cause: Cause | None = None

    @property
    def is_problem(self) -> bool:
        return self.verdict in PROBLEM_VERDICTS

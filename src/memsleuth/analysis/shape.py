"""The shape of a binned series: regimes (change points), steps, warm-up and saturating fits."""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from memsleuth.analysis.trend import median
from memsleuth.model import FloatArray

# Piecewise-linear regimes: at most this many (warm-up, growth, steps and a final regime fit
# well within it), each at least MIN_SEGMENT bins long so that its slope means something.
MAX_SEGMENTS = 6
MIN_SEGMENT = 3
# A new regime must pay for its three parameters (level, slope, where it starts): BIC's log(n)
# per parameter, in units of the noise variance, doubled because binned memory noise is rarely
# independent from bin to bin and a false regime costs more than a late one.
PENALTY_PER_PARAM = 2.0
PARAMS_PER_SEGMENT = 3
# A jump between regimes is a step when it is this many noise standard deviations of the level
# (about the 1e-6 two-sided normal tail: one false step in a million bin boundaries).
STEP_SIGMAS = 5.0


@dataclass(frozen=True, slots=True)
class Segment:
    """One regime: bins [start, stop) fitted by value = level0 + slope * (t - t0)."""

    start: int
    stop: int
    t0: float
    t1: float
    level0: float  # fitted value at t0
    slope: float  # per second

    @property
    def level1(self) -> float:
        return self.level0 + self.slope * (self.t1 - self.t0)

    @property
    def bins(self) -> int:
        return self.stop - self.start

    def at(self, t: float) -> float:
        return self.level0 + self.slope * (t - self.t0)


def _prefix(v: FloatArray) -> FloatArray:
    out = np.zeros(v.size + 1)
    np.cumsum(v, out=out[1:])
    return out


def _diffs(p: FloatArray) -> FloatArray:
    """d[j, i] = p[j] - p[i]: the sum over bins [i, j) from a prefix sum."""
    return np.subtract.outer(p, p)


@functools.lru_cache(maxsize=8)
def _time_terms(key: bytes) -> tuple[FloatArray, FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    """What segment costs need of the bin times alone: (mean t, 1/count, 1/Stt, valid), each
    [end, start]. Cached by the times' bytes: series on one time grid (a fleet's, a watchdog's
    window) share them."""
    t = np.frombuffer(key)
    idx = np.arange(t.size + 1.0)
    cnt = _diffs(idx)
    valid = cnt >= MIN_SEGMENT
    inv = np.divide(1.0, cnt, out=np.zeros_like(cnt), where=valid)
    pt = _prefix(t)
    st = _diffs(pt)
    mean_t = st * inv
    stt = _diffs(_prefix(t * t)) - st * mean_t
    inv_stt = np.divide(1.0, stt, out=np.zeros_like(stt), where=valid & (stt > 0))
    for a in (mean_t, inv, inv_stt, valid):
        a.flags.writeable = False
    return mean_t, inv, inv_stt, valid


def segment_costs(t: FloatArray, y: FloatArray) -> FloatArray:
    """cost[j, i]: squared residuals of the least-squares line through bins [i, j), by end j.

    Segments shorter than MIN_SEGMENT cost infinity. O(n²) from prefix sums.
    """
    mean_t, inv, inv_stt, valid = _time_terms(np.ascontiguousarray(t, dtype=np.float64).tobytes())
    sy = _diffs(_prefix(y))
    sty = _diffs(_prefix(t * y))
    sty -= mean_t * sy
    syy = _diffs(_prefix(y * y))
    sy *= sy
    sy *= inv
    syy -= sy
    sty *= sty
    sty *= inv_stt
    syy -= sty
    np.maximum(syy, 0.0, out=syy)
    syy[~valid] = np.inf
    return syy


def _line(t: FloatArray, y: FloatArray, start: int, stop: int) -> Segment:
    ts, ys = t[start:stop], y[start:stop]
    tm, ym = float(ts.mean()), float(ys.mean())
    dt = ts - tm
    den = float(np.dot(dt, dt))
    slope = float(np.dot(dt, ys - ym)) / den if den > 0 else 0.0
    t0 = float(ts[0])
    return Segment(start, stop, t0, float(ts[-1]), ym + slope * (t0 - tm), slope)


def find_regimes(t: FloatArray, y: FloatArray, sigma: float) -> tuple[Segment, ...]:
    """The piecewise-linear regimes of (t, y): optimal partition with a BIC-like penalty."""
    n = int(y.size)
    if n < 2 * MIN_SEGMENT or sigma <= 0:
        return (_line(t, y, 0, n),) if n >= 2 else ()
    # Work in units of the noise and of the time span so the sums stay well conditioned.
    span = float(t[-1] - t[0]) or 1.0
    tn = (t - t[0]) / span
    yn = (y - median(y)) / sigma
    cost_t = segment_costs(tn, yn)  # [end, start]: rows are contiguous
    penalty = PENALTY_PER_PARAM * PARAMS_PER_SEGMENT * math.log(n)
    kmax = min(MAX_SEGMENTS, n // MIN_SEGMENT)
    best = cost_t[:, 0].copy()  # best[j]: one segment over [0, j)
    back: list[np.ndarray] = []
    totals = [best[n]]
    rows = np.arange(n + 1)
    total = np.empty_like(cost_t)
    for _ in range(1, kmax):
        np.add(cost_t, best[None, :], out=total)  # total[j, i]: best to i, then [i, j)
        arg = np.argmin(total, axis=1)
        best = total[rows, arg]
        back.append(arg)
        totals.append(best[n])
    scores = [tot + k * penalty for k, tot in enumerate(totals)]
    k = int(np.argmin(scores))
    cuts = [n]
    j = n
    for level in range(k - 1, -1, -1):
        j = int(back[level][j])
        cuts.append(j)
    cuts.append(0) if cuts[-1] != 0 else None
    bounds = sorted(set(cuts))
    return tuple(_line(t, y, a, b) for a, b in itertools.pairwise(bounds))


@dataclass(frozen=True, slots=True)
class Jump:
    """A level shift between two regimes."""

    t: float  # seconds, halfway between the regimes
    size: float  # bytes (or the column's unit), positive for a rise
    sigmas: float  # size in noise standard deviations


def _median3(v: FloatArray) -> float:
    """The median of at most three values, without numpy's overhead for tiny arrays."""
    s = sorted(v.tolist())
    return float(s[len(s) // 2]) if len(s) % 2 else 0.5 * (s[0] + s[-1])


def jumps_between(
    segments: tuple[Segment, ...], t: FloatArray, y: FloatArray, sigma: float
) -> list[Jump]:
    """Level shifts where one regime ends and the next begins, STEP_SIGMAS or larger."""
    out: list[Jump] = []
    for a, b in itertools.pairwise(segments):
        tm = 0.5 * (float(t[a.stop - 1]) + float(t[b.start]))
        # A jump must show both in the fitted lines at their own ends and in the data on either
        # side (each side's last or first bins carried to the boundary along its own slope):
        # lines fitted to a curve leave gaps at their ends where the data has none.
        fitted = b.level0 - a.level1
        ia, ib = slice(max(a.start, a.stop - 3), a.stop), slice(b.start, min(b.stop, b.start + 3))
        left = _median3(y[ia] + a.slope * (tm - t[ia]))
        right = _median3(y[ib] + b.slope * (tm - t[ib]))
        data = right - left
        # ... and in the data as it is: a short regime steepened by a jump inside it, carried
        # back along its slope, lands below where it starts (a leak whose last sample jumped up
        # had shown a fall there, and was trended from it).
        raw = _median3(y[ib]) - _median3(y[ia])
        agree = fitted * data > 0 and fitted * raw > 0
        size = math.copysign(min(abs(fitted), abs(data)), fitted) if agree else 0.0
        if sigma > 0 and abs(size) >= STEP_SIGMAS * sigma:
            out.append(Jump(tm, size, abs(size) / sigma))
    return out


@dataclass(frozen=True, slots=True)
class Saturation:
    """Growth that levels off: value = ceiling - amplitude * exp(-(t - t0) / tau).

    Fitted beside a straight line and beside "exponential plus line", to tell a warm-up or
    plateau still approaching its ceiling from a leak seen through the end of a warm-up.
    """

    ceiling: float
    amplitude: float
    tau_s: float
    t0: float
    f_curve: float  # how much better than a straight line, in residual variances
    line_slope: float  # per second: the line that survives beside the exponential
    line_z: float  # that slope over its standard error (lag-1 autocorrelation accounted for)

    def at(self, t: float) -> float:
        return self.ceiling - self.amplitude * math.exp(-(t - self.t0) / self.tau_s)


TAU_GRID = np.geomspace(0.02, 2.0, 16)  # time constants, as shares of the window


def _solve(xtx: FloatArray, xty: FloatArray) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Batched least squares from normal equations; rows that are singular get sse = inf."""
    det = np.linalg.det(xtx)
    scale = np.abs(np.einsum("kii->k", xtx)) ** xtx.shape[1]
    good = np.abs(det) > 1e-12 * np.maximum(scale, 1e-300)
    coef = np.zeros(xty.shape)
    if good.any():
        coef[good] = np.linalg.solve(xtx[good], xty[good][..., None])[..., 0]
    return coef, good


def _exp_fits(
    u: FloatArray, ys: FloatArray, taus: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """For each tau: (sse, coef) of "exponential" (1, -e) and of "exponential + line" (1, u, -e).

    Fits with a falling exponential (negative amplitude) get sse = inf: they are not a warm-up.
    """
    n, m = u.size, taus.size
    e = np.exp(-u[None, :] / taus[:, None])  # (taus, n)
    su, suu, sy, suy, syy = u.sum(), u @ u, ys.sum(), u @ ys, float(ys @ ys)
    se, see, sue, sey = e.sum(axis=1), np.einsum("ij,ij->i", e, e), e @ u, e @ ys
    x2 = np.empty((m, 2, 2))
    x2[:, 0, 0], x2[:, 0, 1], x2[:, 1, 0], x2[:, 1, 1] = n, -se, -se, see
    y2 = np.stack((np.full(m, sy), -sey), axis=1)
    c2, g2 = _solve(x2, y2)
    sse2 = np.where(g2 & (c2[:, 1] > 0), syy - np.einsum("ij,ij->i", c2, y2), np.inf)
    x3 = np.empty((m, 3, 3))
    x3[:, 0, 0], x3[:, 0, 1], x3[:, 0, 2] = n, su, -se
    x3[:, 1, 0], x3[:, 1, 1], x3[:, 1, 2] = su, suu, -sue
    x3[:, 2, 0], x3[:, 2, 1], x3[:, 2, 2] = -se, -sue, see
    y3 = np.stack((np.full(m, sy), np.full(m, suy), -sey), axis=1)
    c3, g3 = _solve(x3, y3)
    sse3 = np.where(g3 & (c3[:, 2] >= 0), syy - np.einsum("ij,ij->i", c3, y3), np.inf)
    return sse2, c2, sse3, c3, x3


def _refine(taus: FloatArray, sse: FloatArray) -> float:
    """The minimum of a parabola through the best grid point and its neighbours, in log tau.

    A grid alone leaves a misfit that, on clean data, a line term would soak up and call growth.
    """
    i = int(np.argmin(sse))
    if i == 0 or i == taus.size - 1 or not np.all(np.isfinite(sse[i - 1 : i + 2])):
        return float(taus[i])
    x = np.log(taus[i - 1 : i + 2])
    a, b, _ = np.polyfit(x, sse[i - 1 : i + 2], 2)
    if a <= 0:
        return float(taus[i])
    return float(np.exp(np.clip(-b / (2 * a), x[0], x[2])))


def fit_saturation(t: FloatArray, y: FloatArray, sigma: float) -> Saturation | None:
    """Least-squares saturating exponential: a grid of time constants refined to its minimum."""
    n = int(y.size)
    if n < 6 or sigma <= 0:
        return None
    t0 = float(t[0])
    span = float(t[-1] - t0)
    if span <= 0:
        return None
    u = (t - t0) / span
    yc = median(y)
    ys = (y - yc) / sigma
    sse2, _, sse3, _, _ = _exp_fits(u, ys, TAU_GRID)
    if not (np.isfinite(sse2).any() and np.isfinite(sse3).any()):
        return None
    taus = np.array([_refine(TAU_GRID, sse2), _refine(TAU_GRID, sse3)])
    r2, c2, r3, c3, x3 = _exp_fits(u, ys, taus)
    if not (math.isfinite(float(r2[0])) and math.isfinite(float(r3[1]))):
        return None
    du = u - u.mean()
    sse_line = float(ys @ ys) - float(ys.sum()) ** 2 / n - float(du @ ys) ** 2 / float(du @ du)
    best2 = max(float(r2[0]), 1e-12)
    e3 = np.exp(-u / taus[1])
    resid = ys - (c3[1, 0] + c3[1, 1] * u - c3[1, 2] * e3)
    s2 = max(float(r3[1]) / max(n - 4, 1), 1e-12)
    r1 = float(resid[:-1] @ resid[1:]) / max(float(resid @ resid), 1e-300)
    r1 = min(max(r1, 0.0), 0.9)
    var_slope = float(np.linalg.inv(x3[1])[1, 1]) * s2 * (1 + r1) / (1 - r1)
    return Saturation(
        ceiling=yc + sigma * float(c2[0, 0]),
        amplitude=sigma * float(c2[0, 1]),
        tau_s=float(taus[0]) * span,
        t0=t0,
        f_curve=max(0.0, (sse_line - best2) / (best2 / max(n - 3, 1))),
        line_slope=float(c3[1, 1]) * sigma / span,
        line_z=float(c3[1, 1]) / math.sqrt(max(var_slope, 1e-300)),
    )


@dataclass(frozen=True, slots=True)
class Knee:
    """A bend: value = level + before * min(t - t0, k) + after * max(t - t0 - k, 0)."""

    t_knee: float
    before: float  # slope per second before the knee
    after: float  # slope per second after it
    after_z: float  # `after` over its standard error (lag-1 autocorrelation accounted for)
    f_stat: float  # how much better than one straight line, in residual variances


_KneeTerms = tuple[
    FloatArray,
    FloatArray,
    FloatArray,
    FloatArray,
    FloatArray,
    FloatArray,
    FloatArray,
    npt.NDArray[np.bool_],
]


@functools.lru_cache(maxsize=8)
def _knee_terms(key: bytes, min_after: int) -> _KneeTerms | None:
    """What the knee fits need of the times alone (u = t - t0), for every knee position.
    Cached by the times' bytes: series on one time grid (a fleet's) share them."""
    u = np.frombuffer(key)
    n = u.size
    knees = u[2 : n - min_after]
    a = np.minimum(u[None, :], knees[:, None])  # (knees, n): time before the knee
    b = u[None, :] - a  # time after it
    ac = a - a.mean(axis=1, keepdims=True)
    bc = b - b.mean(axis=1, keepdims=True)
    saa = np.einsum("ij,ij->i", ac, ac)
    sbb = np.einsum("ij,ij->i", bc, bc)
    sab = np.einsum("ij,ij->i", ac, bc)
    det = saa * sbb - sab * sab
    ok = det > 1e-12 * saa * sbb
    if not ok.any():
        return None
    terms = (knees, ac, bc, saa, sbb, sab, det, ok)
    for arr in terms:
        arr.flags.writeable = False
    return terms


def fit_knee(t: FloatArray, y: FloatArray, min_after: int = 3) -> Knee | None:
    """The best continuous two-slope fit of (t, y), compared with a straight line.

    The knee moves over the bins (vectorised normal equations). f_stat is the drop in squared
    residuals from the line to the best knee over the knee model's residual variance: large when
    the growth bends (a plateau forming, a warm-up ending), near zero for a straight line.
    """
    n = int(y.size)
    if n < 2 * min_after + 3:
        return None
    u = t - t[0]
    terms = _knee_terms(np.ascontiguousarray(u, dtype=np.float64).tobytes(), min_after)
    if terms is None:
        return None
    knees, ac, bc, saa, sbb, sab, det, ok = terms
    yc = y - y.mean()
    say, sby = ac @ yc, bc @ yc
    with np.errstate(divide="ignore", invalid="ignore"):
        c1 = np.where(ok, (sbb * say - sab * sby) / det, 0.0)
        c2 = np.where(ok, (saa * sby - sab * say) / det, 0.0)
    syy = float(yc @ yc)
    sse = np.where(ok, syy - c1 * say - c2 * sby, np.inf)
    i = int(np.argmin(sse))
    du = u - u.mean()
    suu = float(du @ du)
    sse_line = syy - float(du @ yc) ** 2 / suu if suu > 0 else syy
    resid = yc - c1[i] * ac[i] - c2[i] * bc[i]
    var = max(float(sse[i]) / (n - 3), 1e-300)
    r1 = float(resid[:-1] @ resid[1:]) / max(float(resid @ resid), 1e-300)
    r1 = min(max(r1, 0.0), 0.9)
    se_after = math.sqrt(var * saa[i] / det[i] * (1 + r1) / (1 - r1))
    return Knee(
        t_knee=float(t[0] + knees[i]),
        before=float(c1[i]),
        after=float(c2[i]),
        after_z=float(c2[i]) / se_after if se_after > 0 else 0.0,
        f_stat=max(0.0, (sse_line - float(sse[i])) / var),
    )

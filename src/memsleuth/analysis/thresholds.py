"""The bars growth is held to (section 4 of docs/verdicts.md): significance levels, the
material bars, the fewest samples to trend."""

from __future__ import annotations

# Significance of growth: one-sided, after the autocorrelation correction. A verdict is taken
# at many checkpoints of many series, so the per-test level is strict.
ALPHA_LEAK = 1e-3
# Weaker evidence than ALPHA_LEAK but more than chance: say `inconclusive`, not `stable`.
ALPHA_HINT = 1e-2
MIN_SAMPLES = 6
# Memory the kernel reports comes in pages: residuals within a page are rounding, not noise.
PAGE_BYTES = 4096.0
# Growth under this many noise standard deviations over the window is not worth a leak.
MIN_GROWTH_SIGMAS = 3.0
# ... nor growth of memory under three of glibc's heap steps (M_TOP_PAD, 128 KiB: the least a
# heap grows by when malloc needs room): a quiet process's RSS is flat to the page, but an
# allocator settling its arenas (or an in-process tool's bookkeeping) moves it by such steps.
MIN_GROWTH_BYTES = 3 * 128 * 1024
# A bend must beat a straight line by this F statistic (about the 99.9% point of its null
# distribution, a line plus independent noise, at 40-120 bins; 99% at 10-20), and the slope
# after it must be insignificant.
KNEE_F = 10.0

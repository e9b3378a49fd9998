"""Two-sample statistics for one comparison, and the multiple-testing
adjustment across a report (DESIGN §6).

One estimand, one test and one interval, all from the same statistic, so
the p-value and the interval cannot disagree about what changed:

* **paired** (`paired`): baseline and candidate ran the same seeds, so seed i
  of each executed the same workload (common random numbers). With d_i the
  per-seed log ratio log(candidate_i / baseline_i):

  - estimate: the Hodges-Lehmann estimate, the median of the Walsh averages
    (d_i + d_j) / 2, i <= j (the pseudo-median of the log ratio);
  - test: the exact Wilcoxon signed-rank test of "the log ratio is
    symmetric about 0";
  - interval: every shift theta the same exact test does not reject at
    1 - CONFIDENCE when it is applied to d - theta (Hodges & Lehmann 1963;
    Hollander, Wolfe & Chicken, *Nonparametric Statistical Methods*, 3rd ed.,
    §3.1-3.2). Without ties its bounds are order statistics of the Walsh
    averages.

  The reported ratio is exp(estimate) and its interval exp(bounds).

* **unpaired** (`unpaired`): the two samples share no seeds (another commit
  whose programs differ, host data). Estimate: the Hodges-Lehmann shift of
  the logs, the median of all differences log c_j - log b_i; test: the exact
  Mann-Whitney (Wilcoxon rank-sum) test; interval: its inversion, the same
  way (Hollander et al. §4.1-4.3).

**The exact null distributions** are computed here by dynamic programming
over the (mid-)ranks, vectorised with numpy and cached per weight pattern:
without ties the pattern is just n (signed rank) or (m, n) (rank sum), so a
report computes each table once. scipy is not asked for them because its
`wilcoxon` falls back to a permutation method that enumerates 2**n sign
flips per call whenever there are ties, zeros or small n (161 ms per call at
n = 10, issue 16).

**Ties and zeros**, handled identically in test and interval:

* the log ratios are rounded to 12 decimals first, so ratios equal in exact
  arithmetic (e.g. 2/1 and 4/2 IPIs) tie also in floating point;
* *zeros* (seeds where both sides gave the same value; the engine is
  deterministic) are kept by Pratt's method: ranks are computed over all n
  |d_i| including the zeros, and the zeros then contribute nothing to the
  statistic. This is exactly the Walsh-average count with a Walsh average
  equal to theta counted one half, #{W > theta} + #{W = theta} / 2, up to a
  constant, which is what makes the test at theta = 0 and the interval the
  same procedure;
* *ties* among the |d_i - theta| get mid-ranks, and the null distribution is
  the exact one *conditional on the tie pattern* (all 2**k sign flips of the
  k non-zero differences, with their mid-ranks as weights). The interval is
  inverted the same way: between two consecutive Walsh averages the
  statistic and the tie pattern are constant, so the test is evaluated once
  per such segment and once at each Walsh average, from both tails inwards,
  and the interval is the hull of every theta not rejected.
* the same for the rank-sum test: mid-ranks over the pooled sample, the null
  conditional on that tie pattern;
* the interval is the closure of the segments not rejected (plus the point
  estimate when only it survives, e.g. every seed gives the same ratio),
  and the p of "no change" is the test at 0 -- or, when 0 is itself a Walsh
  average (a zero difference, or two seeds with opposite log ratios), the
  largest of its p there and on the segments either side (conservative).
  So p > alpha exactly when the interval holds ratio 1.

Two-sided p = min(1, 2 min(P(T <= t), P(T >= t))) under the exact null.

**Metrics that can be 0** (counts such as `ipis_to_lazy`, a contention time):
the log is impossible, so a comparison in which any value is <= 0 is made on
log(value + 1 unit) -- one IPI, one ns -- for test, estimate and interval
alike; its ratio is (candidate + 1) / (baseline + 1) and `Comparison.scale`
says so. A value below 0 is an error: no metric is negative.

**Identical seeds.** When every pair is equal, no statistic is needed, and
none can say how often the two would differ on other seeds: the comparison
says "identical on n of n seeds" and `differing_bound` gives the exact
(Clopper-Pearson) one-sided 95% upper bound on the share of seeds on which
the metric differs, 1 - 0.05**(1/n) (about 3/n, the rule of three); the
verdict rule (`verdicts.verdict`) calls it `no change` only once that bound
is at most `verdicts.MAX_DIFFERING_SHARE`.
"""

from __future__ import annotations

import functools
import math

import numpy as np

# No scipy.stats here: `import scipy.stats` costs about a second and 75 MB
# of RSS, twice the rest of a `pytest --tlbperf` session's memory (issue 16),
# and every test and interval below is an exact count anyway.

CONFIDENCE = 0.95
MIN_N = 3                      # fewer paired seeds (or values per side) than this: no test
DECIMALS = 12                  # log ratios rounded to this many decimals before ranking

PAIRED, UNPAIRED = "paired", "unpaired"
LOG, LOG1 = "log", "log(x+1)"


class Comparison:
    """The outcome of comparing one metric between a baseline sample and a
    candidate sample.

    ratio: exp(Hodges-Lehmann estimate) on the comparison's `scale`, or None
    when no value was compared; ci: (low, high) bounds of `ratio` at
    `CONFIDENCE` (low may be 0.0 and high inf when the test cannot reject any
    shift, e.g. with 5 seeds), or None; p: the exact two-sided p-value, or
    None when no test was possible; direction: sign of the estimate, -1, 0
    or 1; n_baseline/n_candidate: values used (for a paired comparison both
    are the number of pairs); identical: seeds on which the two were equal
    (paired); scale: LOG or LOG1 (see the module docstring)."""

    __slots__ = ("design", "n_baseline", "n_candidate", "ratio", "ci", "p", "direction",
                 "test", "estimator", "note", "identical", "scale")

    def __init__(self, design, n_baseline, n_candidate, ratio, ci, p, direction, test,
                 estimator, note="", identical=0, scale=LOG):
        if design not in (PAIRED, UNPAIRED):
            raise ValueError(f"design must be {PAIRED!r} or {UNPAIRED!r}, not {design!r}")
        if p is not None and not 0.0 <= p <= 1.0:
            raise ValueError(f"p-value {p!r} outside [0, 1]")
        if ci is not None:
            low, high = ci
            if not low <= high:
                raise ValueError(f"confidence interval {ci!r} has low > high")
            ci = (float(low), float(high))
        if direction not in (-1, 0, 1):
            raise ValueError(f"direction must be -1, 0 or 1, not {direction!r}")
        if scale not in (LOG, LOG1):
            raise ValueError(f"scale must be {LOG!r} or {LOG1!r}, not {scale!r}")
        self.design, self.n_baseline, self.n_candidate = design, n_baseline, n_candidate
        self.ratio = None if ratio is None else float(ratio)
        self.ci, self.p, self.direction = ci, None if p is None else float(p), direction
        self.test, self.estimator, self.note = test, estimator, note
        self.identical, self.scale = int(identical), scale

    @property
    def n(self) -> int:
        return min(self.n_baseline, self.n_candidate)

    @property
    def all_identical(self) -> bool:
        """Equal on every seed (paired, or two runs with the same values on the
        same seeds)."""
        return self.n > 0 and self.identical == self.n

    def to_dict(self) -> dict:
        out = {name: getattr(self, name) for name in self.__slots__}
        if out["ci"] is not None:       # JSON has no inf
            out["ci"] = [None if not math.isfinite(v) else v for v in out["ci"]]
        return out

    def values(self) -> list:
        """The constructor's arguments, for `Comparison(*values)` in another
        process (Python's json carries inf, so the interval goes as it is)."""
        return [getattr(self, name) for name in self.__slots__]

    def __repr__(self):
        ci = "none" if self.ci is None else f"[{self.ci[0]:.4f}, {self.ci[1]:.4f}]"
        return (f"<Comparison {self.design} n={self.n} ratio={self.ratio} ci={ci} "
                f"p={self.p} {self.note!r}>")


def differing_bound(n: int, confidence: float = CONFIDENCE) -> float:
    """Exact one-sided upper confidence bound on the share of seeds on which
    two samples differ, when they were equal on all n seeds tried
    (Clopper-Pearson with 0 of n: 1 - (1 - confidence)**(1/n); about 3/n,
    the rule of three)."""
    if n < 1:
        return 1.0
    return 1.0 - (1.0 - confidence) ** (1.0 / n)


def min_p_paired(n: int) -> float:
    """Smallest two-sided p the exact signed-rank test can give with n
    non-zero pairs: every difference of one sign, probability 2 / 2**n."""
    return min(1.0, 2.0 / 2 ** n)


# -- exact null distributions, by dynamic programming ----------------------------------
@functools.lru_cache(maxsize=4096)
def signed_rank_null(weights: tuple) -> tuple:
    """Exact null distribution of the signed-rank statistic T+ = sum of the
    weights of the positive differences, each sign + or - with probability
    1/2 independently. `weights` are doubled (mid-)ranks, so integers.

    Returns (cdf, sf) as numpy arrays indexed by the doubled statistic:
    cdf[t] = P(T <= t), sf[t] = P(T >= t). One numpy shift-and-add per
    observation: O(n * sum(weights)), microseconds for n = 20."""
    total = int(sum(weights))
    pmf = np.zeros(total + 1)
    pmf[0] = 1.0
    top = 0
    for w in weights:
        w = int(w)
        # P_new(t) = (P(t) + P(t - w)) / 2, on the part that can be non-zero
        pmf[w:top + w + 1] += pmf[:top + 1].copy()
        pmf[:top + w + 1] *= 0.5
        top += w
    cdf = np.cumsum(pmf)
    sf = np.cumsum(pmf[::-1])[::-1]
    cdf.setflags(write=False)
    sf.setflags(write=False)
    return cdf, sf


@functools.lru_cache(maxsize=4096)
def rank_sum_null(weights: tuple, m: int) -> tuple:
    """Exact null distribution of the rank sum of the first sample (size m)
    when m of the pooled (mid-)ranks `weights` (doubled, so integers) are
    drawn without replacement, every subset equally likely.

    DP over items: ways[k][s] = subsets of the items seen so far with k
    items and doubled rank sum s; vectorised over s. Returns (cdf, sf)."""
    total = int(sum(weights))
    ways = np.zeros((m + 1, total + 1))
    ways[0, 0] = 1.0
    for w in weights:
        w = int(w)
        # take this item (k-1 -> k, s-w -> s); the right-hand side is the state
        # before it, so each item is taken at most once
        ways[1:, w:] += ways[:-1, :total + 1 - w].copy()
    count = ways[m]
    pmf = count / count.sum()
    cdf = np.cumsum(pmf)
    sf = np.cumsum(pmf[::-1])[::-1]
    cdf.setflags(write=False)
    sf.setflags(write=False)
    return cdf, sf


def _two_sided(cdf, sf, t2) -> float:
    t2 = int(round(t2))
    return float(min(1.0, 2.0 * min(cdf[t2], sf[t2])))


def _doubled_midranks(values) -> np.ndarray:
    """2 x the mid-ranks of `values` (ties get the mean of the ranks they
    span), as integers: what `scipy.stats.rankdata(values, "average")`
    gives, doubled. Done here with one sort because rankdata's per-call
    overhead (about 100 us on arrays of 5 to 20 values) was most of the
    statistics' time: a report evaluates the test once per segment of
    every interval it inverts. A run of equal values spanning sorted
    positions a .. b-1 has ranks a+1 .. b, whose mean doubled is a + b + 1."""
    v = np.asarray(values, dtype=float)
    order = np.argsort(v, kind="mergesort")
    ordered = v[order]
    new = np.r_[True, ordered[1:] != ordered[:-1]]      # a run of equal values starts
    bounds = np.r_[np.flatnonzero(new), len(v)]
    out = np.empty(len(v), dtype=np.int64)
    out[order] = (bounds[:-1] + bounds[1:] + 1)[np.cumsum(new) - 1]
    return out


def signed_rank_p(d) -> tuple:
    """(two-sided exact p, doubled T+) of the signed-rank test of d about 0,
    Pratt's treatment of zeros, mid-ranks with the null conditional on the
    ties. p is 1.0 when every d is 0."""
    d = np.asarray(d, dtype=float)
    nonzero = d != 0
    if not nonzero.any():
        return 1.0, 0
    ranks = _doubled_midranks(np.abs(d))
    weights = ranks[nonzero]
    t2 = int(weights[d[nonzero] > 0].sum())
    cdf, sf = signed_rank_null(tuple(sorted(weights.tolist())))
    return _two_sided(cdf, sf, t2), t2


def rank_sum_p(x, y) -> tuple:
    """(two-sided exact p, doubled rank sum of x) of the Mann-Whitney test,
    mid-ranks over the pooled sample, null conditional on the ties."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ranks = _doubled_midranks(np.concatenate([x, y]))
    t2 = int(ranks[:len(x)].sum())
    cdf, sf = rank_sum_null(tuple(sorted(ranks.tolist())), len(x))
    return _two_sided(cdf, sf, t2), t2


# -- inverting a test into an interval ---------------------------------------------------
def _invert(candidates, pvalue, alpha) -> tuple:
    """The closure of every shift theta the test does not reject (p > alpha).

    `candidates` are the sorted distinct points where the statistic can
    change (Walsh averages, or pairwise differences): the statistic and the
    tie pattern are constant on each open segment between two of them, so
    the test is evaluated once per segment, from each tail inwards, up to
    the first segment not rejected. Returns (low, high): -inf/inf when even
    the outermost segment is not rejected (too few observations), None when
    every segment is (every d equal: only the point estimate survives)."""
    c = candidates
    m = len(c)
    # segment i lies between c[i - 1] and c[i] (i = 0: below all; i = m: above all)
    bounds = [(-math.inf if i == 0 else c[i - 1], math.inf if i == m else c[i])
              for i in range(m + 1)]
    thetas = [c[0] - 1.0] + [(c[i] + c[i + 1]) / 2 for i in range(m - 1)] + [c[-1] + 1.0]
    low = next((bounds[i][0] for i in range(m + 1) if pvalue(thetas[i]) > alpha), None)
    if low is None:             # only points survive (e.g. every d equal): see _hull
        return None
    high = next(bounds[i][1] for i in range(m, -1, -1) if pvalue(thetas[i]) > alpha)
    return low, high


def _walsh(d) -> np.ndarray:
    i, j = np.triu_indices(len(d))
    return np.round((d[i] + d[j]) / 2, DECIMALS)


def hodges_lehmann_paired(d, confidence=CONFIDENCE) -> tuple:
    """(estimate, (low, high), p at 0) for paired differences d, all on one
    scale: HL estimate, the inverted exact signed-rank interval, and the
    signed-rank test at 0. See the module docstring for ties and zeros."""
    d = np.round(np.asarray(d, dtype=float), DECIMALS)
    walsh = _walsh(d)
    estimate = float(np.median(walsh))
    alpha = 1 - confidence
    uniq = np.unique(walsh)

    def pvalue(theta):
        return signed_rank_p(d - theta)[0]
    if len(np.unique(d)) == len(d):
        # no tied d: between Walsh averages there are no ties and no zeros, the
        # null is the one for n, and T+(theta) = #{W > theta}: order statistics
        interval = _untied_walsh_interval(np.sort(walsh), len(d), alpha)
    else:
        interval = _invert(uniq, pvalue, alpha)
    p0 = _p_at_zero(uniq, pvalue)
    return estimate, _hull(interval, alpha, (0.0, p0), (estimate, pvalue(estimate))), p0


def _p_at_zero(candidates, pvalue) -> float:
    """The test of "no change": its p at 0, and when 0 is itself one of the
    points where the statistic jumps (a zero difference, or two seeds with
    opposite log ratios), the largest of its p there and on the segments on
    either side. Taking the largest is conservative (each is a valid p), and
    it is what makes p > alpha exactly when the interval -- the closure of
    the segments not rejected -- holds 0."""
    p = pvalue(0.0)
    i = int(np.searchsorted(candidates, 0.0))
    if i < len(candidates) and candidates[i] == 0.0:
        below = (candidates[i - 1] if i > 0 else -1.0) / 2
        above = (candidates[i + 1] if i + 1 < len(candidates) else 1.0) / 2
        p = max(p, pvalue(below), pvalue(above))
    return p


def _hull(interval, alpha, *points):
    """The interval widened to every evaluated point (theta, p) the test
    does not reject: the interval is the hull of every shift not rejected."""
    for theta, p in points:
        if p > alpha:
            interval = (theta, theta) if interval is None else (
                min(interval[0], theta), max(interval[1], theta))
    return interval


def _untied_walsh_interval(walsh, n, alpha) -> tuple:
    """`_invert` for d without ties, in closed form: on every segment the
    null is the one for n untied ranks and T+(theta) = #{W > theta}, so the
    bounds are the order statistics [W_(k), W_(M+1-k)], k the number of
    segments rejected in each tail; -inf/inf when k = 0."""
    m = len(walsh)
    cdf, _ = signed_rank_null(tuple(range(2, 2 * n + 1, 2)))
    # the segment just above W_(r) has T+ = M - r; by symmetry its p is 2 P(T <= r)
    k = 0
    while k < m and 2.0 * cdf[2 * k] <= alpha:
        k += 1
    if k == 0:
        return -math.inf, math.inf
    return float(walsh[k - 1]), float(walsh[m - k])


def hodges_lehmann_shift(x, y, confidence=CONFIDENCE) -> tuple:
    """(estimate, (low, high), p at 0) of the shift y - x: the median of all
    y_j - x_i, the inverted exact Mann-Whitney interval, the test at 0."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    diffs = np.round((y[None, :] - x[:, None]).ravel(), DECIMALS)
    estimate = float(np.median(diffs))
    alpha = 1 - confidence
    uniq = np.unique(diffs)

    def pvalue(theta):
        return rank_sum_p(x, y - theta)[0]
    if len(np.unique(x)) == len(x) and len(np.unique(y)) == len(y):
        interval = _untied_shift_interval(np.sort(diffs), len(x), len(y), alpha)
    else:
        interval = _invert(uniq, pvalue, alpha)
    p0 = _p_at_zero(uniq, pvalue)
    return estimate, _hull(interval, alpha, (0.0, p0), (estimate, pvalue(estimate))), p0


def _untied_shift_interval(diffs, m, n, alpha) -> tuple:
    """The rank-sum analogue of `_untied_walsh_interval`: with no ties within
    either sample there are none between two differences, and the bounds
    are the order statistics D_(k), D_(mn+1-k) of the y_j - x_i."""
    mn = len(diffs)
    cdf, _ = rank_sum_null(tuple(range(2, 2 * (m + n) + 1, 2)), m)
    # between D_(r) and D_(r+1) the rank sum of x is m(m+1)/2 + r (r of the
    # y_j - delta lie below their x_i): the lower tail for small r
    base = m * (m + 1) // 2
    k = 0
    while k < mn and 2.0 * cdf[2 * (base + k)] <= alpha:
        k += 1
    if k == 0:
        return -math.inf, math.inf
    return float(diffs[k - 1]), float(diffs[mn - k])


# -- the comparisons -------------------------------------------------------------------------
def _scale(*samples) -> tuple:
    """(scale, transform) of a comparison: log, or log(x + 1) when a value is 0."""
    values = np.concatenate([np.asarray(s, dtype=float) for s in samples])
    if len(values) and values.min() < 0:
        raise ValueError(f"negative metric value {values.min()!r}: metrics are >= 0")
    if len(values) and values.min() == 0:
        return LOG1, np.log1p
    return LOG, np.log


def _exp(bound) -> float:
    if bound == -math.inf:
        return 0.0
    if bound == math.inf:
        return math.inf
    return math.exp(bound)


def _direction(estimate) -> int:
    return 0 if estimate == 0 else (1 if estimate > 0 else -1)


PAIRED_TEST = "exact Wilcoxon signed-rank on per-seed log ratios (Pratt zeros, mid-ranks)"
PAIRED_ESTIMATOR = "Hodges-Lehmann pseudo-median of per-seed ratios"
UNPAIRED_TEST = "exact Mann-Whitney on log values (mid-ranks)"
UNPAIRED_ESTIMATOR = "Hodges-Lehmann shift of log values"


def paired(baseline, candidate, confidence=CONFIDENCE) -> Comparison:
    """Compare two samples paired by seed (index i of each is seed i): the
    Hodges-Lehmann estimate of the per-seed log ratio, its interval from
    inverting the exact signed-rank test, and that test at 0."""
    b = np.asarray(baseline, dtype=float)
    c = np.asarray(candidate, dtype=float)
    if b.shape != c.shape or b.ndim != 1:
        raise ValueError(f"paired samples need equal lengths, got {b.shape} and {c.shape}")
    n = len(b)
    scale, f = _scale(b, c)
    same = int((b == c).sum())
    if n == 0:
        return Comparison(PAIRED, 0, 0, None, None, None, 0, "none", PAIRED_ESTIMATOR,
                          "no paired seeds")
    if same == n:
        bound = differing_bound(n)
        return Comparison(PAIRED, n, n, 1.0, (1.0, 1.0), 1.0, 0, "none needed",
                          "ratio 1 (identical samples)",
                          f"identical on {n} of {n} seeds: differs on at most "
                          f"{bound:.0%} of seeds (95% upper bound)", identical=n, scale=scale)
    d = np.round(f(c) - f(b), DECIMALS)
    notes = []
    if same:
        notes.append(f"identical on {same} of {n} seeds")
    if scale == LOG1:
        notes.append("a value is 0: compared as log(value + 1)")
    if n < MIN_N:
        estimate = float(np.median(_walsh(d)))
        notes.append(f"{n} paired seed(s): too few for a test")
        return Comparison(PAIRED, n, n, math.exp(estimate), None, None, _direction(estimate),
                          "none", PAIRED_ESTIMATOR, "; ".join(notes), same, scale)
    estimate, interval, p = hodges_lehmann_paired(d, confidence)
    ci = None if interval is None else (_exp(interval[0]), _exp(interval[1]))
    nonzero = n - same
    if min_p_paired(nonzero) > 1 - confidence:
        notes.append(f"{nonzero} differing seeds: the smallest possible p is "
                     f"{min_p_paired(nonzero):.3g}, no {confidence:.0%} interval is finite")
    return Comparison(PAIRED, n, n, math.exp(estimate), ci, p, _direction(estimate),
                      PAIRED_TEST, PAIRED_ESTIMATOR, "; ".join(notes), same, scale)


def unpaired(baseline, candidate, confidence=CONFIDENCE) -> Comparison:
    """Compare two independent samples (no common seeds, or different
    programs on them): the Hodges-Lehmann shift of the logs, its interval
    from inverting the exact Mann-Whitney test, and that test at 0."""
    b = np.asarray(baseline, dtype=float)
    c = np.asarray(candidate, dtype=float)
    if b.ndim != 1 or c.ndim != 1:
        raise ValueError("samples must be one-dimensional")
    nb, nc = len(b), len(c)
    if not nb or not nc:
        return Comparison(UNPAIRED, nb, nc, None, None, None, 0, "none", UNPAIRED_ESTIMATOR,
                          "a side has no values")
    scale, f = _scale(b, c)
    notes = ["a value is 0: compared as log(value + 1)"] if scale == LOG1 else []
    lb, lc = np.round(f(b), DECIMALS), np.round(f(c), DECIMALS)
    if np.ptp(np.concatenate([lb, lc])) == 0:
        return Comparison(UNPAIRED, nb, nc, 1.0, (1.0, 1.0), 1.0, 0, "none needed",
                          UNPAIRED_ESTIMATOR, "every value identical", scale=scale)
    if min(nb, nc) < MIN_N:
        estimate = float(np.median(np.subtract.outer(lc, lb)))
        notes.append(f"{nb} and {nc} values: too few for a test")
        return Comparison(UNPAIRED, nb, nc, math.exp(estimate), None, None,
                          _direction(estimate), "none", UNPAIRED_ESTIMATOR, "; ".join(notes),
                          scale=scale)
    estimate, interval, p = hodges_lehmann_shift(lb, lc, confidence)
    ci = None if interval is None else (_exp(interval[0]), _exp(interval[1]))
    return Comparison(UNPAIRED, nb, nc, math.exp(estimate), ci, p, _direction(estimate),
                      UNPAIRED_TEST, UNPAIRED_ESTIMATOR, "; ".join(notes), scale=scale)


def identical(design, n_baseline, n_candidate, why) -> Comparison:
    """Two runs holding the same values on the same seeds with the same
    programs (a saved run against this one): nothing changed on those seeds."""
    n = min(n_baseline, n_candidate)
    return Comparison(design, n_baseline, n_candidate, 1.0, (1.0, 1.0), 1.0, 0,
                      "none needed", "ratio 1 (identical samples)",
                      f"{why}: differs on at most {differing_bound(n):.0%} of seeds (95% "
                      f"upper bound)", identical=n)


def adjust(pvalues) -> list:
    """Benjamini-Hochberg adjusted p-values (`_bh`) over every comparison
    that has a p-value; None stays None (no test, so not part of the family). The family is the whole report:
    controlling the false discovery rate across all of it is what lets a
    reviewer read one table of many policies x metrics without being fooled
    by the 1-in-20 chance hit."""
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    out = [None] * len(pvalues)
    if idx:
        for i, q in zip(idx, _bh([pvalues[i] for i in idx])):
            out[i] = float(min(1.0, q))
    return out


def _bh(pvalues) -> np.ndarray:
    """The Benjamini-Hochberg step-up adjustment, q_(i) = min over j >= i of
    p_(j) m / j: what `scipy.stats.false_discovery_control(ps, method="bh")`
    computes, step for step (tests/test_stats.py holds the two equal), done
    here so that judging a report does not import scipy.stats."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p)
    m = len(p)
    q = p[order] * (m / np.arange(1, m + 1, dtype=float))
    np.minimum.accumulate(q[::-1], out=q[::-1])
    out = np.empty(m)
    out[order] = np.clip(q, 0.0, 1.0)
    return out

"""Two-sample statistics for one comparison, and the multiple-testing
adjustment across a report (DESIGN §6). Everything numerical is scipy's:
this module chooses the method, feeds it the right scale, and handles the
degenerate inputs a deterministic simulator produces, explicitly.

Two designs:

* **paired** (`paired`): baseline and candidate policy in one run execute the
  same seeds, so seed i of one and seed i of the other see the same workload
  (common random numbers). The test is `scipy.stats.wilcoxon` (signed-rank)
  on the per-seed log ratios log(candidate / baseline); the effect is the
  *geometric mean of the per-seed ratios*, exp(mean(log ratio)), with a BCa
  bootstrap interval from `scipy.stats.bootstrap(..., paired=True)`.
* **unpaired** (`unpaired`): a saved run from another commit against this
  run, or data without seeds. The test is `scipy.stats.mannwhitneyu`; the
  effect is the *ratio of medians* (candidate / baseline) with a BCa
  bootstrap interval that resamples each sample on its own.

Degenerate inputs, each reported in `Comparison.note`:

* every paired difference is zero (the engine is deterministic, so the two
  policies behave identically on those seeds), or two runs hold the same
  values on the same seeds (`identical`): no test is needed; p = 1, ratio
  1, interval [1, 1];
* a value <= 0 (counts such as `ipis_to_lazy` are often 0): the log is
  impossible, so the signed-rank test runs on the plain differences and the
  effect is the ratio of the means, mean(candidate) / mean(baseline);
  when the baseline mean is 0 there is no relative change, `ratio` is None
  and only the test can decide (see `verdicts.verdict`);
* too few seeds: below `MIN_N` no test is run (p is None). Above it the
  exact test still has a floor: the smallest two-sided signed-rank p with
  n pairs is 2 / 2**n, so with 5 seeds (0.0625) nothing can be significant
  at alpha = 0.05. `min_p_paired` says so and the adaptive rounds add seeds;
* every bootstrap statistic equal (all ratios the same): the interval is
  that point; when BCa cannot be computed (scipy returns NaN, e.g. a
  degenerate jackknife) the percentile interval is used instead.

Every random choice uses a fixed seed (`BOOTSTRAP_SEED`), so one set of
samples gives one report, bit for bit.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
N_RESAMPLES = 9999
BOOTSTRAP_SEED = 20190531      # the date of seed 002: any fixed value makes reports repeatable
MIN_N = 3                      # fewer paired seeds (or values per side) than this: no test

PAIRED, UNPAIRED = "paired", "unpaired"


class Comparison:
    """The outcome of comparing one metric between a baseline sample and a
    candidate sample.

    ratio: candidate / baseline as the design's estimator says (`estimator`),
    or None when it is undefined; ci: (low, high) bounds of `ratio` at
    `CONFIDENCE`, or None; p: the test's two-sided p-value, or None when no
    test was possible; direction: sign of the change (candidate - baseline)
    on the test's scale, -1, 0 or 1; n_baseline/n_candidate: values used (for
    a paired comparison both are the number of pairs)."""

    __slots__ = ("design", "n_baseline", "n_candidate", "ratio", "ci", "p", "direction",
                 "test", "estimator", "note")

    def __init__(self, design, n_baseline, n_candidate, ratio, ci, p, direction, test,
                 estimator, note=""):
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
        self.design, self.n_baseline, self.n_candidate = design, n_baseline, n_candidate
        self.ratio = None if ratio is None else float(ratio)
        self.ci, self.p, self.direction = ci, None if p is None else float(p), direction
        self.test, self.estimator, self.note = test, estimator, note

    @property
    def n(self) -> int:
        return min(self.n_baseline, self.n_candidate)

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self):
        ci = "none" if self.ci is None else f"[{self.ci[0]:.4f}, {self.ci[1]:.4f}]"
        return (f"<Comparison {self.design} n={self.n} ratio={self.ratio} ci={ci} "
                f"p={self.p} {self.note!r}>")


def min_p_paired(n: int) -> float:
    """Smallest two-sided p the exact signed-rank test can give with n
    non-zero pairs: every difference of one sign, probability 2 / 2**n."""
    return min(1.0, 2.0 / 2 ** n)


def _rng():
    return np.random.default_rng(BOOTSTRAP_SEED)


def _interval(data, statistic, paired):
    """`scipy.stats.bootstrap` interval of `statistic`: BCa, or percentile
    when BCa is NaN; None when neither is finite."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")     # DegenerateDataWarning: handled below
        for method in ("BCa", "percentile"):
            res = stats.bootstrap(data, statistic, paired=paired, vectorized=True,
                                  n_resamples=N_RESAMPLES, confidence_level=CONFIDENCE,
                                  method=method, rng=_rng())
            low, high = res.confidence_interval
            if math.isfinite(low) and math.isfinite(high):
                return (float(low), float(high))
    return None


def identical(design, n_baseline, n_candidate, why) -> Comparison:
    """The comparison of samples that are equal value for value: no test is
    needed (the engine is deterministic, so equal inputs gave equal
    outputs); ratio 1, interval [1, 1], p = 1."""
    return Comparison(design, n_baseline, n_candidate, 1.0, (1.0, 1.0), 1.0, 0,
                      "none needed", "ratio 1 (identical samples)", why)


def paired(baseline, candidate) -> Comparison:
    """Compare two samples paired by seed (index i of each is seed i).

    Test: `scipy.stats.wilcoxon` on the per-seed log ratios (zero_method
    'pratt': a seed where both agree counts as evidence of no change rather
    than being dropped; scipy uses the exact null distribution when there
    are no ties or zeros and n <= 50, an exact enumeration of the 2**n sign
    flips when there are, up to n = 13, and the normal approximation
    beyond). Effect: the
    geometric mean of the per-seed ratios, because log ratios are what the
    test ranks and a ratio is what a reviewer reads ("-14%"). Interval:
    `scipy.stats.bootstrap(..., paired=True)` of the mean log ratio, BCa,
    exponentiated. Non-positive values fall back to differences (see the
    module docstring)."""
    b = np.asarray(baseline, dtype=float)
    c = np.asarray(candidate, dtype=float)
    if b.shape != c.shape or b.ndim != 1:
        raise ValueError(f"paired samples need equal lengths, got {b.shape} and {c.shape}")
    n = len(b)
    diff = c - b
    direction = int(np.sign(diff.mean())) if n else 0
    if n and not diff.any():
        return identical(PAIRED, n, n, f"identical on all {n} seeds")
    positive = bool(n) and bool((b > 0).all() and (c > 0).all())
    estimator = "geometric mean of per-seed ratios" if positive else "ratio of means"
    if n < MIN_N:
        ratio = (math.exp(np.mean(np.log(c / b))) if positive
                 else (c.mean() / b.mean() if n and b.mean() > 0 else None))
        return Comparison(PAIRED, n, n, ratio, None, None, direction, "none",
                          estimator, f"{n} paired seed(s): too few for a test")
    notes = []
    if positive:
        logratio = np.log(c) - np.log(b)
        test = "Wilcoxon signed-rank on per-seed log ratios"
        p = stats.wilcoxon(logratio, zero_method="pratt").pvalue
        ratio = math.exp(logratio.mean())
        direction = int(np.sign(logratio.mean()))
        if np.ptp(logratio) <= 1e-12:      # equal up to rounding: nothing to resample
            ci = (ratio, ratio)
            notes.append("every seed gives the same ratio")
        else:
            def mean_log_ratio(x, y, axis=-1):
                return np.mean(np.log(y) - np.log(x), axis=axis)
            ci = _interval((b, c), mean_log_ratio, True)
            ci = None if ci is None else (math.exp(ci[0]), math.exp(ci[1]))
    else:
        test = "Wilcoxon signed-rank on per-seed differences (a value <= 0: no log)"
        p = stats.wilcoxon(diff, zero_method="pratt").pvalue
        if b.mean() > 0:
            ratio = c.mean() / b.mean()

            def ratio_of_means(x, y, axis=-1):
                return np.mean(y, axis=axis) / np.mean(x, axis=axis)
            ci = _interval((b, c), ratio_of_means, True)
        else:
            ratio, ci = None, None
            notes.append("baseline mean is 0: no relative change; the test alone decides")
    floor = min_p_paired(n)
    if floor >= 0.05:
        notes.append(f"{n} seeds: the smallest possible p is {floor:.3g}")
    return Comparison(PAIRED, n, n, ratio, ci, float(np.clip(p, 0.0, 1.0)), direction, test,
                      estimator, "; ".join(notes))


def unpaired(baseline, candidate) -> Comparison:
    """Compare two independent samples (no common seeds to pair on).

    Test: `scipy.stats.mannwhitneyu`, two-sided; exact when scipy's 'auto'
    picks it, and an exact/seeded permutation test of the same U statistic
    (`scipy.stats.PermutationMethod`) when ties meet a small sample, where
    scipy's 'auto' would fall back to the normal approximation. Effect: the
    ratio of medians, robust to the odd outlying seed; interval:
    `scipy.stats.bootstrap` resampling each sample independently, BCa."""
    b = np.asarray(baseline, dtype=float)
    c = np.asarray(candidate, dtype=float)
    if b.ndim != 1 or c.ndim != 1:
        raise ValueError("samples must be one-dimensional")
    nb, nc = len(b), len(c)
    estimator = "ratio of medians"
    mb = float(np.median(b)) if nb else math.nan
    mc = float(np.median(c)) if nc else math.nan
    direction = int(np.sign(mc - mb)) if nb and nc else 0
    ratio = mc / mb if nb and nc and mb > 0 else None
    if nb and nc and np.ptp(np.concatenate([b, c])) == 0:
        return Comparison(UNPAIRED, nb, nc, 1.0 if mb > 0 else None,
                          (1.0, 1.0) if mb > 0 else None, 1.0, 0, "none needed", estimator,
                          "every value identical")
    if min(nb, nc) < MIN_N:
        return Comparison(UNPAIRED, nb, nc, ratio, None, None, direction, "none", estimator,
                          f"{nb} and {nc} values: too few for a test")
    values = np.concatenate([b, c])
    ties = len(np.unique(values)) < len(values)
    method = "auto"
    if ties and min(nb, nc) <= 8:
        method = stats.PermutationMethod(n_resamples=N_RESAMPLES, rng=_rng())
    p = stats.mannwhitneyu(b, c, alternative="two-sided", method=method).pvalue
    notes = []
    if ratio is None:
        ci = None
        notes.append("baseline median is 0: no relative change; the test alone decides")
    else:
        def ratio_of_medians(x, y, axis=-1):
            return np.median(y, axis=axis) / np.median(x, axis=axis)
        ci = _interval((b, c), ratio_of_medians, False)
    return Comparison(UNPAIRED, nb, nc, ratio, ci, float(np.clip(p, 0.0, 1.0)), direction,
                      "Mann-Whitney U", estimator, "; ".join(notes))


def adjust(pvalues) -> list:
    """Benjamini-Hochberg adjusted p-values (`scipy.stats.false_discovery_control`,
    method 'bh') over every comparison that has a p-value; None stays None
    (no test, so not part of the family). The family is the whole report:
    controlling the false discovery rate across all of it is what lets a
    reviewer read one table of many policies x metrics without being fooled
    by the 1-in-20 chance hit."""
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    out = [None] * len(pvalues)
    if idx:
        adjusted = stats.false_discovery_control([pvalues[i] for i in idx], method="bh")
        for i, q in zip(idx, np.atleast_1d(adjusted)):
            out[i] = float(min(1.0, q))
    return out

"""Statistics and verdicts on constructed data with known answers (issues 6
and 14): the exact null distributions against brute-force enumeration,
p-values against scipy's exact ones and R's documented example, intervals
against a brute-force inversion of their test, the degenerate cases, the
group-sequential design, the Benjamini-Hochberg adjustment across a
report, and the verdict rule at the edges of its threshold."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from pytest_tlbperf.reports import sequential, stats, verdicts
from pytest_tlbperf.reports.stats import Comparison
from pytest_tlbperf.reports.thresholds import Thresholds
from pytest_tlbperf.reports.verdicts import (IMPROVEMENT, INCONCLUSIVE, NO_CHANGE, REGRESSION,
                                             verdict)

BASE = [1092.0, 1100, 1106, 1108, 1111, 1125, 1122, 1095, 1110, 1125]
WOBBLE = [1.002, 0.997, 1.004, 0.999, 1.001, 0.996, 1.003, 1.000, 0.998, 1.002]


def scaled(values, factor, wobble=WOBBLE):
    return [v * factor * w for v, w in zip(values, wobble)]


# -- exact null distributions ---------------------------------------------------------
def _brute_signed_rank(weights):
    """Every sign pattern of the weights, enumerated: the definition."""
    sums = np.array([sum(w for w, s in zip(weights, signs) if s)
                     for signs in itertools.product((0, 1), repeat=len(weights))])
    return sums


@pytest.mark.parametrize("weights", [
    tuple(range(2, 21, 2)),                      # n = 10, no ties (doubled ranks)
    (2, 4, 6),                                   # n = 3
    (3, 3, 6, 9, 9, 12),                         # mid-ranks 1.5, 1.5, 3, 4.5, 4.5, 6
    (4, 4, 4, 8, 10, 12, 14, 16),                # Pratt: two zeros hold ranks 1-2
])
def test_signed_rank_null_matches_brute_force_enumeration(weights):
    cdf, sf = stats.signed_rank_null(weights)
    sums = _brute_signed_rank(weights)
    for t in range(sum(weights) + 1):
        assert cdf[t] == pytest.approx((sums <= t).mean(), abs=1e-15)
        assert sf[t] == pytest.approx((sums >= t).mean(), abs=1e-15)


def test_rank_sum_null_matches_brute_force_enumeration():
    weights, m = (2, 5, 5, 8, 10, 12, 15, 15), 3      # mid-ranks with two tie pairs
    sums = np.array([sum(c) for c in itertools.combinations(weights, m)])
    cdf, sf = stats.rank_sum_null(weights, m)
    for t in range(sum(weights) + 1):
        assert cdf[t] == pytest.approx((sums <= t).mean(), abs=1e-15)
        assert sf[t] == pytest.approx((sums >= t).mean(), abs=1e-15)


def test_signed_rank_p_is_scipys_exact_p_without_ties():
    rng = np.random.default_rng(7)
    for n in (5, 8, 10, 20):
        d = rng.normal(0.3, 1.0, n)
        assert stats.signed_rank_p(d)[0] == pytest.approx(
            sps.wilcoxon(d, method="exact").pvalue, rel=1e-12)


def test_rank_sum_p_is_scipys_exact_p_without_ties():
    rng = np.random.default_rng(8)
    x, y = rng.normal(0, 1, 6), rng.normal(1, 1, 9)
    assert stats.rank_sum_p(x, y)[0] == pytest.approx(
        sps.mannwhitneyu(x, y, method="exact").pvalue, rel=1e-12)


# Hollander & Wolfe (1973) p. 29, the example of R's ?wilcox.test: Hamilton
# depression scale before (x) and after (y) tranquilliser. R prints V = 40,
# p-value = 0.01953 for alternative = "greater": two-sided 2 * 10/512.
HW_X = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
HW_Y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]


def test_hollander_wolfe_example_p_estimate_and_interval():
    d = np.array(HW_X) - np.array(HW_Y)
    p, t2 = stats.signed_rank_p(d)
    assert t2 == 2 * 40 and p == pytest.approx(2 * 10 / 512)
    estimate, (low, high), p0 = stats.hodges_lehmann_paired(d)
    walsh = np.sort([(a + b) / 2 for i, a in enumerate(d) for b in d[i:]])
    assert estimate == pytest.approx(np.median(walsh))
    # n = 9: P(T+ <= 5) = 10/512 (two-sided 0.039 <= 0.05), P(T+ <= 6) = 14/512
    # (0.055): the interval is [W_(6), W_(40)] of the 45 Walsh averages
    assert (low, high) == (pytest.approx(walsh[5]), pytest.approx(walsh[39]))
    assert low > 0 and p0 < 0.05


def _grid_inversion(pvalue, lo, hi, alpha=0.05, steps=4001):
    """Every theta on a fine grid the test does not reject: the interval by
    brute force, independent of the order-statistic formulas."""
    grid = np.linspace(lo, hi, steps)
    kept = [th for th in grid if pvalue(th) > alpha]
    return min(kept), max(kept)


@pytest.mark.parametrize("d", [
    [0.05, -0.02, 0.13, 0.07, 0.09, 0.11, -0.04, 0.2, 0.03, 0.08],     # no ties
    [0.0, 0.0, 0.1, 0.1, 0.1, -0.05, 0.2, 0.3, 0.0, 0.15, 0.1, 0.25],   # zeros and ties
])
def test_paired_interval_is_the_set_the_test_does_not_reject(d):
    d = np.array(d)
    _, (low, high), _ = stats.hodges_lehmann_paired(d)
    glow, ghigh = _grid_inversion(lambda th: stats.signed_rank_p(d - th)[0], -0.5, 0.7)
    step = 1.2 / 4000
    assert low == pytest.approx(glow, abs=step) and high == pytest.approx(ghigh, abs=step)


def test_shift_interval_is_the_set_the_test_does_not_reject():
    x = np.array([1.0, 2.5, 3.1, 4.7, 5.2, 2.2])
    for y in (np.array([3.3, 4.1, 6.0, 7.2, 8.8, 9.1, 5.5]),
              np.array([3.3, 4.1, 4.1, 7.2, 7.2, 9.1, 5.5])):        # ties within y
        _, (low, high), _ = stats.hodges_lehmann_shift(x, y)
        glow, ghigh = _grid_inversion(lambda th: stats.rank_sum_p(x, y - th)[0], -5, 12)
        step = 17 / 4000
        assert low == pytest.approx(glow, abs=step) and high == pytest.approx(ghigh, abs=step)


def test_test_and_interval_agree_on_random_data():
    """p > alpha exactly when the interval holds ratio 1: the interval is
    the inversion of the test that gives p (ties and zeros included)."""
    rng = np.random.default_rng(11)
    for trial in range(300):
        n = int(rng.integers(6, 21))
        b = rng.integers(95, 106, n).astype(float)            # integers: ties and zeros
        c = b * rng.choice([0.97, 1.0, 1.02, 1.04], n) if trial % 2 else \
            b * rng.normal(1.02, 0.03, n)
        cmp_ = stats.paired(b, c)
        if cmp_.all_identical or cmp_.ci is None:
            continue
        holds_one = cmp_.ci[0] <= 1.0 <= cmp_.ci[1]
        assert (cmp_.p > 0.05) == holds_one, (b, c, cmp_)


# -- paired ----------------------------------------------------------------------------
def test_paired_clear_regression_has_the_exact_p_and_the_hodges_lehmann_ratio():
    c = stats.paired(BASE, scaled(BASE, 1.10))
    assert c.design == stats.PAIRED and c.n == 10
    # all ten log ratios positive: exact two-sided p = 2 / 2**10
    assert c.p == pytest.approx(2 / 2 ** 10)
    logs = np.log(1.10 * np.array(WOBBLE))
    walsh = [(a + b) / 2 for i, a in enumerate(logs) for b in logs[i:]]
    assert c.ratio == pytest.approx(math.exp(np.median(walsh)), rel=1e-9)
    assert 1.09 < c.ci[0] < c.ratio < c.ci[1] < 1.11
    assert c.direction == 1 and "Hodges-Lehmann" in c.estimator


def test_paired_clear_improvement():
    c = stats.paired(BASE, scaled(BASE, 0.85))
    assert c.p == pytest.approx(2 / 2 ** 10) and c.direction == -1
    assert 0.84 < c.ci[0] < c.ratio < c.ci[1] < 0.86


def test_paired_identical_samples_say_so_and_bound_the_share_that_differs():
    c = stats.paired(BASE, list(BASE))
    assert (c.ratio, c.ci, c.p, c.direction) == (1.0, (1.0, 1.0), 1.0, 0)
    assert c.all_identical and "identical on 10 of 10 seeds" in c.note
    # 0 of 10 differing: Clopper-Pearson one-sided 95% upper bound 1 - 0.05**(1/10)
    assert stats.differing_bound(10) == pytest.approx(0.2589, abs=1e-4)
    assert "at most 26% of seeds" in c.note
    assert sps.binomtest(0, 20).proportion_ci(0.90, "exact").high == \
        pytest.approx(stats.differing_bound(20))


def test_identical_seeds_are_no_change_only_once_enough_seeds_bound_the_share():
    for n, expected in ((5, INCONCLUSIVE), (10, INCONCLUSIVE), (20, NO_CHANGE)):
        c = stats.paired([7.0] * n, [7.0] * n)
        assert verdict(c, c.p, "lower", 0.02) == expected, n


def test_paired_constant_ratio_gives_a_point_interval():
    c = stats.paired(BASE, [v * 1.05 for v in BASE])
    assert c.ci[0] == pytest.approx(1.05) and c.ci[1] == pytest.approx(1.05)


def test_paired_five_seeds_cannot_be_significant_and_have_no_finite_interval():
    c = stats.paired(BASE[:5], scaled(BASE[:5], 1.5))
    assert c.p == pytest.approx(0.0625) and stats.min_p_paired(5) == 0.0625
    assert c.ci == (0.0, math.inf) and "smallest possible p is 0.0625" in c.note
    assert verdict(c, c.p, "lower", 0.02) == INCONCLUSIVE


def test_paired_too_few_seeds_has_no_test():
    c = stats.paired([100.0, 110.0], [120.0, 130.0])
    assert c.p is None and c.ci is None and "too few" in c.note


def test_paired_zero_values_are_compared_as_log_of_value_plus_one():
    b = [0.0, 2, 1, 3, 0, 2, 1, 4]
    c = [5.0, 7, 6, 9, 4, 8, 6, 9]
    cmp_ = stats.paired(b, c)
    assert cmp_.scale == stats.LOG1 and "log(value + 1)" in cmp_.note
    d = np.log1p(c) - np.log1p(b)
    walsh = [(x + y) / 2 for i, x in enumerate(d) for y in d[i:]]
    assert cmp_.ratio == pytest.approx(math.exp(np.median(walsh)))
    assert cmp_.p == pytest.approx(2 / 2 ** 8) and cmp_.ci[0] > 1


def test_paired_baseline_all_zero_still_has_a_ratio_of_value_plus_one():
    cmp_ = stats.paired([0.0] * 8, [1.0, 2, 1, 3, 2, 1, 2, 4])
    assert cmp_.direction == 1 and cmp_.p == pytest.approx(2 / 2 ** 8)
    assert cmp_.ratio == pytest.approx(math.exp(np.median(
        [(x + y) / 2 for i, x in enumerate(np.log1p([1, 2, 1, 3, 2, 1, 2, 4]))
         for y in np.log1p([1, 2, 1, 3, 2, 1, 2, 4])[i:]])))


def test_paired_some_identical_seeds_are_counted():
    b = list(BASE)
    c = [v * 1.1 if i % 2 else v for i, v in enumerate(BASE)]
    cmp_ = stats.paired(b, c)
    assert cmp_.identical == 5 and "identical on 5 of 10 seeds" in cmp_.note


def test_paired_needs_equal_lengths_and_non_negative_values():
    with pytest.raises(ValueError, match="equal lengths"):
        stats.paired([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="negative"):
        stats.paired([1.0, -2.0, 3.0], [1.0, 2.0, 3.0])


def test_the_statistics_never_call_scipys_permutation_paths(monkeypatch):
    """Issue 16: scipy's wilcoxon enumerates 2**n sign flips per call on
    ties; the exact tables here replace it."""
    def boom(*a, **k):
        raise AssertionError("scipy permutation path called")
    monkeypatch.setattr(sps, "wilcoxon", boom)
    monkeypatch.setattr(sps, "mannwhitneyu", boom)
    monkeypatch.setattr(sps, "permutation_test", boom)
    monkeypatch.setattr(sps, "bootstrap", boom)
    stats.paired([10.0, 10, 11, 11, 12, 12, 13, 14], [11.0, 10, 12, 12, 12, 14, 13, 15])
    stats.unpaired([10.0, 10, 11, 11, 12], [12.0, 13, 13, 14, 14])


# -- unpaired ----------------------------------------------------------------------------
def test_unpaired_clear_shift_uses_mann_whitney_and_the_hodges_lehmann_shift():
    b = [100.0, 101, 102, 103, 104]
    c = [120.0, 121, 122, 123, 124]
    cmp_ = stats.unpaired(b, c)
    assert cmp_.design == stats.UNPAIRED and "Mann-Whitney" in cmp_.test
    # complete separation of 5 vs 5: exact two-sided p = 2 / C(10, 5)
    assert cmp_.p == pytest.approx(2 / 252)
    shifts = np.subtract.outer(np.log(c), np.log(b)).ravel()
    assert cmp_.ratio == pytest.approx(math.exp(np.median(shifts)))
    assert 1.1 < cmp_.ci[0] <= cmp_.ratio <= cmp_.ci[1] < 1.3


def test_unpaired_with_ties_is_exact_and_repeatable():
    b = [10.0, 10, 11, 11, 12]
    c = [12.0, 13, 13, 14, 14]
    first, second = stats.unpaired(b, c), stats.unpaired(b, c)
    assert first.p == second.p and 0 < first.p < 0.05
    # brute force over all C(10, 5) splits of the pooled mid-ranks
    ranks = sps.rankdata(np.log(b + c))
    obs = ranks[:5].sum()
    sums = np.array([sum(s) for s in itertools.combinations(ranks, 5)])
    expected = 2 * min((sums <= obs + 1e-9).mean(), (sums >= obs - 1e-9).mean())
    assert first.p == pytest.approx(expected)


def test_unpaired_all_values_identical():
    cmp_ = stats.unpaired([7.0] * 5, [7.0] * 6)
    assert (cmp_.ratio, cmp_.ci, cmp_.p) == (1.0, (1.0, 1.0), 1.0)


def test_unpaired_too_few_values():
    cmp_ = stats.unpaired([1.0, 2.0], [3.0, 4.0, 5.0])
    assert cmp_.p is None and "too few" in cmp_.note


# -- the group-sequential design ---------------------------------------------------------
def test_alpha_spending_splits_alpha_over_the_looks():
    table = sequential.table(5, 20, 0.05)
    assert [n for n, _ in table] == [5, 10, 20]
    assert sum(a for _, a in table) == pytest.approx(0.05)
    # O'Brien-Fleming type: 2 - 2 Phi(1.96 / sqrt(t)) at t = 1/4, 1/2
    z = sps.norm.ppf(0.975)
    assert table[0][1] == pytest.approx(2 - 2 * sps.norm.cdf(z / 0.5))
    assert table[1][1] == pytest.approx(2 - 2 * sps.norm.cdf(z / math.sqrt(0.5)) - table[0][1])
    assert sequential.table(5, None, 0.05) == [(5, 0.05)]
    assert sequential.look_alpha(20, 20, 20, 0.05) == 0.05


def test_a_look_is_significant_only_below_its_own_alpha():
    alpha_10 = sequential.look_alpha(10, 5, 20, 0.05)
    assert sequential.sequential_p(alpha_10 * 0.99, alpha_10, 0.05) < 0.05
    assert sequential.sequential_p(alpha_10 * 1.01, alpha_10, 0.05) > 0.05
    # a clear effect on 10 seeds (all ten of one sign, p = 2/1024) passes look 2
    assert 2 / 1024 < alpha_10


def test_adaptive_findings_carry_their_looks_alpha():
    run = {"baseline": "base", "options": {"rounds": 5, "max_rounds": 20}, "cells": [
        _cell("t", "base", {"madvise_ns": BASE}),
        _cell("t", "cand", {"madvise_ns": scaled(BASE, 1.10)})]}
    (f,) = verdicts.compare_runs(run)
    assert f.look_alpha == pytest.approx(sequential.look_alpha(10, 5, 20, 0.05))
    assert f.p_sequential == pytest.approx(2 / 1024 * 0.05 / f.look_alpha)
    assert f.verdict == REGRESSION


# -- Benjamini-Hochberg ----------------------------------------------------------------------
def test_bh_adjustment_matches_the_hand_computed_values_and_keeps_none():
    # sorted 0.01, 0.03, 0.04, 0.5 -> p*m/rank = 0.04, 0.06, 0.0533, 0.5 -> running minimum
    out = stats.adjust([0.01, 0.04, None, 0.03, 0.5])
    assert out[2] is None
    assert out[0] == pytest.approx(0.04)
    assert out[1] == pytest.approx(0.16 / 3) and out[3] == pytest.approx(0.16 / 3)
    assert out[4] == pytest.approx(0.5)


@pytest.mark.parametrize("seed", range(40))
def test_bh_adjustment_is_scipys_bit_for_bit(seed):
    """reports.stats computes BH itself (importing scipy.stats would double
    a session's memory, issue 16): it must be scipy's own adjustment, ties
    (identical comparisons share a p) included."""
    rng = np.random.default_rng(seed)
    p = rng.random(rng.integers(1, 60)) ** 3
    if seed % 2:
        p[: len(p) // 2] = p[0]
    assert np.array_equal(stats._bh(p), sps.false_discovery_control(p, method="bh"))


def test_clopper_pearson_rates_are_scipys_exact_binomial_interval():
    from pytest_tlbperf.reports import validation
    for n in (1, 2, 7, 20, 100, 400):
        for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            ci = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
            low, high = validation.clopper_pearson(k, n)
            assert low == pytest.approx(ci.low, abs=1e-12)
            assert high == pytest.approx(ci.high, abs=1e-12)
    assert validation.rate(3, 400) == "3/400 (0.8%, 95% CI 0.2%-2.2%)"


def test_fdr_turns_a_lone_hit_among_many_nulls_into_inconclusive():
    """One comparison with p = 0.002 (significant alone) among 40 identical
    ones: after BH over the 41 it is 0.08, no longer below alpha."""
    run = {"baseline": "base", "cells": [
        _cell("t", "base", {"madvise_ns": BASE}),
        _cell("t", "cand", {"madvise_ns": scaled(BASE, 1.10)}),
    ]}
    alone = verdicts.compare_runs(run)
    assert [f.verdict for f in alone] == [REGRESSION]
    for i in range(40):
        run["cells"] += [_cell(f"t{i:02d}", "base", {"madvise_ns": BASE}),
                         _cell(f"t{i:02d}", "cand", {"madvise_ns": list(BASE)})]
    many = verdicts.compare_runs(run)
    lone = next(f for f in many if f.test == "t")
    assert lone.comparison.p == pytest.approx(2 / 2 ** 10)
    assert lone.p_adjusted == pytest.approx(2 / 2 ** 10 * 41)
    assert lone.verdict == INCONCLUSIVE


def _cell(test, policy, metrics, profile="haswell-4c"):
    n = len(next(iter(metrics.values())))
    return {"test": test, "profile": profile, "policy": policy, "metrics": list(metrics),
            "seeds": [{"seed": i, "metrics": {m: v[i] for m, v in metrics.items()},
                       "violations": []} for i in range(n)]}


# -- the verdict rule -------------------------------------------------------------------------
def _cmp(ratio, low, high, direction=None):
    return Comparison(stats.PAIRED, 10, 10, ratio, (low, high), 0.001,
                      direction if direction is not None else (1 if ratio > 1 else -1),
                      "test", "estimator")


@pytest.mark.parametrize("low, high, p, better, expected", [
    (1.05, 1.10, 0.001, "lower", REGRESSION),           # clear regression
    (0.90, 0.95, 0.001, "lower", IMPROVEMENT),           # clear improvement
    (1.05, 1.10, 0.001, "higher", IMPROVEMENT),          # ops/s up is good
    (0.90, 0.95, 0.001, "higher", REGRESSION),           # ops/s down is bad
    (1.05, 1.10, 0.20, "lower", INCONCLUSIVE),           # beyond, but not significant
    (0.99, 1.01, 0.001, "lower", NO_CHANGE),             # significant but tiny
    (0.99, 1.01, 0.90, "lower", NO_CHANGE),              # inside the band
    (0.97, 1.06, 0.30, "lower", INCONCLUSIVE),           # noisy overlap
    (1.01, 1.06, 0.001, "lower", INCONCLUSIVE),          # straddles +2%
    (1.02, 1.05, 0.001, "lower", INCONCLUSIVE),          # edge: touching 1 + t is not beyond
    (1.0201, 1.05, 0.001, "lower", REGRESSION),          # just beyond
    (0.98, 1.02, 0.001, "lower", NO_CHANGE),             # edge: the band includes its bounds
    (0.9799, 1.0, 0.30, "lower", INCONCLUSIVE),          # just outside the band
    (0.93, 0.98, 0.001, "lower", INCONCLUSIVE),          # edge on the good side
    (0.93, 0.9799, 0.001, "lower", IMPROVEMENT),
])
def test_verdict_rule(low, high, p, better, expected):
    ratio = (low + high) / 2
    assert verdict(_cmp(ratio, low, high), p, better, 0.02) == expected


def test_verdict_alpha_is_strict():
    assert verdict(_cmp(1.1, 1.05, 1.15), 0.05, "lower", 0.02) == INCONCLUSIVE
    assert verdict(_cmp(1.1, 1.05, 1.15), 0.0499, "lower", 0.02) == REGRESSION


def test_verdict_without_a_ratio_follows_the_test():
    up = Comparison(stats.PAIRED, 8, 8, None, None, 0.01, 1, "t", "e")
    assert verdict(up, 0.01, "lower", 0.02) == REGRESSION
    assert verdict(up, 0.01, "higher", 0.02) == IMPROVEMENT
    assert verdict(up, 0.20, "lower", 0.02) == INCONCLUSIVE
    no_ci = Comparison(stats.PAIRED, 2, 2, 1.2, None, None, 1, "t", "e")
    assert verdict(no_ci, None, "lower", 0.02) == INCONCLUSIVE


def test_per_metric_threshold_moves_the_edge():
    th = Thresholds.parse(["2", "flush_latency_ns_p99=5"])
    assert th("madvise_ns") == 0.02 and th("flush_latency_ns_p99") == 0.05
    c = _cmp(1.04, 1.03, 1.05)
    assert verdict(c, 0.001, "lower", th("madvise_ns")) == REGRESSION
    assert verdict(c, 0.001, "lower", th("flush_latency_ns_p99")) == NO_CHANGE
    assert th.describe() == "2%, flush_latency_ns_p99 5%"


@pytest.mark.parametrize("spec, message", [
    (["ipis=lots"], "expected PERCENT"), (["nosuch=3"], "unknown metric"),
    (["150"], "not a fraction")])
def test_bad_thresholds_are_named(spec, message):
    with pytest.raises(ValueError, match=message):
        Thresholds.parse(spec)


def test_comparison_validates_on_construction():
    with pytest.raises(ValueError, match="outside"):
        Comparison(stats.PAIRED, 5, 5, 1.0, (1.0, 1.0), 1.5, 0, "t", "e")
    with pytest.raises(ValueError, match="low > high"):
        Comparison(stats.PAIRED, 5, 5, 1.0, (1.1, 1.0), 0.5, 0, "t", "e")


# -- findings from runs ------------------------------------------------------------------------
def test_paired_findings_pair_on_common_seeds_only():
    run = {"baseline": "base", "cells": [
        _cell("t", "base", {"madvise_ns": BASE}),
        _cell("t", "cand", {"madvise_ns": scaled(BASE[:6], 1.1, WOBBLE[:6])}),
    ]}
    (f,) = verdicts.compare_runs(run)
    assert f.seeds == list(range(6)) and f.baseline == BASE[:6]


def test_unpaired_findings_of_identical_runs_are_no_change_without_a_test():
    run = {"id": "0002", "commit": "b", "baseline": "base", "cells": [
        _cell("t", "base", {"ipis": [46.0, 30, 52, 41, 47]})]}
    ref = dict(run, id="0001", commit="a")
    (f,) = verdicts.compare_runs(run, [ref])
    assert f.design == stats.UNPAIRED and f.reference == "run 0001 (a)"
    # identical on 5 of 5 seeds: differs on up to 45% of seeds, not yet no change
    assert f.verdict == INCONCLUSIVE and "identical on all 5 seeds" in f.comparison.note


# -- pairing across commits --------------------------------------------------------------
def _saved(commit, values, digests):
    cell = {"test": "t", "profile": "haswell-4c", "policy": "base", "metrics": ["madvise_ns"],
            "seeds": [{"seed": i, "metrics": {"madvise_ns": v}, "violations": [],
                       "program_digest": d} for i, (v, d) in enumerate(zip(values, digests))]}
    return {"id": commit, "commit": commit, "baseline": "base", "cells": [cell]}


def test_a_saved_run_with_the_same_programs_is_compared_paired_by_seed():
    digests = [f"{i:016x}" for i in range(10)]
    then = _saved("a", BASE, digests)
    now = _saved("b", scaled(BASE, 1.10), digests)
    (f,) = verdicts.compare_runs(now, [then])
    assert f.design == stats.PAIRED and f.seeds == list(range(10)) and f.why == ""
    assert f.comparison.p == pytest.approx(2 / 2 ** 10) and f.verdict == REGRESSION


def test_a_saved_run_with_other_programs_or_no_digests_is_unpaired_and_says_why():
    now = _saved("b", scaled(BASE, 1.10), [f"{i:016x}" for i in range(10)])
    changed = _saved("a", BASE, [f"{i + 1:016x}" for i in range(10)])
    (f,) = verdicts.compare_runs(now, [changed])
    assert f.design == stats.UNPAIRED and "programs differ on 10 of 10" in f.why
    old = _saved("a", BASE, [None] * 10)
    (f,) = verdicts.compare_runs(now, [old])
    assert f.design == stats.UNPAIRED and "no program digests" in f.why


def test_format_1_runs_migrate_without_digests(tmp_path):
    import json
    from pytest_tlbperf.storage import Storage
    run = _saved("v6.1-1-gabcdef1", BASE, [None] * 10)
    for s in run["cells"][0]["seeds"]:
        del s["program_digest"]
    run.update(format="pytest-tlbperf-run", version=1, model_version="1")
    path = tmp_path / "0001_old.json"
    path.write_text(json.dumps(run))
    loaded = Storage(tmp_path).load_file(path)
    assert loaded["version"] == 2 and loaded["commit_sha"] is None
    assert loaded["cells"][0]["rounds"] is None
    assert all(s["program_digest"] is None for s in loaded["cells"][0]["seeds"])


def test_the_text_report_says_identical():
    from pytest_tlbperf.reports import text
    run = {"baseline": "base", "cells": [_cell("t", "base", {"madvise_ns": BASE}),
                                         _cell("t", "cand", {"madvise_ns": BASE})]}
    (f,) = verdicts.compare_runs(run)
    assert text.interval(f) == "identical" and f.verdict == INCONCLUSIVE

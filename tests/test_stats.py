"""Statistics and verdicts on constructed data with known answers (issue 6):
the paired and unpaired comparisons, their degenerate cases, the
Benjamini-Hochberg adjustment across a report, and the verdict rule at the
edges of its threshold."""

import math

import numpy as np
import pytest

from pytest_tlbperf.reports import stats, verdicts
from pytest_tlbperf.reports.stats import Comparison
from pytest_tlbperf.reports.verdicts import (IMPROVEMENT, INCONCLUSIVE, NO_CHANGE, REGRESSION,
                                             Thresholds, verdict)

BASE = [1092.0, 1100, 1106, 1108, 1111, 1125, 1122, 1095, 1110, 1125]
WOBBLE = [1.002, 0.997, 1.004, 0.999, 1.001, 0.996, 1.003, 1.000, 0.998, 1.002]


def scaled(values, factor, wobble=WOBBLE):
    return [v * factor * w for v, w in zip(values, wobble)]


# -- paired ----------------------------------------------------------------------------
def test_paired_clear_regression_has_the_exact_signed_rank_p_and_a_ci_around_the_ratio():
    c = stats.paired(BASE, scaled(BASE, 1.10))
    assert c.design == stats.PAIRED and c.n == 10
    # all ten log ratios positive: exact two-sided p = 2 / 2**10
    assert c.p == pytest.approx(2 / 2 ** 10)
    assert c.ratio == pytest.approx(1.10 * math.exp(np.mean(np.log(WOBBLE))), rel=1e-12)
    assert 1.09 < c.ci[0] < c.ratio < c.ci[1] < 1.11
    assert c.direction == 1 and c.estimator == "geometric mean of per-seed ratios"


def test_paired_clear_improvement():
    c = stats.paired(BASE, scaled(BASE, 0.85))
    assert c.p == pytest.approx(2 / 2 ** 10) and c.direction == -1
    assert 0.84 < c.ci[0] < c.ratio < c.ci[1] < 0.86


def test_paired_identical_samples_need_no_test():
    c = stats.paired(BASE, list(BASE))
    assert (c.ratio, c.ci, c.p, c.direction) == (1.0, (1.0, 1.0), 1.0, 0)
    assert "identical on all 10 seeds" in c.note


def test_paired_constant_ratio_gives_a_point_interval():
    c = stats.paired(BASE, [v * 1.05 for v in BASE])
    assert c.ci[0] == pytest.approx(1.05) and c.ci[1] == pytest.approx(1.05)
    assert "same ratio" in c.note


def test_paired_five_seeds_cannot_be_significant():
    c = stats.paired(BASE[:5], scaled(BASE[:5], 1.5))
    assert c.p == pytest.approx(0.0625) and stats.min_p_paired(5) == 0.0625
    assert "smallest possible p is 0.0625" in c.note


def test_paired_too_few_seeds_has_no_test():
    c = stats.paired([100.0, 110.0], [120.0, 130.0])
    assert c.p is None and c.ci is None and "too few" in c.note
    assert c.ratio == pytest.approx(math.exp(np.mean(np.log([1.2, 130 / 110]))))


def test_paired_zero_values_fall_back_to_differences_and_ratio_of_means():
    b = [0.0, 2, 1, 3, 0, 2, 1, 4]
    c = [5.0, 7, 6, 9, 4, 8, 6, 9]
    cmp_ = stats.paired(b, c)
    assert "differences" in cmp_.test and cmp_.estimator == "ratio of means"
    assert cmp_.ratio == pytest.approx(np.mean(c) / np.mean(b))
    assert cmp_.p == pytest.approx(2 / 2 ** 8) and cmp_.ci[0] > 1


def test_paired_baseline_all_zero_has_no_relative_change():
    cmp_ = stats.paired([0.0] * 8, [1.0, 2, 1, 3, 2, 1, 2, 4])
    assert cmp_.ratio is None and cmp_.ci is None and cmp_.direction == 1
    assert cmp_.p == pytest.approx(2 / 2 ** 8)
    assert "baseline mean is 0" in cmp_.note


def test_paired_needs_equal_lengths():
    with pytest.raises(ValueError, match="equal lengths"):
        stats.paired([1.0, 2.0], [1.0])


def test_bootstrap_is_repeatable():
    noisy = [v * w for v, w in zip(scaled(BASE, 1.03), [1.02, 0.97, 1.01, 0.99, 1.03, 0.98,
                                                         1.0, 1.02, 0.97, 1.01])]
    assert stats.paired(BASE, noisy).ci == stats.paired(BASE, noisy).ci


# -- unpaired ----------------------------------------------------------------------------
def test_unpaired_clear_shift_uses_mann_whitney_and_the_ratio_of_medians():
    b = [100.0, 101, 102, 103, 104]
    c = [120.0, 121, 122, 123, 124]
    cmp_ = stats.unpaired(b, c)
    assert cmp_.design == stats.UNPAIRED and cmp_.test == "Mann-Whitney U"
    # complete separation of 5 vs 5: exact two-sided p = 2 / C(10, 5)
    assert cmp_.p == pytest.approx(2 / 252)
    assert cmp_.ratio == pytest.approx(122 / 102)
    assert 1.1 < cmp_.ci[0] <= cmp_.ratio <= cmp_.ci[1] < 1.3


def test_unpaired_with_ties_uses_a_repeatable_permutation_test():
    b = [10.0, 10, 11, 11, 12]
    c = [12.0, 13, 13, 14, 14]
    first, second = stats.unpaired(b, c), stats.unpaired(b, c)
    assert first.p == second.p and 0 < first.p < 0.05


def test_unpaired_all_values_identical():
    cmp_ = stats.unpaired([7.0] * 5, [7.0] * 6)
    assert (cmp_.ratio, cmp_.ci, cmp_.p) == (1.0, (1.0, 1.0), 1.0)


def test_unpaired_too_few_values():
    cmp_ = stats.unpaired([1.0, 2.0], [3.0, 4.0, 5.0])
    assert cmp_.p is None and "too few" in cmp_.note


# -- Benjamini-Hochberg ----------------------------------------------------------------------
def test_bh_adjustment_matches_the_hand_computed_values_and_keeps_none():
    # sorted 0.01, 0.03, 0.04, 0.5 -> p*m/rank = 0.04, 0.06, 0.0533, 0.5 -> running minimum
    out = stats.adjust([0.01, 0.04, None, 0.03, 0.5])
    assert out[2] is None
    assert out[0] == pytest.approx(0.04)
    assert out[1] == pytest.approx(0.16 / 3) and out[3] == pytest.approx(0.16 / 3)
    assert out[4] == pytest.approx(0.5)


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
    assert f.verdict == NO_CHANGE and "identical" in f.comparison.note

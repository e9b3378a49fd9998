"""The detector is validated, not assumed (DESIGN §6): the false-positive
rate of A/A runs and the power against an injected regression, measured
on the modeled machine through the report pipeline, and the figures every
report prints are the ones measured here.

How the trials were chosen (reports/validation.py says it at length):
`madvise_dontneed(iterations=50)` on haswell-4c runs in a few ms on the
python engine, so 60 A/A trials x 4 metrics (240 comparisons, >= 200) and
60 trials per injected cost (95% = 57 of 60) fit in about 30 s. No cost of
haswell-4c moves `madvise_ns` by 5% when scaled by 5%: `page_fault_cycles`
+5% moves it by about +1.1%, below the 2% threshold, so the power is
measured at +25% (about +5.3% on the metric), and the +5% and +10% rows
show the detector's behaviour below and at the threshold."""

import pytest

from pytest_tlbperf.reports import validation


@pytest.fixture(scope="module")
def measured():
    return validation.measure(engine="python")


@pytest.mark.slow
def test_false_positive_rate_of_aa_runs_is_at_most_5_percent(measured):
    aa = measured["aa"]
    assert aa["comparisons"] >= 200 and aa["unpaired_comparisons"] >= 200
    assert aa["false_positives"] / aa["comparisons"] <= 0.05
    assert aa["unpaired_false_positives"] / aa["unpaired_comparisons"] <= 0.05
    # the test alone (adjusted p < alpha, no threshold) keeps its level too
    assert aa["significant"] / aa["comparisons"] <= 0.05


@pytest.mark.slow
def test_injected_regression_is_detected_in_95_percent_of_trials(measured):
    strong, edge, weak = measured["power"]
    assert (strong["cost"], strong["percent"]) == ("page_fault_cycles", 25)
    assert strong["median_effect"] > 0.04                   # a ~5% regression of madvise_ns
    assert strong["detected"] / strong["trials"] >= 0.95
    # with 5 pairs the exact signed-rank test cannot reach p < 0.05: the
    # adaptive rounds are what find it
    assert strong["detected_at_initial_rounds"] == 0
    # +5% on the cost is ~+1% on the metric, inside the 2% threshold: the
    # detector must not call that a regression
    assert weak["median_effect"] < 0.02 and weak["detected"] / weak["trials"] <= 0.05
    assert strong["detected"] >= edge["detected"] >= weak["detected"]


@pytest.mark.slow
def test_reports_print_the_figures_measured_here(measured):
    """Everything is deterministic (seeded engine, fixed bootstrap seed), so
    a fresh measurement reproduces the published figures exactly; when the
    model or the statistics change, `tlbperf validate` prints the new ones
    for reports/validation.py."""
    assert measured == validation.PUBLISHED
    lines = validation.summary(measured)
    assert any(line.startswith("A/A, paired: 0/240") for line in lines)
    assert any("called a regression in 60/60 trials" in line for line in lines)


def test_the_figures_are_for_the_default_settings():
    from pytest_tlbperf import plugin
    from pytest_tlbperf.reports import adaptive, verdicts
    assert validation.ROUNDS == plugin.DEFAULTS["rounds"]
    assert validation.MAX_ROUNDS == plugin.DEFAULTS["max_rounds"] == adaptive.DEFAULT_MAX_ROUNDS
    assert verdicts.DEFAULT_THRESHOLD == 0.02 and verdicts.ALPHA == 0.05
    assert "5 seeds, adaptive to 20; threshold 2%, alpha 0.05" in validation.PUBLISHED["setup"]

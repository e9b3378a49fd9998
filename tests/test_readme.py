"""The README's tables are produced by commands, not typed by hand: these
tests fail when the model changes and the README was not regenerated
(`tlbperf matrix`, `tlbperf calibrate`)."""

from pathlib import Path

import pytest

from pytest_tlbperf import evidence
from pytest_tlbperf.reports import calibration

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def readme():
    if not README.exists():
        pytest.skip("README.md is not next to the tests")
    return README.read_text()


def test_matrix_table_is_tlbperf_matrix_output(readme):
    assert evidence.table() in readme


def test_calibration_tables_are_tlbperf_calibrate_output(readme):
    assert calibration.render(calibration.measure(seeds=20), 20) in readme
    assert calibration.render_tlb_flush1(calibration.measure_tlb_flush1(seeds=3), 3) in readme
    assert calibration.render_tlb_flush2(calibration.measure_tlb_flush2(seeds=3), 3) in readme


def test_readme_opens_with_the_two_commands(readme):
    first = [line for line in readme.splitlines() if line.startswith("python3 -m venv")][:2]
    assert "pytest --tlbperf --pyargs pytest_tlbperf.suites" in first[0] and first[1].rstrip().split("#")[0].rstrip() \
        .endswith(".venv/bin/pytest")

"""What issue 16 ("speed end to end") changed that a user can see, without
timing anything (the figures are benchmarks under tests/bench): a session
never imports scipy.stats, runs are shared only between policies whose
knobs are equal, and pytest-xdist -- -n 2, several gateways -- gives the
serial run's seeds, samples and verdicts."""

import json
import subprocess
import sys

import pytest

import pytest_tlbperf as tp
from pytest_tlbperf import selection

SUITE = '''
import pytest
import pytest_tlbperf as tp

@pytest.mark.tlbperf(profiles=["haswell-4c"], metrics=["madvise_ns", "ipis"])
@pytest.mark.parametrize("threads", [2, 4])
def test_madvise(tlbperf, threads):
    tlbperf(tp.workloads.madvise_dontneed(threads=threads, iterations=20))

@pytest.mark.tlbperf(profiles=["haswell-4c", "milan-36c"], metrics=["ipis"])
def test_exit(tlbperf):
    tlbperf(tp.workloads.exit_storm(processes=6, cpus=4))
'''


def test_a_session_with_reports_never_imports_scipy_stats(tmp_path):
    """`import scipy.stats` costs about a second and 75 MB, as much as the
    rest of a session: nothing on the way from the plugin's import through
    collection, runs, statistics and the HTML report may need it."""
    (tmp_path / "test_suite.py").write_text(SUITE)
    code = ("import sys, pytest\n"
            "rc = pytest.main(['--tlbperf', '-q', '-p', 'no:cacheprovider', '--tlbperf-policy',"
            " 'concurrent_flush', '--tlbperf-rounds', '3', '--tlbperf-max-rounds', '6',"
            " '--tlbperf-html', 'r.html', 'test_suite.py'])\n"
            "print('RC', int(rc), 'SCIPY_STATS', 'scipy.stats' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True).stdout
    assert "RC 0 SCIPY_STATS False" in out, out[-2000:]
    assert "adaptive round" in out or "seeds per cell" in (tmp_path / "r.html").read_text()


def test_only_policies_with_equal_knobs_share_runs():
    """The RAR RFC changes nothing on a part without RAR (none of the
    built-in profiles has it): its runs are mainline's. mainline_v6_14
    frees page tables differently everywhere: never."""
    session = ["mainline", "rar", "mainline_v6_14"]
    assert selection.same_knobs("rar", "haswell-4c", session) == "mainline"
    assert selection.same_knobs("mainline_v6_14", "haswell-4c", session) is None
    assert selection.same_knobs("mainline", "haswell-4c", session) is None  # its own

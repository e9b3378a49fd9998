"""`pytest --tlbperf` as users meet it, driven through pytester."""

import json

import pytest

# The plugin imports its reports (numpy, scipy, jinja2) only when a
# --tlbperf session needs them. pytester's in-process runs drop the modules
# a run imported, and numpy cannot be imported twice in one process: import
# them here, once, before any run.
import pytest_tlbperf.reports.html  # noqa: F401,E402
import pytest_tlbperf.reports.report  # noqa: F401,E402

SUITE = '''
import pytest
import pytest_tlbperf as tp

@pytest.mark.tlbperf(profiles=["haswell-4c"], metrics=["madvise_ns", "ipis"])
def test_madvise(tlbperf):
    tlbperf(tp.workloads.madvise_dontneed(iterations=20))
'''

EXIT_SUITE = '''
import pytest
import pytest_tlbperf as tp

@pytest.mark.tlbperf(profiles=["haswell-4c"], shows=["freed_table_walk"])
def test_exit(tlbperf):
    tlbperf(tp.workloads.exit_storm(processes=12, cpus=8))
'''

# concurrent_flush's knobs also differ from mainline's on the INVLPGB parts: these
# tests are about their own profiles, so those are only listed
FAST = ["--tlbperf-policy", "concurrent_flush", "--tlbperf-rounds", "2",
        "--tlbperf-max-rounds", "2", "--tlbperf-touched-profiles", "list", "-p", "no:randomly"]


@pytest.fixture
def suite(pytester):
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def test_help_lists_every_option_with_its_ini_name(pytester):
    out = " ".join(pytester.runpytest("--help").stdout.str().split())
    for flag, ini in [("--tlbperf", "tlbperf"), ("--tlbperf-policy", "tlbperf_policy"),
                      ("--tlbperf-baseline", "tlbperf_baseline"),
                      ("--tlbperf-profile", "tlbperf_profile"),
                      ("--tlbperf-rounds", "tlbperf_rounds"),
                      ("--tlbperf-engine", "tlbperf_engine"),
                      ("--tlbperf-storage", "tlbperf_storage"), ("--tlbperf-save", "tlbperf_save"),
                      ("--tlbperf-autosave", "tlbperf_autosave"),
                      ("--tlbperf-compare", "tlbperf_compare"),
                      ("--tlbperf-fail-on", "tlbperf_fail_on"), ("--tlbperf-json", "tlbperf_json"),
                      ("--tlbperf-threshold", "tlbperf_threshold"),
                      ("--tlbperf-max-rounds", "tlbperf_max_rounds"),
                      ("--tlbperf-html", "tlbperf_html"), ("--tlbperf-text", "tlbperf_text"),
                      ("--tlbperf-export", "tlbperf_export"),
                      ("--tlbperf-reference", "tlbperf_reference"),
                      ("--tlbperf-extra-profile", "tlbperf_extra_profile"),
                      ("--tlbperf-touched-profiles", "tlbperf_touched_profiles")]:
        assert flag in out and f"[ini: {ini}]" in out, flag


def test_suites_are_skipped_without_the_flag(suite):
    result = suite.runpytest("-rs")
    outcomes = result.parseoutcomes()
    assert outcomes.get("skipped", 0) >= 2 and "passed" not in outcomes
    result.stdout.fnmatch_lines(["*tlbperf suites run with --tlbperf*"])


def test_cells_have_readable_ids_and_a_summary(suite):
    result = suite.runpytest("--tlbperf", "-v", *FAST)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_madvise?haswell-4c-mainline? PASSED*",
                                 "*test_madvise?haswell-4c-concurrent_flush? PASSED*",
                                 "*= tlbperf =*",
                                 "test_madvise?haswell-4c?",
                                 "madvise_ns (ns, lower is better), paired by seed vs mainline",
                                 "concurrent_flush *",
                                 "tlbperf: * s wall: engine * s (*%) (4 runs), statistics * s "
                                 "(*%), collection and start-up * s (*%), reports *"])
    width = max(len(line) for line in result.stdout.lines if "madvise_ns" in line)
    assert width <= 100


def test_ini_equivalents(suite):
    suite.makeini("[pytest]\ntlbperf = true\ntlbperf_rounds = 3\ntlbperf_max_rounds = 3\n"
                  "tlbperf_policy = async_flush\ntlbperf_touched_profiles = list\n")
    result = suite.runpytest("--tlbperf-json", "out.json")
    result.assert_outcomes(passed=2)
    run = json.loads((suite.path / "out.json").read_text())
    assert {c["policy"] for c in run["cells"]} == {"mainline", "async_flush"}
    assert all(len(c["seeds"]) == 3 for c in run["cells"])


def test_policy_file_by_path(suite):
    suite.makepyfile(my_rfc='''
import pytest_tlbperf as tp

class MyRfc(tp.Policy):
    """Send flush IPIs to lazy CPUs again."""
    flush_lazy_cpus = "always"
''')
    result = suite.runpytest("--tlbperf", "-v", "--tlbperf-policy", "my_rfc.py:MyRfc",
                             "--tlbperf-rounds", "2")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_madvise?haswell-4c-my_rfc.py:MyRfc? PASSED*"])


def test_bad_names_are_usage_errors(suite):
    result = suite.runpytest("--tlbperf", "--tlbperf-policy", "mainlne")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown policy 'mainlne'*"])
    result = suite.runpytest("--tlbperf", "--tlbperf-profile", "skylake-8s")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown profile 'skylake-8s'*"])


def test_a_violation_fails_the_run_with_its_trace(pytester):
    pytester.makepyfile(test_exit=EXIT_SUITE, unsafe='''
import pytest_tlbperf as tp

class Unsafe(tp.Policy):
    lazy_mm_ref = "none"
''')
    result = pytester.runpytest("--tlbperf", "--tlbperf-policy", "unsafe.py",
                                "--tlbperf-rounds", "2")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*lazy_mm_use_after_free (error) on cpu*",
                                 "*__mmdrop frees*",
                                 "*unsafe.py: lazy_mm_use_after_free (UNEXPECTED, 2/2 seeds)*"])
    quiet = pytester.runpytest("--tlbperf", "--tlbperf-policy", "unsafe.py",
                               "--tlbperf-rounds", "2", "--tlbperf-fail-on", "none")
    assert quiet.ret == pytest.ExitCode.OK


def test_known_violation_is_expected_and_a_lost_one_fails(pytester):
    pytester.makepyfile(test_exit=EXIT_SUITE, pols='''
import pytest_tlbperf as tp

class Historic(tp.Policy):
    lazy_cpumask = "clear"
    flush_lazy_cpus = "never"
    known_violations = {"freed_table_walk"}

class Fixed(tp.Policy):
    known_violations = {"freed_table_walk"}
''')
    ok = pytester.runpytest("--tlbperf", "--tlbperf-policy", "pols.py:Historic",
                            "--tlbperf-rounds", "3", "--tlbperf-max-rounds", "3")
    ok.assert_outcomes(passed=2)
    ok.stdout.fnmatch_lines(["*pols.py:Historic: freed_table_walk (expected, ?/3 seeds)*"])
    lost = pytester.runpytest("--tlbperf", "--tlbperf-policy", "pols.py:Fixed",
                              "--tlbperf-rounds", "2")
    lost.assert_outcomes(passed=1, failed=1)
    lost.stdout.fnmatch_lines(["*known violation freed_table_walk no longer appears*"])


def test_save_then_compare_round_trips(suite):
    first = suite.runpytest("--tlbperf", *FAST, "--tlbperf-save=base")
    first.assert_outcomes(passed=2)
    first.stdout.fnmatch_lines(["*saved run 0001_base.json*"])
    again = suite.runpytest("--tlbperf", *FAST, "--tlbperf-save")
    again.stdout.fnmatch_lines(["*saved run 0002_*.json*"])
    files = sorted(p.name for p in (suite.path / ".tlbperf").glob("*.json"))
    assert files[0] == "0001_base.json" and len(files) == 2      # nothing overwritten
    saved = json.loads((suite.path / ".tlbperf" / "0001_base.json").read_text())
    assert saved["format"] == "pytest-tlbperf-run" and saved["version"] == 2
    assert all(len(s["program_digest"]) == 16 for c in saved["cells"] for s in c["seeds"])
    assert saved["model_version"] and saved["profiles"]["haswell-4c"]
    assert len(saved["cells"][0]["seeds"]) == 2 and "metrics" in saved["cells"][0]["seeds"][0]
    cmp = suite.runpytest("--tlbperf", *FAST, "--tlbperf-compare=base")
    cmp.assert_outcomes(passed=2)
    # the candidate ran the saved run's seeds, with the same programs: paired
    cmp.stdout.fnmatch_lines(["*compared with saved run 0001*: 4 comparisons paired by seed*",
                              "test_madvise?haswell-4c?",
                              "madvise_ns (ns, lower is better), paired by seed vs run 0001*",
                              "policy * then * now *",
                              "concurrent_flush *+0.0%*"])


def test_corrupt_saved_run_is_named_and_the_others_stay_usable(suite):
    suite.runpytest("--tlbperf", *FAST, "--tlbperf-save=good").assert_outcomes(passed=2)
    store = suite.path / ".tlbperf"
    (store / "0002_broken.json").write_text("{not json")
    (store / "0003_foreign.json").write_text('{"hello": 1}')
    bad = suite.runpytest("--tlbperf", *FAST, "--tlbperf-compare=broken")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*0002_broken.json: corrupt JSON*",
                              "*0003_foreign.json: not a pytest-tlbperf run*"])
    good = suite.runpytest("--tlbperf", *FAST, "--tlbperf-compare=good")
    good.assert_outcomes(passed=2)
    good.stdout.fnmatch_lines(["*compared with saved run 0001*",
                               "*skipped unreadable saved run*0002_broken.json*"])


def test_xdist_gives_the_serial_results_and_one_saved_file(suite):
    serial = suite.runpytest("--tlbperf", *FAST, "--tlbperf-json", "serial.json")
    serial.assert_outcomes(passed=2)
    par = suite.runpytest_subprocess("--tlbperf", *FAST, "-n", "2", "--tlbperf-json",
                                     "par.json", "--tlbperf-autosave")
    par.assert_outcomes(passed=2)
    par.stdout.fnmatch_lines(["*= tlbperf =*"])
    assert par.stdout.str().count("= tlbperf =") == 1
    a = json.loads((suite.path / "serial.json").read_text())["cells"]
    b = json.loads((suite.path / "par.json").read_text())["cells"]
    assert a == b and len(a) == 2
    assert len(list((suite.path / ".tlbperf").glob("*.json"))) == 1


def test_membarrier_suite_reports_a_missing_barrier(pytester):
    """Issue 7: hazard-pointer lazy mm without the explicit barrier loses the
    ordering membarrier relies on; with it (as shipped) it keeps it."""
    pytester.makepyfile(test_mb='''
import pytest

@pytest.mark.tlbperf(profiles=["skylake-2s"])
def test_membarrier_ordering(tlbperf):
    tlbperf.membarrier()
''', pols='''
import pytest_tlbperf as tp

class HazardImplicit(tp.policies.get("hazard_lazymm")):
    switch_mm_barrier = "implicit"
''')
    bad = pytester.runpytest("--tlbperf", "--tlbperf-policy", "pols.py",
                             "--tlbperf-policy", "hazard_lazymm")
    bad.assert_outcomes(passed=2, failed=1)
    bad.stdout.fnmatch_lines(["*membarrier_order (error) on cpu0*",
                              "*pols.py: membarrier_order (UNEXPECTED, 1/1 seeds)*"])

"""Issue 17 through `pytest --tlbperf`: bad options, markers and policies
are usage errors or clean test failures (never INTERNALERROR or a
traceback), a failed save loses none of the run's reports, paths mean the
same folder in both spellings, Ctrl-C ends cleanly, ids are escaped, and an
empty folder runs the built-in suites."""

import json
import re
import subprocess

import pytest

# pytester's in-process runs drop the modules a run imported; numpy cannot
# be imported twice: import the reports once, here (as test_plugin.py does)
import pytest_tlbperf.reports.html  # noqa: F401
import pytest_tlbperf.reports.report  # noqa: F401

SUITE = '''
import pytest
import pytest_tlbperf as tp

@pytest.mark.tlbperf(profiles=["haswell-4c"], metrics=["madvise_ns", "ipis"])
def test_madvise(tlbperf):
    tlbperf(tp.workloads.madvise_dontneed(iterations=10))
'''
# concurrent_flush's knobs also differ from mainline's on the INVLPGB parts: the
# tests here are about their own profiles, so those are only listed
FAST = ["--tlbperf", "--tlbperf-policy", "concurrent_flush", "--tlbperf-rounds", "2",
        "--tlbperf-max-rounds", "2", "--tlbperf-touched-profiles", "list"]
HOOK = '''
import pytest_tlbperf as tp

class Rfc(tp.Policy):
    def should_flush_cpu(self, cpu, info):
        {}
'''


@pytest.fixture
def suite(pytester):
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def _clean(result):
    out = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in out and "Traceback" not in out, out
    return out


@pytest.mark.parametrize("args, message", [
    (["-o", "tlbperf_rounds=abc"], "--tlbperf-rounds / ini tlbperf_rounds: 'abc' is not an "
                                   "integer"),
    (["-o", "tlbperf_max_rounds=abc"], "--tlbperf-max-rounds / ini tlbperf_max_rounds: 'abc' "
                                       "is not an integer"),
    (["-o", "tlbperf_rounds=0"], "ini tlbperf_rounds: 0 is out of range 1..10000"),
    (["--tlbperf-rounds", "1000000000"], "1000000000 is out of range 1..10000"),
    (["--tlbperf-max-rounds", "0"], "--tlbperf-max-rounds / ini tlbperf_max_rounds: 0 is out"),
    (["-o", "tlbperf_autosave=perhaps"], "ini option tlbperf_autosave: invalid truth value"),
    (["-o", "tlbperf_engine=fast"], "--tlbperf-engine: unknown engine 'fast'"),
    (["--tlbperf-html", "nodir/r.html"], "--tlbperf-html nodir/r.html: folder nodir does not "
                                         "exist"),
    (["--tlbperf-json", "."], "--tlbperf-json .: is a directory"),
    (["--tlbperf-export", "pyperf=nodir/p.json"], "--tlbperf-export pyperf nodir/p.json"),
])
def test_bad_options_are_usage_errors(suite, args, message):
    result = suite.runpytest("--tlbperf", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    out = _clean(result)
    assert message.search(out) if isinstance(message, re.Pattern) else message in out
    assert "passed" not in result.stdout.str()          # checked before any work


def test_a_bool_ini_option_that_is_no_truth_value(suite):
    result = suite.runpytest("-o", "tlbperf=maybe")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "ini option tlbperf: invalid truth value 'maybe'" in _clean(result)


@pytest.mark.parametrize("marker, message", [
    ('profiles=["nope"]', "profiles=: unknown profile 'nope'"),
    ('profiles="haswell-4c"', "profiles= must be a non-empty list"),
    ('profiles=["haswell-4c"], rounds="abc"', "rounds= must be an integer from 1 to 10000, "
                                               "got 'abc'"),
    ('profiles=["haswell-4c"], metrics=["ipi"]', "metrics=: unknown metrics 'ipi'"),
    ('profiles=["haswell-4c"], shows=["hang!"]', "shows=: unknown violation kinds 'hang!'"),
    ('profiles=["haswell-4c"], seeds=3', "unknown argument(s) seeds"),
])
def test_bad_marker_arguments_are_named_collection_errors(pytester, marker, message):
    pytester.makepyfile(test_m=f'''
import pytest
import pytest_tlbperf as tp

@pytest.mark.tlbperf({marker})
def test_x(tlbperf):
    tlbperf(tp.workloads.madvise_dontneed(iterations=5))
''')
    result = pytester.runpytest(*FAST)
    assert result.ret == pytest.ExitCode.INTERRUPTED          # 1 error during collection
    out = _clean(result)
    assert f"test_m.py::test_x: @pytest.mark.tlbperf: {message}" in out


@pytest.mark.parametrize("body, message", [
    ("1 / 0", "rfc.py failed to import: ZeroDivisionError: division by zero (rfc.py:2)"),
    ("import sys\nsys.exit(3)", "rfc.py failed to import: called sys.exit(3) (rfc.py:3)"),
    ('import pytest_tlbperf as tp\nclass Rfc(tp.Policy):\n    lazy_tbl = "stay"',
     "policy rfc.py:Rfc: unknown attribute 'lazy_tbl'; did you mean 'lazy_tlb'?"),
    ("import pytest_tlbperf as tp\nclass Rfc(tp.Policy):\n    def __init__(self):\n"
     "        raise RuntimeError('no')", "policy rfc.py:Rfc: __init__() raised RuntimeError"),
    ("import pytest_tlbperf as tp\nclass Rfc(tp.Policy):\n    def configure(self, p):\n"
     "        raise SystemExit(4)", re.compile(r"policy rfc\.py:Rfc: configure\([\w-]+\) "
                                               r"called sys\.exit\(4\)")),
])
def test_policy_code_that_fails_is_one_usage_error(suite, body, message):
    suite.makepyfile(rfc="import pytest_tlbperf\n" + body)
    result = suite.runpytest("--tlbperf", "--tlbperf-policy", "rfc.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    out = _clean(result)
    assert message.search(out) if isinstance(message, re.Pattern) else message in out


def test_native_engine_with_a_hook_policy_is_one_usage_error(suite):
    suite.makepyfile(rfc=HOOK.format("return info.default"))
    result = suite.runpytest("--tlbperf", "--tlbperf-engine", "native", "--tlbperf-policy",
                             "rfc.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    out = _clean(result)
    assert out.count("defines should_flush_cpu") == 1 and "passed" not in out


@pytest.mark.parametrize("stmt, message", [
    ("return 1 / 0", "should_flush_cpu(cpu1) raised ZeroDivisionError: division by zero"),
    ("return 'yes'", "should_flush_cpu(cpu1) returned 'yes' (str); it must return True or "
                     "False"),
    ("raise SystemExit(0)", "should_flush_cpu(cpu1) called sys.exit(0)"),
])
def test_a_failing_hook_is_a_clean_test_failure(suite, stmt, message):
    suite.makepyfile(rfc=HOOK.format(stmt))
    result = suite.runpytest("--tlbperf", "--tlbperf-policy", "rfc.py", "--tlbperf-rounds",
                             "2", "--tlbperf-max-rounds", "2")
    result.assert_outcomes(passed=1, failed=1)
    out = _clean(result)
    assert message in out and "def __call__" not in out        # no traceback of ours


def test_a_hook_that_never_returns_fails_its_cell(suite, monkeypatch):
    from pytest_tlbperf import policy
    monkeypatch.setattr(policy, "CALL_BUDGET", 10_000)
    suite.makepyfile(rfc=HOOK.format("while True:\n            pass"))
    result = suite.runpytest("--tlbperf", "--tlbperf-policy", "rfc.py", "--tlbperf-rounds", "2")
    result.assert_outcomes(passed=1, failed=1)
    assert "ran more than 10000 Python instructions in one call" in _clean(result)


def test_a_workload_too_big_to_run_is_a_clean_test_failure(pytester):
    pytester.makepyfile(test_big='''
import pytest
import pytest_tlbperf as tp

@pytest.mark.tlbperf(profiles=["haswell-4c"])
def test_big(tlbperf):
    tlbperf(tp.workloads.kernel_build(jobs=10**6))
''')
    result = pytester.runpytest(*FAST)
    result.assert_outcomes(failed=2)
    assert "kernel_build: jobs must be an integer from 1 to 100000, got 1000000" in \
        _clean(result)


def test_a_failed_save_keeps_every_report(suite):
    (suite.path / "runs").write_text("a file where the storage folder should be")
    result = suite.runpytest(*FAST, "--tlbperf-save", "--tlbperf-storage", "runs",
                             "--tlbperf-html", "r.html", "--tlbperf-json", "r.json",
                             "--tlbperf-text", "r.txt", "--tlbperf-export", "pyperf=p.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.assert_outcomes(passed=2)
    out = _clean(result)
    assert "tlbperf: error: the run was not saved: cannot save the run in" in out
    assert "the reports above were written" in out
    for name in ("r.html", "r.json", "r.txt", "p.json"):
        assert (suite.path / name).stat().st_size > 0, name
    assert json.loads((suite.path / "r.json").read_text())["cells"]


def test_storage_in_both_spellings_is_one_folder(pytester, monkeypatch):
    repo = pytester.mkdir("repo")
    (repo / "test_suite.py").write_text(SUITE)
    monkeypatch.chdir(repo)
    # the space form second: once ../runs exists, pytest takes it for a test path
    for args in (["--tlbperf-storage=../runs"], ["--tlbperf-storage", "../runs"]):
        pytester.runpytest(*FAST, "--tlbperf-save", *args).assert_outcomes(passed=2)
    saved = sorted(str(p.relative_to(pytester.path)) for p in pytester.path.rglob("0*.json"))
    assert saved == ["runs/0001_unknown.json", "runs/0002_unknown.json"]


def _git(path, *args):
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=path,
                   check=True, capture_output=True)


def test_an_existing_html_path_outside_the_repository(suite, tmp_path_factory):
    """pytest took `--tlbperf-html /elsewhere/r.html` for a test path once
    the file existed, rooted the session at a common ancestor, and the run
    went to /.../.tlbperf/0001_unknown.json."""
    _git(suite.path, "init", "-q")
    _git(suite.path, "add", ".")
    _git(suite.path, "commit", "-qm", "suite")
    out = tmp_path_factory.mktemp("elsewhere") / "r.html"
    out.write_text("last run's report")
    result = suite.runpytest(*FAST, "--tlbperf-save", "--tlbperf-html", str(out))
    result.assert_outcomes(passed=2)
    (saved,) = (suite.path / ".tlbperf").glob("*.json")
    commit = json.loads(saved.read_text())["commit"]
    assert commit != "unknown" and saved.name == f"0001_{commit}.json"
    assert "html" in out.read_text().lower()[:100]


def test_ctrl_c_in_the_adaptive_rounds_ends_cleanly(pytester):
    """The adaptive rounds run after the last test: Ctrl-C there escaped
    pytest as a raw KeyboardInterrupt traceback. Here the third seed's
    workload, built only by the adaptive rounds, is interrupted."""
    pytester.makepyfile(test_int='''
import pytest
import pytest_tlbperf as tp

BUILT = []

def build(b, profile):
    BUILT.append(1)
    if len(BUILT) > 2:
        raise KeyboardInterrupt
    mm = b.mm(512)
    for cpu in (0, 1):
        t = b.task(mm, cpu, start_us=b.rng.below(4))
        for _ in range(20):
            t.madvise(8 * cpu).access(8 * cpu)

@pytest.mark.tlbperf(profiles=["haswell-4c"], metrics=["makespan_ns"])
def test_int(tlbperf):
    tlbperf(tp.workloads.custom("interrupted", build))
''')
    result = pytester.runpytest("--tlbperf", "--tlbperf-policy", "async_flush",
                                "--tlbperf-rounds", "2", "--tlbperf-max-rounds", "8",
                                "--tlbperf-save", "--tlbperf-html", "r.html",
                                no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert "INTERNALERROR" not in out and "Traceback" not in out
    assert "tlbperf: interrupted: no adaptive rounds were run, no report written and " \
           "nothing saved" in out
    assert not (pytester.path / ".tlbperf").exists()


def test_ids_with_newlines_and_escapes_are_escaped(pytester):
    pytester.makepyfile(test_p='''
import pytest
import pytest_tlbperf as tp

@pytest.mark.parametrize("tag", ["a\\nb\\x1b[2J"])
@pytest.mark.tlbperf(profiles=["haswell-4c"], metrics=["ipis"])
def test_p(tlbperf, tag):
    tlbperf(tp.workloads.custom("w\\x1b[5m", lambda b, p: b.task(b.mm(512), 0).access(0)))
''')
    result = pytester.runpytest(*FAST, "--tlbperf-text", "out.txt", "--tlbperf-json", "o.json")
    result.assert_outcomes(passed=2)
    text = (pytester.path / "out.txt").read_text()
    for out in (result.stdout.str(), text):
        assert "\x1b" not in out
        assert "test_p[tag=a\\nb\\x1b[2J][haswell-4c]" in out
    cells = json.loads((pytester.path / "o.json").read_text())["cells"]
    assert cells[0]["workload"] == "w\\x1b[5m()"


def test_compare_warns_when_the_profile_changed(suite):
    suite.runpytest(*FAST, "--tlbperf-save=base").assert_outcomes(passed=2)
    path = suite.path / ".tlbperf" / "0001_base.json"
    run = json.loads(path.read_text())
    run["profiles"]["haswell-4c"] = "0" * 16
    run["model_version"] = "0"
    path.write_text(json.dumps(run))
    result = suite.runpytest(*FAST, "--tlbperf-compare=base")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*warning: run 0001 was made by model version 0, this one*",
                                 "*warning: profile haswell-4c differs from the one run 0001*"])


def test_the_adaptive_rounds_say_what_they_do(suite):
    result = suite.runpytest("--tlbperf", "--tlbperf-policy", "async_flush",
                             "--tlbperf-rounds", "5", "--tlbperf-max-rounds", "10")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["tlbperf: adaptive round 1: 2 cells extended to 10 seeds"])


# -- the first hour -----------------------------------------------------------------
def test_an_empty_folder_runs_the_builtin_suites(pytester):
    result = pytester.runpytest("--tlbperf", "--co", "-q")
    assert result.ret == pytest.ExitCode.OK
    out = _clean(result)
    assert "tlbperf: no tests here; running the built-in suites" in out
    for test in ("test_madvise.py::test_madvise_dontneed[haswell-4c-mainline-1]",
                 "test_kernel_build.py::test_kernel_build[zen1-epyc-lazy_pcid]"):
        assert test in out


def test_an_empty_folder_reviews_a_policy_file_against_the_builtins(pytester):
    pytester.makepyfile(my_rfc='''
import pytest_tlbperf as tp

class MyRfc(tp.Policy):
    """Flush locally before the IPIs, as before v5.10."""
    flush_local = "before_remote"
''')
    result = pytester.runpytest("--tlbperf", "--tlbperf-policy", "my_rfc.py", "--co", "-q")
    out = _clean(result)
    assert "test_madvise.py::test_madvise_dontneed[haswell-4c-my_rfc.py-1]" in out
    assert "lazy_pcid" not in out                        # candidates: the file alone
    ran = pytester.runpytest("--tlbperf", "--tlbperf-policy", "my_rfc.py", "-k",
                             "test_madvise_dontneed and 2]", "--tlbperf-rounds", "2",
                             "--tlbperf-max-rounds", "2")
    ran.assert_outcomes(passed=2)
    ran.stdout.fnmatch_lines(["test_madvise_dontneed?threads=2??haswell-4c?", "*my_rfc.py *"])


def test_test_paths_are_taken_as_given(pytester):
    pytester.mkdir("empty")
    result = pytester.runpytest("--tlbperf", "empty")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert "built-in suites" not in result.stdout.str()


def test_a_traceback_entry_without_a_line_is_dropped_before_pytest_reports_ctrl_c():
    """CPython 3.11 can record no line for the instruction Ctrl-C lands on;
    pytest's KeyboardInterrupt report then crashed on `None - 1`."""
    from pytest_tlbperf import plugin

    class Entry:
        def __init__(self, line):
            self.line = line

        @property
        def lineno(self):
            return self.line - 1            # as pytest's TracebackEntry does

    class Traceback(list):
        def filter(self, fn):
            return Traceback(e for e in self if fn(e))

    class ExcInfo:
        traceback = Traceback([Entry(10), Entry(None), Entry(3)])

    excinfo = ExcInfo()
    plugin.TlbperfPlugin.pytest_keyboard_interrupt(None, excinfo)
    assert [e.line for e in excinfo.traceback] == [10, 3]

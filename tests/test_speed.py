"""What issue 16 ("speed end to end") changed that a user can see, without
timing anything (the figures are benchmarks under tests/bench): a session
never imports scipy.stats, loads OpenBLAS with one thread, shares runs only
between policies whose knobs are equal, and pytest-xdist -- -n 2, several
gateways -- gives the serial run's seeds, samples and verdicts."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

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
    # the statistics and the HTML report ran: their verdicts are in it
    assert "concurrent_flush" in (tmp_path / "r.html").read_text()


def test_an_in_process_run_collects_its_end_on_a_frozen_heap_and_thaws_it(pytester,
                                                                          monkeypatch):
    """Once the tests are done, the session freezes the heap, so pytest's two
    full collections at unconfigure (unraisableexception) walk only what the
    end of the session made; the cleanup after theirs thaws it, so a run in
    a process that goes on (pytester, an IDE) leaves the collector as it
    found it."""
    import gc

    import _pytest.unraisableexception as unraisable
    seen = []
    collect = unraisable.gc_collect_harder
    monkeypatch.setattr(unraisable, "gc_collect_harder",
                        lambda n: (seen.append(gc.get_freeze_count()), collect(n)))
    pytester.makepyfile(test_suite=SUITE)
    assert gc.get_freeze_count() == 0
    result = pytester.runpytest_inprocess("--tlbperf", "-p", "no:cacheprovider", "-k", "exit",
                                          "--tlbperf-policy", "concurrent_flush",
                                          "--tlbperf-rounds", "3", "--tlbperf-max-rounds", "3")
    result.assert_outcomes(passed=4)
    assert len(seen) == 2 and all(frozen > 10_000 for frozen in seen), seen
    assert gc.get_freeze_count() == 0


def test_a_pytest_xdist_controller_freezes_its_heap_when_the_first_worker_is_up(pytester,
                                                                            monkeypatch):
    """The controller collects nothing, so its heap is whole once a worker is
    up: it freezes it there, before the HTML report's modules load and the
    workers' reports arrive. Before, its first freeze came at the first
    worker down, and those modules set off a full collection of everything
    pytest had made (0.02-0.07 s on the controller, in the workers' run).
    It still thaws at the end."""
    import gc
    events = []
    freeze = gc.freeze
    monkeypatch.setattr(gc, "freeze", lambda: (events.append("freeze"), freeze()))

    class Reports:
        @pytest.hookimpl
        def pytest_runtest_logreport(self, report):
            events.append("report")
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_inprocess("--tlbperf", "-p", "no:cacheprovider", "-n", "2",
                                          "-k", "exit", "--tlbperf-policy", "concurrent_flush",
                                          "--tlbperf-rounds", "3", "--tlbperf-max-rounds", "3",
                                          "--tlbperf-html", "r.html", plugins=[Reports()])
    result.assert_outcomes(passed=4)
    assert "report" in events and events[0] == "freeze", events
    assert gc.get_freeze_count() == 0


BLAS_PROBE = """
import os

def test_blas_threads():
    with open("blas.txt", "w") as fh:
        fh.write(os.environ.get("OPENBLAS_NUM_THREADS", "unset"))
"""


@pytest.mark.parametrize("args, users, seen", [
    (["--tlbperf", "-n", "2"], None, "1"),
    (["--tlbperf"], "3", "3"),
    ([], None, "unset"),
], ids=["workers-get-one", "users-own-kept", "without-tlbperf"])
def test_a_tlbperf_session_loads_openblas_with_one_thread_unless_told(pytester, monkeypatch,
                                                                      args, users, seen):
    """Every process of a --tlbperf session, its pytest-xdist workers
    included, loads OpenBLAS with one thread: the statistics never call
    BLAS, and the threads OpenBLAS starts spin on the CPUs the other workers
    run on. A user's own OPENBLAS_NUM_THREADS stands, a session without
    --tlbperf is left alone, and the process is left as it was found."""
    if users is None:
        monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", users)
    pytester.makepyfile(test_blas=BLAS_PROBE)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=1)
    assert ("2 workers" in result.stdout.str()) == ("-n" in args)
    assert (pytester.path / "blas.txt").read_text() == seen
    assert os.environ.get("OPENBLAS_NUM_THREADS") == users


def test_the_controller_takes_the_workers_comparisons_as_they_were_computed(monkeypatch):
    """A pytest-xdist worker judges its groups' rounds; the controller then
    judges the whole report on the same samples. It takes the worker's
    comparisons (JSON, an infinite interval end included) instead of
    computing them again, and gets exactly what the worker had. What a
    worker has shipped does not go again with its next group."""
    from pytest_tlbperf.reports import stats, verdicts
    monkeypatch.setattr(verdicts, "_COMPUTED", {stats.PAIRED: {}, stats.UNPAIRED: {}})
    monkeypatch.setattr(verdicts, "_FRESH", {})
    five = ((10.0, 11.0, 12.0, 13.0, 14.0), (11.0, 12.5, 12.0, 14.5, 15.0))
    twenty = (tuple(100.0 + i for i in range(20)), tuple(103.0 + 1.1 * i for i in range(20)))
    on_worker = [verdicts._paired(*five), verdicts._paired(*twenty),
                 verdicts._unpaired(*twenty)]
    assert on_worker[0].ci[1] == float("inf")      # 5 seeds bound nothing above
    shipped = json.loads(json.dumps(verdicts.computed()))
    assert verdicts.computed() == {stats.PAIRED: [], stats.UNPAIRED: []}
    monkeypatch.setattr(verdicts, "_COMPUTED", {stats.PAIRED: {}, stats.UNPAIRED: {}})
    verdicts.preload(shipped)
    monkeypatch.setattr(stats, "paired", lambda *a: pytest.fail("computed again"))
    monkeypatch.setattr(stats, "unpaired", lambda *a: pytest.fail("computed again"))
    on_controller = [verdicts._paired(*five), verdicts._paired(*twenty),
                     verdicts._unpaired(*twenty)]
    assert [c.values() for c in on_controller] == [c.values() for c in on_worker]


def test_only_policies_with_equal_knobs_share_runs():
    """The RAR RFC changes nothing on a part without RAR (none of the
    built-in profiles has it): its runs are mainline's. mainline_v6_14
    frees page tables differently everywhere: never."""
    session = ["mainline", "rar", "mainline_v6_14"]
    assert selection.same_knobs("rar", "haswell-4c", session) == "mainline"
    assert selection.same_knobs("mainline_v6_14", "haswell-4c", session) is None
    assert selection.same_knobs("mainline", "haswell-4c", session) is None  # its own


def test_a_comparison_group_is_a_test_on_a_profile_across_policies():
    from pytest_tlbperf.distribute import comparison_group
    policies = ["mainline", "mainline_v6_14", "v4_14"]
    group = "test_broadcast.py::test_tlb_flush2[milan-36c-4]"
    assert comparison_group("test_broadcast.py::test_tlb_flush2[milan-36c-mainline-4]",
                            policies) == group
    assert comparison_group("test_broadcast.py::test_tlb_flush2[milan-36c-mainline_v6_14-4]",
                            policies) == group
    assert comparison_group("test_virt.py::test_vm_overcommit[kvm-guest-16-v4_14]",
                            policies) == "test_virt.py::test_vm_overcommit[kvm-guest-16]"
    assert comparison_group("t.py::test_other[3]", policies) == "t.py::test_other[3]"
    assert comparison_group("t.py::test_grouped[1]@db", policies) == "db"


class _Worker:
    """What ComparisonScheduling talks to of a pytest-xdist WorkerController."""

    def __init__(self, name="gw0"):
        self.sent, self.shutting_down = [], False
        self.gateway = SimpleNamespace(id=name)

    def send_runtest_some(self, indexes):
        self.sent.append(indexes)

    def shutdown(self):
        self.shutting_down = True


def _scheduled(ids, *workers):
    """ComparisonScheduling of `ids` (cells under mainline and v4_14) over
    `workers`, the first work handed out."""
    from pytest_tlbperf.distribute import scheduler
    config = SimpleNamespace(getvalue={"tx": ["popen"] * len(workers)}.get,
                             option=SimpleNamespace(loadscopereorder=True))
    sched = scheduler(config, None, ["mainline", "v4_14"])
    for worker in workers:
        sched.add_node(worker)
        sched.add_node_collection(worker, ids)
    sched.schedule()
    return sched


def _group_of(ids, indexes):
    return {ids[i].replace("-mainline", "").replace("-v4_14", "") for i in indexes}.pop()


def _complete(sched, worker, ids, group, seconds=0):
    """The worker ran every cell of `group`, each in `seconds`."""
    for i in range(len(ids)):
        if _group_of(ids, [i]) == group:
            sched.mark_test_complete(worker, i, seconds)


def test_a_worker_gets_the_comparison_expected_to_take_longest_next():
    """Collection order puts the cheap test first: xdist alone hands out
    its groups on p1, p2 and p3 before any of the heavy test's. Here a test
    not seen yet goes first, then the seconds per cell seen decide: the
    heavy test's groups go before the light test's last one."""
    ids = [f"t.py::{test}[{profile}-{policy}]" for test in ("test_light", "test_heavy")
           for profile in ("p1", "p2", "p3") for policy in ("mainline", "v4_14")]
    worker = _Worker()
    sched = _scheduled(ids, worker)

    def run(group, seconds):
        _complete(sched, worker, ids, group, seconds)

    # the first two: xdist's order, nothing seen yet
    run("t.py::test_light[p1]", 0.01)          # seen: light; heavy not yet, so it goes next
    run("t.py::test_light[p2]", 0.01)
    run("t.py::test_heavy[p1]", 2.0)           # seen: heavy, 200x the light one's cells
    run("t.py::test_heavy[p2]", 2.0)
    run("t.py::test_heavy[p3]", 2.0)
    assert [_group_of(ids, indexes) for indexes in worker.sent] == [
        "t.py::test_light[p1]", "t.py::test_light[p2]", "t.py::test_heavy[p1]",
        "t.py::test_heavy[p2]", "t.py::test_heavy[p3]", "t.py::test_light[p3]"]


def test_a_cells_cost_is_learned_by_its_test_and_parameters_not_profile_or_policy():
    from pytest_tlbperf.distribute import test_of
    policies = ["mainline", "mainline_v6_14", "v4_14"]
    assert test_of("t.py::test_tlb_flush2[milan-36c-mainline-16]", policies) == \
        test_of("t.py::test_tlb_flush2[zen1-epyc-mainline_v6_14-16]", policies) == \
        "t.py::test_tlb_flush2[16]"
    assert test_of("t.py::test_tlb_flush2[milan-36c-mainline-4]", policies) == \
        "t.py::test_tlb_flush2[4]"
    assert test_of("t.py::test_vm_overcommit[kvm-guest-16-v4_14]", policies) == \
        "t.py::test_vm_overcommit"
    assert test_of("t.py::test_other[3]", policies) == "t.py::test_other"


def test_a_heavy_parameter_of_a_test_goes_before_its_light_one():
    """tlb_flush2 with 16 threads costs 3x its 4-thread variant per cell on
    the built-in profiles, rounds included (54 ms against 18; on zen1-epyc
    190 against 27, one -n 2 run of the main job). Averaged over the test, the
    heavy variant's last group could be handed out last and hold one worker
    while the other idled; learned apart, it goes before the light ones."""
    ids = [f"t.py::test_x[{profile}-{policy}-{cpus}]" for cpus in (4, 16)
           for profile in ("p1", "p2", "p3") for policy in ("mainline", "v4_14")]
    worker = _Worker()
    sched = _scheduled(ids, worker)

    def run(group, seconds):
        _complete(sched, worker, ids, group, seconds)

    run("t.py::test_x[p1-4]", 0.01)        # seen: x[4]; x[16] not yet, so it goes next
    run("t.py::test_x[p2-4]", 0.01)
    run("t.py::test_x[p1-16]", 2.0)        # seen: x[16], 200x x[4]'s cells
    run("t.py::test_x[p2-16]", 2.0)
    run("t.py::test_x[p3-16]", 2.0)
    assert [_group_of(ids, indexes) for indexes in worker.sent] == [
        "t.py::test_x[p1-4]", "t.py::test_x[p2-4]", "t.py::test_x[p1-16]",
        "t.py::test_x[p2-16]", "t.py::test_x[p3-16]", "t.py::test_x[p3-4]"]


def test_a_crashed_worker_gives_back_its_unfinished_groups_without_the_crashed_cell():
    """A worker that dies gives its unfinished groups back, less the cell it
    died in (xdist reports that one failed); a group it had finished does
    not go out again as a unit of no test, which left the worker that got
    it waiting for work forever."""
    ids = [f"t.py::test_a[p{g}-{policy}]" for g in range(1, 7) for policy in ("mainline", "v4_14")]
    first, second = _Worker("gw0"), _Worker("gw1")
    sched = _scheduled(ids, first, second)
    assert first.sent == [[0, 1], [4, 5]] and second.sent == [[2, 3], [6, 7]]
    _complete(sched, first, ids, "t.py::test_a[p1]")    # p5 goes to the first worker
    sched.mark_test_complete(first, 4)          # then it dies in p3's v4_14 cell
    assert first.sent[-1] == [8, 9]
    assert sched.remove_node(first) == "t.py::test_a[p3-v4_14]"
    assert list(sched.workqueue) == ["t.py::test_a[p6]", "t.py::test_a[p5]"]
    replacement = _Worker("gw2")
    sched.add_node(replacement)
    sched.add_node_collection(replacement, ids)
    sched.schedule()
    assert replacement.sent and all(replacement.sent)


def test_a_session_whose_worker_crashes_ends(tmp_path):
    """A worker killed mid-run (a test calling os._exit here; a crash of the
    native engine alike): the session ends with that test failed and every
    cell of the others in the saved run. It used to hang."""
    where = tmp_path / "crash"
    where.mkdir()
    (where / "test_crash.py").write_text("import os\n\ndef test_crash():\n    os._exit(3)\n")
    (where / "test_suite.py").write_text(SUITE)
    cmd = [sys.executable, "-m", "pytest", "--tlbperf", "-q", "-p", "no:cacheprovider",
           "--tlbperf-policy", "v4_14", "--tlbperf-json", "run.json", "-n", "2",
           "test_crash.py", "test_suite.py"]
    proc = subprocess.run(cmd, cwd=where, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout[-3000:]
    passed = int(re.search(r"1 failed, (\d+) passed", proc.stdout).group(1))
    assert "crashed while running 'test_crash.py::test_crash'" in proc.stdout
    # SUITE's six (test, profile) groups, each under mainline and v4_14
    assert len(json.loads((where / "run.json").read_text())["cells"]) == passed == 12


def _session(tmp_path, name, *args):
    """One `pytest --tlbperf` run of SUITE in a fresh folder: (its saved
    cells, its text report without the command lines, its exit code)."""
    where = tmp_path / name
    where.mkdir(exist_ok=True)
    (where / "test_suite.py").write_text(SUITE)
    cmd = [sys.executable, "-m", "pytest", "--tlbperf", "-q", "-p", "no:cacheprovider",
           "-p", "no:randomly", "--tlbperf-policy", "concurrent_flush", "--tlbperf-policy", "v4_14",
           "--tlbperf-rounds", "3", "--tlbperf-max-rounds", "12",
           "--tlbperf-json", "run.json", "--tlbperf-text", "run.txt", "test_suite.py", *args]
    proc = subprocess.run(cmd, cwd=where, capture_output=True, text=True)
    assert (where / "run.json").exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    cells = json.loads((where / "run.json").read_text())["cells"]
    text = [line for line in (where / "run.txt").read_text().splitlines()
            if not any(x in line for x in ("pytest ", "test_suite.py", str(where)))]
    return cells, text, proc.returncode, proc.stdout


@pytest.mark.parametrize("how", [["-n", "2"], ["--tx", "2*popen", "--dist", "loadgroup"]],
                         ids=["n2", "two-gateways"])
def test_xdist_gives_the_serial_runs_seeds_samples_and_verdicts(tmp_path, how):
    """Workers run their comparisons' adaptive rounds ahead; the controller
    takes their seeds only where its own rounds ask for them: the result
    is the serial one, sample for sample, verdict for verdict."""
    serial, serial_text, serial_rc, _ = _session(tmp_path, "serial")
    cells, text, rc, out = _session(tmp_path, "xdist", *how)
    assert rc == serial_rc
    assert any(len(c["seeds"]) > 3 for c in serial), "no adaptive round: the test tests nothing"
    assert cells == serial
    assert text == serial_text
    assert "with 2 workers" in out


HANDOVER_PROBE = '''
import json, pytest

SEEN = []
WORKER = [False]    # not PYTEST_XDIST_WORKER: a worker running these tests sets it

def pytest_configure(config):
    WORKER[0] = hasattr(config, "workerinput")

def _cells(parts):
    return [[c["test"], c["profile"], c["policy"]] for text in parts
            for c in json.loads(text)["cells"]]

@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_logreport(report):
    parts = getattr(report, "tlbperf", None)
    if parts and not WORKER[0]:
        SEEN.append(["report", _cells(parts)])
    result = yield
    assert not hasattr(report, "tlbperf"), "left on the report for other plugins"
    return result

@pytest.hookimpl(tryfirst=True)
def pytest_testnodedown(node, error):
    SEEN.append(["end", _cells(node.workeroutput.get("tlbperf", []))])

def pytest_unconfigure(config):
    if not WORKER[0]:
        with open("handover.json", "w") as fh:
            json.dump(SEEN, fh)
'''


def test_a_worker_ships_each_comparison_group_with_its_next_report(tmp_path):
    """A worker's cells reach the controller as each comparison group's
    rounds end, with the next test report, and not all at its end: the
    last worker's hand-over then holds only its last group, not the whole
    run. Every cell arrives once, and the report carries nothing on."""
    where = tmp_path / "xdist"
    where.mkdir()
    (where / "conftest.py").write_text(HANDOVER_PROBE)
    cells, _, rc, out = _session(tmp_path, "xdist", "-n", "2")
    seen = json.loads((where / "handover.json").read_text())
    early = [key for how, keys in seen if how == "report" for key in keys]
    late = [key for how, keys in seen if how == "end" for key in keys]
    assert rc == 0, out[-3000:]
    assert [how for how, _ in seen].count("end") == 2
    assert early, "every cell waited for its worker's end"
    assert sorted(early + late) == sorted([c["test"], c["profile"], c["policy"]] for c in cells)


def test_a_candidate_with_the_baselines_knobs_shares_its_runs_and_the_report_says_so(
        tmp_path):
    where = tmp_path / "rar"
    where.mkdir()
    (where / "test_suite.py").write_text(SUITE)
    subprocess.run([sys.executable, "-m", "pytest", "--tlbperf", "-q", "-p", "no:cacheprovider",
                    "--tlbperf-policy", "rar", "--tlbperf-rounds", "3", "--tlbperf-max-rounds",
                    "3", "--tlbperf-json", "run.json", "--tlbperf-text", "run.txt",
                    "-k", "madvise", "test_suite.py"], cwd=where, capture_output=True)
    cells = json.loads((where / "run.json").read_text())["cells"]
    by = {(c["test"], c["policy"]): c for c in cells}
    rar = by[("test_madvise[threads=2]", "rar")]
    assert rar["same_knobs"] == "mainline"
    assert rar["seeds"] == by[("test_madvise[threads=2]", "mainline")]["seeds"]
    assert "rar's knobs equal mainline's on haswell-4c: its runs there are mainline's" in \
        " ".join((where / "run.txt").read_text().split())


def test_the_benchmarks_set_up_as_they_are_documented():
    """`pytest tests/bench -m bench`, the README's command, sets every
    benchmark up. The suite's addopts deselect the benchmarks, so nothing
    else would see a helper that pytest collects as a test (`tests_run` was
    one: its missing fixture errored that command) or a fixture that is not
    there. --setup-plan resolves the fixtures and runs nothing."""
    bench = Path(__file__).parent / "bench"
    out = subprocess.run([sys.executable, "-m", "pytest", "--setup-plan", "-q", "-m", "bench",
                          "-p", "no:cacheprovider", str(bench)],
                         cwd=bench.parent.parent, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]

"""The native engine against the reference (DESIGN §3.7, issue 5): for every
built-in policy, profile and workload and several seeds both engines return
the same raw dict -- counters, samples, marks, violations with their traces
-- so metrics and violations are identical by construction. Plus engine
selection, bad input from Python, and memory that does not grow.

Set TLBPERF_REQUIRE_NATIVE=1 (tox does) to fail instead of skip when the
extension was not built."""

import concurrent.futures
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import pytest

import pytest_tlbperf as tp
from pytest_tlbperf import api
from pytest_tlbperf.engine import abi, machine, native, prng
from pytest_tlbperf.engine.machine import Machine
from native_scenarios import hang_chain

if not native.available():
    if os.environ.get("TLBPERF_REQUIRE_NATIVE"):
        raise RuntimeError("TLBPERF_REQUIRE_NATIVE is set but the native engine is not built")
    pytest.skip("the native engine is not built", allow_module_level=True)

from pytest_tlbperf.engine import _native  # noqa: E402

SEEDS = range(5)
# The biggest cells, at the default parameters, would alone double this
# file's run time; the same code paths run at a smaller size.
SMALLER = {
    ("skylake-2s", "context_switch"): {"cpus": 32},
    ("zen1-epyc", "context_switch"): {"cpus": 32},
    ("skylake-2s", "vm_overcommit"): {"threads": 32},
    ("zen1-epyc", "vm_overcommit"): {"threads": 32},
}


def both(profile, knobs, program, seed):
    return (Machine(profile, knobs, program, seed).run(),
            native.run(profile, knobs, program, seed))


def assert_same(ref, got, where):
    """Equal raw dicts; on a difference, name the first key that differs."""
    if ref == got:
        return
    for key in ref:
        if ref[key] != got[key]:
            raise AssertionError(f"{where}: {key!r} differs\n python: {ref[key]!r}\n"
                                 f" native: {got[key]!r}")
    raise AssertionError(f"{where}: keys differ: {sorted(ref)} != {sorted(got)}")


def test_constants_match_the_python_engine():
    expected = {name: getattr(abi, name) for name in _native.ABI if hasattr(abi, name)}
    expected.update({name: getattr(machine, name) for name in _native.ABI
                     if hasattr(machine, name)})
    expected.update(STREAM_MACHINE=prng.STREAM_MACHINE, STREAM_VCPU=prng.STREAM_VCPU)
    assert {k: _native.ABI[k] for k in expected} == expected
    missing = set(_native.ABI) - set(expected) - {"MAX_CPUS", "MAX_VALUE", "MAX_PAGES",
                                                   "MAX_CEILING"}
    assert not missing, f"constants the test does not compare: {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("workload", sorted(tp.workloads.BUILDERS))
@pytest.mark.parametrize("profile", tp.profiles.names())
def test_every_policy_profile_workload_and_seed(profile, workload):
    prof = tp.profiles.get(profile)
    work = tp.workloads.BUILDERS[workload](**SMALLER.get((profile, workload), {}))
    kinds = set()
    for seed in SEEDS:
        program = work.compile(prof, seed)
        for name in tp.policies.names():
            ref, got = both(prof, tp.policies.get(name)().knobs(prof), program, seed)
            assert_same(ref, got, f"{workload}@{profile} {name} seed={seed}")
            kinds |= {v[0] for v in ref["violations"]}
    if workload == "kernel_build" and profile == "zen1-epyc":
        # the 2017 hang is among the cells, so violations and traces are compared
        assert abi.V_FREED_TABLE_WALK in kinds


class LazyShootdown(tp.Policy):
    """lazy_pcid's lazy mode with shootdown of lazily used mms."""
    lazy_cpumask = "clear"
    flush_lazy_cpus = "never"
    lazy_mm_ref = "shootdown"


class NoLazyRef(tp.Policy):
    lazy_mm_ref = "none"


@pytest.mark.parametrize("workload, profile, policy, kinds", [
    # the violation kinds no built-in policy x workload reaches
    (tp.workloads.custom("hang_chain", hang_chain), "zen1-epyc", LazyShootdown,
     {abi.V_FREED_TABLE_WALK, abi.V_HANG}),
    (tp.workloads.exit_storm(), "skylake-2s", NoLazyRef, {abi.V_LAZY_MM_UAF}),
], ids=["hang", "lazy_mm_use_after_free"])
def test_violations_only_hand_made_scenarios_reach(workload, profile, policy, kinds):
    prof = tp.profiles.get(profile)
    for seed in range(3):
        program = workload.compile(prof, seed)
        ref, got = both(prof, policy().knobs(prof), program, seed)
        assert_same(ref, got, f"{workload.name} seed={seed}")
        assert {v[0] for v in ref["violations"]} == kinds


def test_run_reports_the_engine_that_ran_and_identical_results():
    work = tp.workloads.kernel_build(jobs=12)
    py = tp.run(work, "zen1-epyc", "lazy_pcid", seed=3, engine="python")
    nat = tp.run(work, "zen1-epyc", "lazy_pcid", seed=3, engine="native")
    auto = tp.run(work, "zen1-epyc", "lazy_pcid", seed=3)
    assert (py.engine, nat.engine, auto.engine) == ("python", "native", "native")
    assert py.violations and "freed_table_walk" in py.kinds()
    for r in (nat, auto):
        assert r.metrics == py.metrics
        assert [v.to_dict() for v in r.violations] == [v.to_dict() for v in py.violations]
        assert (r.violation_counts, r.ipis_by_cpu, r.finished, r.executed_digest) == (
            py.violation_counts, py.ipis_by_cpu, py.finished, py.executed_digest)


class Hooked(tp.Policy):
    def should_flush_cpu(self, cpu, info):
        return info.default


def test_a_python_hook_runs_on_the_python_engine():
    work = tp.workloads.madvise_dontneed(iterations=3)
    assert tp.run(work, "haswell-4c", Hooked).engine == "python"
    with pytest.raises(tp.EngineUnavailable, match="should_flush_cpu"):
        tp.run(work, "haswell-4c", Hooked, engine="native")


def test_without_the_extension_auto_warns_once_and_native_is_unavailable(monkeypatch):
    monkeypatch.setattr(native, "_native", None)
    monkeypatch.setattr(api, "_warned", set())
    work = tp.workloads.madvise_dontneed(iterations=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = tp.run(work, "haswell-4c")
        second = tp.run(work, "haswell-4c", seed=1)
    assert (first.engine, second.engine) == ("python", "python")
    assert len([w for w in caught if "native engine is not built" in str(w.message)]) == 1
    with pytest.raises(tp.EngineUnavailable, match="not built"):
        tp.run(work, "haswell-4c", engine="native")
    with pytest.raises(tp.EngineUnavailable, match="not built"):
        native.run(tp.profiles.get("haswell-4c"), tp.Policy().knobs(
            tp.profiles.get("haswell-4c")), work.compile(tp.profiles.get("haswell-4c"), 0), 0)


def test_the_c_sources_folder_is_not_taken_for_an_unbuilt_extension(tmp_path):
    # Where the extension was never built, in a source tree or an editable
    # install, `import _native` finds the folder engine/_native/ (the C
    # sources) as a namespace package. A child process imports the package
    # under test as if no extension module existed.
    code = textwrap.dedent("""
        import sys, importlib.machinery as m

        class Unbuilt:
            def find_spec(self, name, path, target=None):
                if name == "pytest_tlbperf.engine._native":
                    finder = m.FileFinder(path[0], (m.SourceFileLoader, [".py"]))
                    spec = finder.find_spec(name)
                    if spec is None:        # an installed package: no sources folder
                        raise ModuleNotFoundError(name)
                    return spec

        sys.meta_path.insert(0, Unbuilt())
        from pytest_tlbperf.engine import native
        print(native.available())
    """)
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=120, cwd=tmp_path)
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == ["False"]


# --- bad input from Python: TypeError / ValueError, never a crash -------------

def good_args():
    prof = tp.profiles.get("kvm-guest-16")
    program = tp.workloads.madvise_dontneed(iterations=2).compile(prof, 0)
    p, cstates, virt = native.flatten_profile(prof)
    return [p, cstates, virt, native.flatten_knobs(tp.Policy().knobs(prof)),
            *native.flatten_program(program), 0]


def replaced(args, index, value):
    args = list(args)
    args[index] = value
    return args


def with_task(args, task):
    return replaced(args, 5, args[5] + (task,))


BAD = [
    # (what, change to good_args(), exception)
    ("profile not a tuple", lambda a: replaced(a, 0, list(a[0])), TypeError),
    ("profile too short", lambda a: replaced(a, 0, a[0][:-1]), ValueError),
    ("a cost is a str", lambda a: replaced(a, 0, a[0][:20] + ("5",) + a[0][21:]), TypeError),
    ("a cost is a float", lambda a: replaced(a, 0, a[0][:20] + (5.0,) + a[0][21:]), TypeError),
    ("no CPUs", lambda a: replaced(a, 0, (0,) + a[0][1:]), ValueError),
    ("cores do not divide cpus", lambda a: replaced(a, 0, (15,) + a[0][1:]), ValueError),
    ("a cost beyond 64 bits", lambda a: replaced(a, 0, a[0][:20] + (2**70,) + a[0][21:]),
     ValueError),
    ("negative cost", lambda a: replaced(a, 0, a[0][:20] + (-1,) + a[0][21:]), ValueError),
    ("cstate not a triple", lambda a: replaced(a, 1, ((1, 2),)), ValueError),
    ("cstates a list", lambda a: replaced(a, 1, list(a[1])), TypeError),
    ("virt a dict", lambda a: replaced(a, 2, {"preempt_percent": 25}), TypeError),
    ("vCPU never runs", lambda a: replaced(a, 2, (25, 0, 1)), ValueError),
    ("preempted 96%", lambda a: replaced(a, 2, (96, 1000, 1)), ValueError),
    ("unknown knob value", lambda a: replaced(a, 3, (2,) + a[3][1:]), ValueError),
    ("knob None", lambda a: replaced(a, 3, (None,) + a[3][1:]), TypeError),
    ("mm_pages a list", lambda a: replaced(a, 4, list(a[4])), TypeError),
    ("negative mm size", lambda a: replaced(a, 4, (-1,)), ValueError),
    ("task not a tuple", lambda a: with_task(a, [0, 0, 0, ()]), TypeError),
    ("task cpu beyond the machine", lambda a: with_task(a, (0, 16, 0, ())), ValueError),
    ("task names a missing mm", lambda a: with_task(a, (1, 0, 0, ())), ValueError),
    ("ops a list", lambda a: with_task(a, (0, 0, 0, [abi.OP_MARK, 0, 0, 0])), TypeError),
    ("ops not in fours", lambda a: with_task(a, (0, 0, 0, (abi.OP_MARK, 0, 0))), ValueError),
    ("unknown op", lambda a: with_task(a, (0, 0, 0, (99, 0, 0, 0))), ValueError),
    ("op argument a str", lambda a: with_task(a, (0, 0, 0, (abi.OP_COMPUTE, "1", 0, 0))),
     TypeError),
    ("op argument huge", lambda a: with_task(a, (0, 0, 0, (abi.OP_COMPUTE, 2**63, 0, 0))),
     ValueError),
    ("access beyond the mm", lambda a: with_task(a, (0, 0, 0, (abi.OP_ACCESS, 510, 8, 1))),
     ValueError),
    ("access before the mm", lambda a: with_task(a, (0, 0, 0, (abi.OP_ACCESS, -1, 2, 1))),
     ValueError),
    ("madvise before the mm", lambda a: with_task(a, (0, 0, 0, (abi.OP_MADVISE, -4, 8, 0))),
     ValueError),
    ("seed a str", lambda a: replaced(a, 6, "1"), TypeError),
    ("missing argument", lambda a: a[:-1], TypeError),
]


@pytest.mark.parametrize("change, exc", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_raises(change, exc):
    _native.run(*good_args())           # the unchanged arguments run
    with pytest.raises(exc):
        _native.run(*change(good_args()))


def test_inputs_machine_py_accepts_within_the_bounds():
    args = good_args()
    # a kernel thread's access is a no-op whatever its pages; madvise past
    # the end of an mm is clipped; a seed beyond 64 bits is masked
    task = (-1, 1, 0, (abi.OP_ACCESS, -5, 3, 0, abi.OP_MIGRATE, 99, 0, 0))
    extra = (0, 2, 0, (abi.OP_MADVISE, 400, 10_000, 0, abi.OP_MUNMAP, 0, 4096, 1))
    for seed in (0, 2**64 + 7):
        args = replaced(with_task(with_task(good_args(), task), extra), 6, seed)
        prof = tp.profiles.get("kvm-guest-16")
        program = tp.workloads.Program("t", list(args[4]), [
            tp.workloads.TaskSpec(*t) for t in args[5]])
        ref = Machine(prof, tp.Policy().knobs(prof), program, seed).run()
        assert_same(ref, _native.run(*args), "edge inputs")


# --- memory --------------------------------------------------------------------

def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


UNDER_ASAN = "asan" in os.environ.get("LD_PRELOAD", "")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm") or UNDER_ASAN,
                    reason="needs /proc; AddressSanitizer's quarantine keeps freed memory")
def test_repeated_runs_do_not_grow_memory():
    prof = tp.profiles.get("zen1-epyc")
    knobs = tp.policies.get("lazy_pcid")().knobs(prof)   # hangs: calls stay in flight
    program = tp.workloads.kernel_build().compile(prof, 1)
    args = (*native.flatten_profile(prof), native.flatten_knobs(knobs),
            *native.flatten_program(program), 1)
    for _ in range(20):
        _native.run(*args)
    before = rss_bytes()
    for _ in range(200):
        raw = _native.run(*args)
    del raw
    growth = rss_bytes() - before
    # one run allocates about a megabyte; a leak of it per run would be 200 MB
    assert growth < 8 << 20, f"RSS grew by {growth} bytes over 200 runs"


@pytest.mark.skipif(sys.platform != "linux" or UNDER_ASAN,
                    reason="RLIMIT_AS; AddressSanitizer reserves terabytes of address space")
def test_out_of_memory_is_a_memory_error_and_frees_what_it_allocated(tmp_path):
    """An allocation failure, in the set-up or inside the loop, unwinds to
    run() and raises MemoryError; what was allocated is freed, so repeating
    it does not grow the address space."""
    script = textwrap.dedent("""
        import resource
        import pytest_tlbperf as tp
        from pytest_tlbperf.engine import native, _native

        def vsize():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[0]) * resource.getpagesize()

        prof = tp.profiles.get("haswell-4c")
        p, cstates, virt = native.flatten_profile(prof)
        knobs = native.flatten_knobs(tp.Policy().knobs(prof))
        # set-up: 65536 CPUs need ~60 MB of per-CPU arrays
        big = (1 << 16, 1 << 16, 1 << 16) + p[3:]
        setup = (big, cstates, virt, knobs, (), ())
        # loop: eight 2**31-page mms, each 256 MB of page-block pointers at exec
        tasks = tuple((i, 0, 0, (1, 0, 1, 1)) for i in range(8))
        loop = (p, cstates, virt, knobs, (2**31 - 1,) * 8, tasks)
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        start = vsize()
        for _ in range(10):
            for args, room in ((setup, 16 << 20), (loop, 64 << 20)):
                resource.setrlimit(resource.RLIMIT_AS, (start + room, hard))
                try:
                    _native.run(*args, 0)
                except MemoryError:
                    print("MemoryError")
                finally:
                    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        print(vsize() - start)
    """)
    # run outside the source tree, so the installed package (and its extension) is imported
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    *errors, growth = out.stdout.split()
    assert errors == ["MemoryError"] * 20
    assert int(growth) < 16 << 20


# --- Ctrl-C: the loop runs without the GIL, and still stops (issue 17) --------

# A program of a few minutes on the native engine: 400,000 membarrier() calls,
# each an IPI to 1023 CPUs. Imports native_scenarios from this folder; run
# outside the source tree, so the installed package is imported.
LONG_RUN = textwrap.dedent(f"""
    import sys
    sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
    import pytest_tlbperf as tp
    from pytest_tlbperf.engine import native
    from native_scenarios import big_machine, membarrier_storm

    prof = big_machine(tp.profiles.get("skylake-2s"))
    knobs = tp.Policy().knobs(prof)
    work = tp.workloads.custom("membarrier_storm", membarrier_storm, rounds=400_000)
    program = work.compile(prof, 0)
""")


def test_ctrl_c_stops_a_native_run(tmp_path):
    """SIGINT in the middle of a run that would take minutes: run() stops
    with KeyboardInterrupt, and the uncaught exception ends the process as
    Ctrl-C ends any Python program (by SIGINT)."""
    script = LONG_RUN + textwrap.dedent("""
        print("running", flush=True)
        native.run(prof, knobs, program, 0)
        print("finished", flush=True)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        started = child.stdout.readline()
        if started == "running\n":
            time.sleep(0.5)
            child.send_signal(signal.SIGINT)
        # only a safety net: a run that ignores SIGINT goes on for minutes
        out, err = child.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the native run ignored SIGINT: still running 60 s later")
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert started == "running\n", err
    assert "finished" not in out
    assert err.rstrip().endswith("KeyboardInterrupt"), err
    assert child.returncode == -signal.SIGINT


def test_runs_on_other_threads_are_the_same_runs():
    """run() lets go of the GIL so that runs can go in parallel on threads;
    only the main thread's runs take it back to handle signals."""
    prof = tp.profiles.get("skylake-2s")
    knobs = tp.policies.get("mainline")().knobs(prof)
    # about 12,000 events: a dozen polls
    program = tp.workloads.madvise_dontneed(threads=8, iterations=300).compile(prof, 1)
    expected = native.run(prof, knobs, program, 1)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: native.run(prof, knobs, program, 1), range(4)))
    assert runs == [expected] * 4


@pytest.mark.skipif(not os.path.exists("/proc/self/statm") or UNDER_ASAN,
                    reason="needs /proc; AddressSanitizer's quarantine keeps freed memory")
def test_a_run_stopped_by_a_signal_frees_what_it_allocated(tmp_path):
    """A signal handler that raises stops the run with its exception, and
    the stopped run frees its machine (about 40 MB at 1024 CPUs): thirty of
    them do not grow the process."""
    script = LONG_RUN + textwrap.dedent("""
        import os, signal
        from pytest_tlbperf.engine import _native

        class Stop(Exception):
            pass

        def stop(signum, frame):
            raise Stop

        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

        args = (*native.flatten_profile(prof), native.flatten_knobs(knobs),
                *native.flatten_program(program), 0)
        signal.signal(signal.SIGALRM, stop)
        for i in range(35):
            if i == 5:
                before = rss()
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            try:
                _native.run(*args)
            except Stop:
                print("Stop")
        print(rss() - before)
    """)
    # the timeout is only a safety net: without the poll, each run takes minutes
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    *stops, growth = out.stdout.split()
    assert stops == ["Stop"] * 35
    assert int(growth) < 16 << 20, f"RSS grew by {growth} bytes over 30 stopped runs"

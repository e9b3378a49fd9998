"""Issue 17, workload parameters: checked where the builder is called, with
the limit in the message, so no run can exhaust memory; programs are
bounded as they are built, whatever builds them."""

import re

import pytest

import pytest_tlbperf as tp
from pytest_tlbperf import workloads as W
from pytest_tlbperf.errors import WorkloadError


@pytest.mark.parametrize("make, message", [
    (lambda: W.madvise_dontneed(iterations=10**7),
     "madvise_dontneed: iterations must be an integer from 1 to 1000000, got 10000000"),
    (lambda: W.kernel_build(jobs=10**6), "kernel_build: jobs must be an integer from 1 to "
                                         "100000"),
    (lambda: W.munmap_storm(iterations=10**7), "munmap_storm: iterations must be an integer "
                                               "from 1 to 1000000"),
    (lambda: W.context_switch(window_us=0), "context_switch: window_us must be an integer "
                                            "from 1"),
    (lambda: W.exit_storm(processes=10**7), "exit_storm: processes must be an integer from 1"),
    (lambda: W.madvise_dontneed(threads=2.0), "threads must be an integer from 1 to 65536, "
                                              "got 2.0"),
    (lambda: W.madvise_dontneed(threads=True), "threads must be an integer from 1 to 65536, "
                                               "got True"),
    (lambda: W.madvise_dontneed(threads=None), "threads must be an integer from 1 to 65536, "
                                               "got None"),
    (lambda: W.idle_server(requests=0), "idle_server: requests must be an integer from 1"),
    (lambda: W.munmap_storm(regions=10**6), "munmap_storm: regions must be an integer from 1 "
                                            "to 4096"),
])
def test_builder_parameters_are_checked_with_their_limit(make, message):
    with pytest.raises(WorkloadError) as exc:
        make()
    assert message in str(exc.value)


def test_none_is_accepted_where_it_is_the_default():
    assert W.kernel_build(cpus=None).params["cpus"] is None
    assert W.vm_overcommit(threads=None).params["threads"] is None


def test_the_helper_serves_new_builders():
    """check_params is what a new builder calls; its limits come from
    PARAM_LIMITS by parameter name."""
    W.check_params("my_storm", threads=4, iterations=10)
    with pytest.raises(WorkloadError, match="my_storm: iterations must be an integer from 1 "
                                            "to 1000000, got 0"):
        W.check_params("my_storm", iterations=0)
    with pytest.raises(WorkloadError, match=r"my_storm: knob_count must be .* to 1000000"):
        W.check_params("my_storm", knob_count=10**7)


def _custom(build):
    return tp.workloads.custom("mine", build)


def test_a_program_is_bounded_while_it_is_built(monkeypatch):
    monkeypatch.setattr(W, "MAX_OPS", 1000)

    def one_task(b, profile):                 # one task that never stops adding ops
        t = b.task(b.mm(512), 0)
        while True:
            t.access(0)

    def many_tasks(b, profile):               # or ops spread over many tasks
        mm = b.mm(512)
        for i in range(10**6):
            b.task(mm, 0).access(0).access(1)
    for build in (one_task, many_tasks):
        with pytest.raises(WorkloadError, match="mine: more than 1000 ops in one program"):
            tp.run(_custom(build), "haswell-4c")


def test_pages_are_bounded_and_integers():
    with pytest.raises(WorkloadError, match=r"mm\(1099511627776\) makes 1099511627776 pages "
                                            r"in all mms, more than the 8388608"):
        tp.run(_custom(lambda b, p: b.task(b.mm(2**40), 0).access(0)), "haswell-4c")
    with pytest.raises(WorkloadError, match=r"mm\(1.5\): pages must be an integer"):
        tp.run(_custom(lambda b, p: b.mm(1.5)), "haswell-4c")
    with pytest.raises(WorkloadError, match=r"task 0 op 0 \(access\): 1.5 is not an integer "
                                            r"within 2\^44"):
        tp.run(_custom(lambda b, p: b.task(b.mm(512), 0).access(1.5)), "haswell-4c")
    with pytest.raises(WorkloadError, match=r"task 0 op 1 \(compute\): 17592186044417"):
        tp.run(_custom(lambda b, p: b.task(b.mm(512), 0).access(0)._op(2, 2**44 + 1)),
               "haswell-4c")


def test_a_custom_build_function_that_raises_is_named():
    def build(b, profile):
        raise ValueError("oops")
    with pytest.raises(WorkloadError, match=r"workload mine\(\): building it for haswell-4c "
                                            r"raised ValueError: oops"):
        tp.run(_custom(build), "haswell-4c")


@pytest.mark.parametrize("workload, message", [
    ("kernel_build", r"got 'kernel_build': call the builder, tp.workloads.kernel_build\(\)"),
    (W.hackbench, r"got <function hackbench .*: call the builder, tp.workloads.hackbench\(\)"),
    (None, r"the workload must be a Workload \(tp.workloads.kernel_build\(\), ... or "
           r"tp.workloads.custom\(\)\), got NoneType None"),
])
def test_a_workload_that_is_not_one_is_named_before_anything_runs(workload, message):
    """tp.run('kernel_build') was an AttributeError from inside the engine's
    set-up; the name of a builder is the likely slip."""
    with pytest.raises(WorkloadError, match=message):
        tp.run(workload, "haswell-4c")


@pytest.mark.parametrize("seed", [-1, True, 1.0, "1", 1 << 64, (1 << 64) + 1])
def test_a_seed_outside_the_streams_range_is_refused_not_wrapped(seed):
    """The PRNG streams take a seed mod 2^64: 2^64 + 1 would run seed 1's
    workload under another name, and True would be seed 1."""
    with pytest.raises(tp.errors.TlbperfError,
                       match=rf"seed must be an integer from 0 to 2\^64 - 1, got "
                             rf"{re.escape(repr(seed))}$"):
        tp.run(W.madvise_dontneed(iterations=5), "haswell-4c", seed=seed)


def test_the_largest_seed_runs_the_same_on_both_engines():
    workload = W.madvise_dontneed(threads=2, iterations=5)
    python, native = (tp.run(workload, "haswell-4c", seed=(1 << 64) - 1, engine=engine)
                      for engine in ("python", "native"))
    assert python.metrics == native.metrics

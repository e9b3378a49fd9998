import pytest

import pytest_tlbperf as tp
from pytest_tlbperf.errors import WorkloadError

W = tp.workloads
PROFILES = ["haswell-4c", "skylake-2s", "zen1-epyc", "kvm-guest-16", "laptop-8c"]


def test_builders_are_the_contract():
    assert set(W.BUILDERS) == {"madvise_dontneed", "munmap_storm", "kernel_build",
                               "idle_server", "context_switch", "exit_storm", "vm_overcommit",
                               "tlb_flush1", "tlb_flush2", "tlb_flush3", "context_switch1",
                               "hackbench", "page_reclaim"}
    for builder in W.BUILDERS.values():
        # each says which thread, benchmark source or kernel path it mirrors
        assert any(src in builder.__doc__ for src in ("seed", "Seed", "will-it-scale",
                                                      "hackbench.c", "mm/vmscan.c"))


@pytest.mark.parametrize("name", sorted(W.BUILDERS))
@pytest.mark.parametrize("profile", PROFILES)
def test_every_workload_runs_clean_under_mainline(name, profile):
    w = W.BUILDERS[name]()
    if name == "context_switch" and profile in ("skylake-2s", "zen1-epyc"):
        w = W.context_switch(cpus=32)      # keep the suite quick
    r = tp.run(w, profile, "mainline", seed=1)
    assert r.finished
    assert r.violations == [], r.violations[0].format()
    assert r.metrics["makespan_ns"] > 0
    if w.compile(tp.profiles.get(profile), 1).window:
        assert r.metrics["ops_per_sec"] > 0


def test_compile_is_a_function_of_the_seed():
    prof = tp.profiles.get("skylake-2s")
    assert W.kernel_build().compile(prof, 4).digest() == W.kernel_build().compile(prof, 4).digest()
    assert W.kernel_build().compile(prof, 4).digest() != W.kernel_build().compile(prof, 5).digest()
    assert W.kernel_build(jobs=8) != W.kernel_build() and repr(W.kernel_build(jobs=8)) == \
        "kernel_build(cpus=None, jobs=8)"


def test_bad_parameters_are_named():
    with pytest.raises(WorkloadError, match="jobs must be an integer from 1 to 100000, got 0"):
        W.kernel_build(jobs=0)
    with pytest.raises(WorkloadError, match="need 5 cores"):
        tp.run(W.madvise_dontneed(threads=5), "haswell-4c")
    with pytest.raises(WorkloadError, match="asks for 32 CPUs"):
        tp.run(W.idle_server(workers=32), "haswell-4c")


def test_ops_outside_the_mm_are_named_before_the_run():
    def build(b, profile):
        b.task(b.mm(512), 0).access(500, 20)
    with pytest.raises(WorkloadError, match=r"task 0 op 0 \(access\): pages 500..520 outside "
                                            r"the task's 512-page mm"):
        tp.run(W.custom("overrun", build), "haswell-4c")

    def migrate(b, profile):
        b.task(b.mm(512), 0).migrate(99)
    with pytest.raises(WorkloadError, match="cpu99 does not exist on haswell-4c"):
        tp.run(W.custom("nowhere", migrate), "haswell-4c")

"""The kernel paths on hand-built programs: which CPUs get IPIs, the
single-page ceiling, the tlb_gen partial/full rule, ASID allocation."""

import pytest

import pytest_tlbperf as tp
from conftest import V414, DropLazy, Eager, LazyAlways, LazyFreed


def _three_threads(b, profile):
    """cpu0 madvises one page at ~50 us while cpu1 runs and cpu2 sleeps
    (idle, lazily on the mm); cpu2's thread exits last, so exit_mmap's
    freed-tables flush finds cpu0 and cpu1 lazy."""
    mm = b.mm(512)
    b.task(mm, 0).access(0).compute_us(50).madvise(0).compute_us(10).exit()
    b.task(mm, 1).access(8).compute_us(200).exit()
    b.task(mm, 2).access(16).sleep_us(1000).exit()


@pytest.mark.parametrize("policy, ipis_by_cpu, to_lazy", [
    (LazyFreed, (1, 2, 0), 2),    # madvise: cpu1; exit_mmap (freed tables): cpu0, cpu1
    (LazyAlways, (1, 2, 1), 3),   # the lazy cpu2 gets the madvise IPI too
    (V414, (0, 1, 0), 0),         # lazy CPUs left mm_cpumask: no IPI ever reaches them
    (DropLazy, (0, 1, 0), 0),     # no lazy CPUs at all: they switched to init_mm
])
def test_which_cpus_get_flush_ipis(micro, policy, ipis_by_cpu, to_lazy):
    r = tp.run(micro(_three_threads), "haswell-4c", policy, seed=0)
    assert r.finished
    assert r.ipis_by_cpu[:3] == ipis_by_cpu and sum(r.ipis_by_cpu[3:]) == 0
    assert r.metrics["ipis"] == sum(ipis_by_cpu)
    assert r.metrics["ipis_to_lazy"] == to_lazy
    assert not r.violations


def test_single_page_flush_ceiling(micro):
    """tlb_single_page_flush_ceiling = 33: 33 pages are 33 INVLPGs, 34 a full flush."""
    def build(b, profile):
        mm = b.mm(512)
        b.task(mm, 0).access(0, 40).madvise(0, 33).access(0, 40).madvise(0, 34)

    r = tp.run(micro(build), "haswell-4c")
    assert r.metrics["invlpg"] == 33
    base = tp.run(micro(lambda b, p: b.task(b.mm(512), 0).access(0, 40)), "haswell-4c")
    assert r.metrics["full_flushes"] == base.metrics["full_flushes"] + 1

    class NoCeiling(tp.Policy):
        flush_ceiling = 0
    r0 = tp.run(micro(build), "haswell-4c", NoCeiling)
    assert r0.metrics["invlpg"] == 0
    assert r0.metrics["full_flushes"] == base.metrics["full_flushes"] + 2


def test_concurrent_flushes_fall_back_to_full_flushes():
    """flush_tlb_func: a partial flush only when f->new_tlb_gen ==
    local_tlb_gen + 1 == mm's tlb_gen. Two threads flushing at once break
    that, so some single-page flushes become full flushes; one thread never."""
    one = tp.run(tp.workloads.madvise_dontneed(threads=1, iterations=100), "haswell-4c")
    two = tp.run(tp.workloads.madvise_dontneed(threads=2, iterations=100), "haswell-4c")
    assert one.metrics["full_flushes"] <= one.metrics["cr3_writes"]
    assert one.metrics["invlpg"] == 100
    assert two.metrics["full_flushes"] > two.metrics["cr3_writes"] + 10
    assert two.metrics["invlpg"] < 2 * 2 * 100


class DedicatedInitMm(tp.Policy):
    init_mm_asid = "dedicated"


@pytest.mark.parametrize("policy, processes, flushes_at_least, flushes_at_most", [
    (DedicatedInitMm, 6, 6, 6),   # six processes keep their six ASIDs: one flush each
    # init_mm held ASID 0 since boot and competes like any mm: the sixth
    # process evicts it, and the exit flush that moves the last (lazy) CPU to
    # init_mm needs a slot again
    (tp.Policy, 6, 7, 7),
    (DedicatedInitMm, 7, 70, None),   # a seventh evicts on every switch
])
def test_choose_new_asid_has_six_dynamic_asids(micro, policy, processes, flushes_at_least,
                                                flushes_at_most):
    """TLB_NR_DYN_ASIDS = 6: processes round-robin on one CPU keep their
    ASIDs while they fit in the six slots."""
    def build(b, profile):
        for _ in range(processes):
            t = b.task(b.mm(512), 0)
            for _ in range(10):
                t.access(0).yield_()
    r = tp.run(micro(build), "haswell-4c", policy)
    assert r.metrics["full_flushes"] >= flushes_at_least
    if flushes_at_most is not None:
        assert r.metrics["full_flushes"] <= flushes_at_most


def test_without_pcid_every_cr3_write_flushes(micro):
    def build(b, profile):
        for _ in range(2):
            t = b.task(b.mm(512), 0)
            for _ in range(10):
                t.access(0).yield_()
    nopcid = tp.profiles.get("haswell-4c").with_changes(name="haswell-nopcid", pcid=False)
    r = tp.run(micro(build), nopcid)
    assert r.metrics["full_flushes"] == r.metrics["cr3_writes"] > 20
    assert tp.run(micro(build), "haswell-4c").metrics["full_flushes"] == 2


def test_ipis_to_idle_cpus_pay_c_state_exit_latency(micro):
    """One madvise flush to a CPU idle long enough to reach C6. The flush
    waits for the C6 exit, drawn from the state's measured wake-up range
    (skylake-2s: 46..92 us, below intel_idle's advertised 133 us worst case).
    The second flush, exit_mmap's, frees tables and wakes an idle CPU under
    both policies, so the median (the smaller of the two) is the madvise
    flush."""
    def build(b, profile):
        mm = b.mm(512)
        b.task(mm, 0).access(0).compute_us(2000).madvise(0)
        b.task(mm, 1).access(8).sleep_us(5000)

    sky = tp.profiles.get("skylake-2s")
    c6 = sky.cstates[-1]
    assert c6.name == "C6" and c6.wake_max < c6.exit_latency
    lo, hi = sky.ns_from_cycles(c6.wake_min), sky.ns_from_cycles(c6.wake_max) + 7_000
    r = tp.run(micro(build), "skylake-2s", LazyAlways)
    assert r.metrics["ipis_to_idle"] >= 1
    assert lo <= r.metrics["flush_latency_ns_p50"] < hi
    fast = tp.run(micro(build), "skylake-2s", LazyFreed)
    assert fast.metrics["flush_latency_ns_p50"] < 5_000
    assert lo <= fast.metrics["flush_latency_ns_p99"] < hi


def test_hung_cpu_makes_the_next_flush_hang(micro):
    """The 2017 chain end to end on zen1-epyc: a flush that frees a page table
    skips a running CPU (a deliberately broken hook), that CPU's speculative
    walk through the freed table hangs it, and the next flush that needs it
    waits until the watchdog (1 s) reports `hang` on the initiator."""
    class SkipsCpu1OnFree(Eager):
        def should_flush_cpu(self, cpu, info):
            return info.default and not (cpu == 1 and info.freed_tables)

    def build(b, profile):
        mm = b.mm(1024)
        b.task(mm, 0).access(0, 4).compute_us(20).munmap(0, 512).compute_us(50) \
            .access(512).madvise(512)
        b.task(mm, 1, start_us=5).access(8, 4).compute_us(500)

    r = tp.run(micro(build), "zen1-epyc", SkipsCpu1OnFree)
    walk = [v for v in r.violations if v.kind == "freed_table_walk"]
    hang = [v for v in r.violations if v.kind == "hang"]
    assert [(v.cpu, v.severity) for v in walk] == [(1, "hang")]
    assert [v.cpu for v in hang] == [0]
    assert hang[0].time_ns >= 1_000_000_000
    assert "cpu1 hangs" in "\n".join(hang[0].trace)
    assert not r.finished
    # the same program with an honest flush is clean and finishes
    clean = tp.run(micro(build), "zen1-epyc")
    assert clean.finished and clean.violations == []

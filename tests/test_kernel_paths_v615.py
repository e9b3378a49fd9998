"""Today's kernel paths (issue 12): v6.14's lazy mm_cpumask and its
once-a-second trim, v6.15's global ASIDs with INVLPGB + TLBSYNC, reclaim's
arch_tlbbatch_flush, the RAR RFC, the LRU lock, and the oracle catching a
broadcast flush that returns before TLBSYNC."""

import pytest

import pytest_tlbperf as tp
from pytest_tlbperf import profiles
from pytest_tlbperf.engine.machine import Machine
from pytest_tlbperf.errors import PolicyError
from pytest_tlbperf.policies.mainline_v6_14 import MainlineV614
from pytest_tlbperf.policies.mainline_v6_6 import MainlineV66

W = tp.workloads


class Untrimmed(MainlineV66):
    cpumask_update = "lazy_untrimmed"


def _stale_cpu1(when_us):
    """cpu1 runs a thread of process A, which sleeps; cpu1 then switches to
    process B and keeps running it. At `when_us` A's thread on cpu0 madvises
    twice: cpu1 is in A's mm_cpumask only if the mask is lazy."""
    def build(b, profile):
        a, other = b.mm(512), b.mm(16)
        b.task(a, 0, affinity=(0,)).access(0).compute_us(when_us).madvise(0) \
            .compute_us(5).madvise(0).exit()
        b.task(a, 1, affinity=(1,)).access(8).sleep_us(when_us + 2000).exit()
        b.task(other, 1, start_us=10, affinity=(1,)).access(0).compute_us(when_us + 1000).exit()
    return build


@pytest.mark.parametrize("policy, when_us, ipis_to_cpu1", [
    (MainlineV66, 100, 0),       # eager: cpu1 left A's mask when it switched to B
    (MainlineV614, 100, 0),      # lazy: cpu1 is in the mask, should_flush_tlb() skips it
    (Untrimmed, 100, 1),         # 209954cbc7d0 alone: the first flush IPIs it, which clears it
    (MainlineV614, 1_002_000, 1),  # a second after A's creation: the trim flush clears it
    (MainlineV66, 1_002_000, 0),
])
def test_lazy_mm_cpumask_ipis_and_trim(micro, policy, when_us, ipis_to_cpu1):
    r = tp.run(micro(_stale_cpu1(when_us)), "haswell-4c", policy, seed=0)
    assert r.finished and not r.violations
    # two madvises: only the first can reach cpu1 -- its handler finds A not
    # loaded and clears the bit, so the second skips it
    assert r.ipis_by_cpu[1] == ipis_to_cpu1


def _machine(workload, profile, policy, seed=1):
    prof = profiles.get(profile) if isinstance(profile, str) else profile
    knobs = tp.policies.resolve(policy).knobs(prof)
    m = Machine(prof, knobs, workload.compile(prof, seed), seed)
    return m, m.run()


@pytest.mark.parametrize("threads, global_asid", [(3, False), (4, True), (8, True)])
def test_global_asid_for_mms_on_more_than_three_cpus(threads, global_asid):
    """consider_global_asid(): "Assign a global ASID if the process is active
    on 4 or more CPUs simultaneously"."""
    m, raw = _machine(W.tlb_flush2(threads=threads, window_us=100), "milan-36c", "mainline")
    assert bool(m.mm_gasid[1]) == global_asid
    assert (raw["counters"]["invlpgb"] > 0) == global_asid
    if global_asid:
        assert m.mm_gasid[1] >= tp.engine.machine.NR_HW_ASIDS
        assert not m.mm_transition[1], "every CPU running the mm reloaded CR3"


def test_invlpgb_sends_no_ipis_and_tlbsync_orders_the_return():
    """Once the mm has a global ASID its flushes are INVLPGB + TLBSYNC: no
    IPI in the measured window, and no flush returns sooner than TLBSYNC."""
    work = W.tlb_flush2(threads=8, window_us=200)
    bcast = tp.run(work, "milan-36c", "mainline", seed=1)
    ipi = tp.run(work, "milan-36c", "mainline_v6_14", seed=1)
    assert bcast.metrics["ipis"] == 0 and bcast.metrics["invlpgb"] > 0
    assert ipi.metrics["ipis"] > 0 and ipi.metrics["invlpgb"] == 0
    tlbsync_ns = profiles.get("milan-36c").raw["costs"]["tlbsync_ns"]
    assert bcast.metrics["flush_latency_ns_p50"] >= tlbsync_ns
    per_loop = {name: r.metrics["flush_cpu_ns"] / r.metrics["ops_per_sec"]
                for name, r in (("bcast", bcast), ("ipi", ipi))}
    assert per_loop["bcast"] < per_loop["ipi"] / 2


class SkipTlbsync(tp.Policy):
    """Broken on purpose: a broadcast flush returns without TLBSYNC and frees
    page tables as soon as it returned."""
    broadcast_flush = "invlpgb"
    tlbsync = "skip"
    table_free = "after_flush"


def _readers_and_unmapper(b, profile):
    """Five threads read a page one of them keeps zapping (stale_tlb if a
    flush returns before the broadcast reached them), and the same one
    munmaps the others' 2 MiB regions, freeing their page tables
    (freed_table_walk if it is reused while their PSCs point at it)."""
    mm = b.mm(6 * 512)
    main = b.task(mm, 0, affinity=(0,))
    for i in range(1, 5):
        t = b.task(mm, i, affinity=(i,))
        for _ in range(300):
            t.access(0, write=False).access(512 * i, 4, write=False).compute_ns(200)
    for _ in range(60):
        main.access(0).madvise(0).compute_ns(300)
        for i in range(1, 5):
            main.munmap(512 * i, 512).access(512 * 5 + i)


def test_returning_before_tlbsync_is_caught(micro):
    bad = tp.run(micro(_readers_and_unmapper), "milan-36c", SkipTlbsync, seed=0)
    kinds = {v.kind for v in bad.violations}
    assert kinds & {"stale_tlb", "freed_table_walk"}, bad.violations
    assert all(v.trace for v in bad.violations)
    good = tp.run(micro(_readers_and_unmapper), "milan-36c",
                  SkipTlbsync.__mro__[1], seed=0)
    assert not good.violations


def test_invlpgb_needs_pcid_and_no_pti():
    milan = profiles.get("milan-36c")
    nopcid = milan.with_changes(pcid=False)

    class Invlpgb(tp.Policy):
        broadcast_flush = "invlpgb"
    with pytest.raises(PolicyError, match="44126343d58c"):
        Invlpgb().knobs(nopcid)

    class InvlpgbPti(Invlpgb):
        pti = True
    with pytest.raises(PolicyError, match="94a17f2dc90b"):
        InvlpgbPti().knobs(milan)
    with pytest.raises(PolicyError, match="INVLPGB"):
        Invlpgb().knobs(profiles.get("skylake-2s"))
    # today's kernel turns the broadcast off where it cannot use it
    assert tp.policies.resolve("mainline").knobs(nopcid).broadcast_flush == "none"
    assert tp.policies.resolve("mainline").knobs(milan).broadcast_flush == "invlpgb"
    assert tp.policies.resolve("mainline").knobs(
        profiles.get("skylake-2s")).broadcast_flush == "none"


def test_reclaim_batch_flush_is_one_broadcast_with_invlpgb():
    """arch_tlbbatch_flush(): IPIs to the process's CPUs, or with INVLPGB one
    flush of every PCID on every CPU and no IPI (72a920eacd8a)."""
    work = W.page_reclaim(threads=4, window_us=200)
    ipi = tp.run(work, "milan-36c", "mainline_v6_14", seed=1)
    bcast = tp.run(work, "milan-36c", "mainline", seed=1)
    assert ipi.metrics["ipis"] > 0
    assert bcast.metrics["ipis"] == 0 and bcast.metrics["invlpgb"] > 0
    assert not ipi.violations and not bcast.violations


def test_rar_flushes_without_interrupts():
    """The RAR RFC: a global-ASID mm is flushed by RAR requests the targets'
    microcode handles -- no flush IPI, no interrupt on the targets."""
    spr = profiles.get("skylake-2s").with_changes(rar=True, meltdown=False)
    m, raw = _machine(W.tlb_flush2(threads=8, window_us=200), spr, "rar")
    assert m.mm_gasid[1]
    assert raw["counters"]["rar_requests"] > 0
    assert raw["counters"]["ipis"] == 0
    m_ipi, raw_ipi = _machine(W.tlb_flush2(threads=8, window_us=200), spr, "mainline")
    assert raw_ipi["counters"]["rar_requests"] == 0 and raw_ipi["counters"]["ipis"] > 0


@pytest.mark.parametrize("lru_drain, locks_per_loop", [("on_zap", (1.8, 2.2)),
                                                       ("batch_full", (0.0, 0.2))])
def test_lru_add_drain_removal_batches_the_lock(lru_drain, locks_per_loop):
    """With lru_add_drain() in every zap each loop takes lru_lock twice (the
    drain of one folio, then its free); without it, twice per 31 folios."""
    class Policy(MainlineV614):
        pass
    Policy.lru_drain = lru_drain
    m, raw = _machine(W.tlb_flush2(threads=4, window_us=200), "milan-36c", Policy)
    loops = raw["window_marks"]
    lo, hi = locks_per_loop
    assert lo <= raw["counters"]["lru_locks"] / loops <= hi
    # tlb_flush3's shared file pages are the page cache's own: no LRU adds
    m3, raw3 = _machine(W.tlb_flush3(threads=4, window_us=200), "milan-36c", Policy)
    assert raw3["counters"]["lru_locks"] == 0

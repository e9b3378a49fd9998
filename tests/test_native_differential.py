"""The native engine against the reference (DESIGN §3.7, issue 5): for every
built-in policy, profile and workload and several seeds both engines return
the same raw dict -- counters, samples, marks, violations with their traces
-- so metrics and violations are identical by construction. Plus engine
selection, bad input from Python, and memory that does not grow.

Set TLBPERF_REQUIRE_NATIVE=1 (tox does) to fail instead of skip when the
extension was not built."""

import concurrent.futures
import os
from array import array
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import pytest

import pytest_tlbperf as tp
from pytest_tlbperf import api
from pytest_tlbperf.engine import abi, hw, idle, machine, mm, native, prng, sched, smp, tlb
from pytest_tlbperf.engine.machine import Machine
from native_scenarios import hang_chain, invlpgb_ranges, rar_trim
from pytest_tlbperf.reports.calibration import Tf1Before, Tf1Patch
from test_kernel_paths_v615 import SkipTlbsync, Untrimmed, _readers_and_unmapper, _stale_cpu1

if not native.available():
    if os.environ.get("TLBPERF_REQUIRE_NATIVE"):
        raise RuntimeError("TLBPERF_REQUIRE_NATIVE is set but the native engine is not built")
    pytest.skip("the native engine is not built", allow_module_level=True)

from pytest_tlbperf.engine import _native  # noqa: E402

SEEDS = range(5)


def cell_params(workload, prof):
    """The parameters of a grid cell: smaller than the defaults where a cell
    would be slow (every policy x 5 seeds on both engines); the same code
    paths run. Throughput workloads keep a warm-up and a window, shorter.
    page_reclaim and tlb_flush2 run enough threads for a global ASID (more
    than 3 CPUs on the mm) where the machine has the cores."""
    short = {"warmup_us": 20, "window_us": 100}
    threads = min(6, prof.cores - 1)
    return {
        "context_switch": dict(short, cpus=min(16, prof.cpus)),
        "vm_overcommit": {"threads": min(16, prof.cpus), "iterations": 10},
        "idle_server": {"requests": 10},
        "hackbench": {"loops": 3},
        "tlb_flush1": short, "tlb_flush2": dict(short, threads=threads), "tlb_flush3": short,
        "context_switch1": short,
        "page_reclaim": dict(short, threads=threads, batches=8),
    }.get(workload, {})


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
    expected = {}
    for module in (abi, machine, hw, smp, sched, idle, tlb, mm):
        expected.update({name: getattr(module, name) for name in _native.ABI
                         if hasattr(module, name)})
    expected.update(STREAM_MACHINE=prng.STREAM_MACHINE, STREAM_VCPU=prng.STREAM_VCPU)
    assert {k: _native.ABI[k] for k in expected} == expected
    missing = set(_native.ABI) - set(expected) - {"MAX_CPUS", "MAX_VALUE", "MAX_PAGES",
                                                   "MAX_CEILING"}
    assert not missing, f"constants the test does not compare: {missing}"


def test_fields_are_flattened_in_the_order_the_c_reads_them():
    assert native.PROFILE_FIELDS == _native.PROFILE_FIELDS
    assert native.CSTATE_FIELDS == _native.CSTATE_FIELDS
    assert native.KNOB_FIELDS == _native.KNOB_FIELDS
    assert set(native.KNOB_FIELDS) == set(tp.policy.KNOB_NAMES)
    # every cost of a profile reaches the engine
    assert set(tp.profiles.get("haswell-4c").costs) <= set(native.PROFILE_FIELDS)


@pytest.mark.slow
@pytest.mark.parametrize("workload", sorted(tp.workloads.BUILDERS))
@pytest.mark.parametrize("profile", tp.profiles.names())
def test_every_policy_profile_workload_and_seed(profile, workload):
    prof = tp.profiles.get(profile)
    work = tp.workloads.BUILDERS[workload](**cell_params(workload, prof))
    kinds = set()
    # genoa-2s: 2 seeds; at 384 CPUs the python engine's set-up alone takes
    # 60 ms a run (test_a_384_cpu_machine runs more there)
    for seed in SEEDS if prof.cpus <= 256 else SEEDS[:2]:
        program = work.compile(prof, seed)
        for name in tp.policies.names():
            ref, got = both(prof, tp.policies.get(name)().knobs(prof), program, seed)
            assert_same(ref, got, f"{workload}@{profile} {name} seed={seed}")
            kinds |= {v[0] for v in ref["violations"]}
    if workload == "kernel_build" and profile == "zen1-epyc":
        # the 2017 hang is among the cells, so violations and traces are compared
        assert abi.V_FREED_TABLE_WALK in kinds


class LazyShootdown(tp.Policy):
    """lazy_pcid's lazy mode with shootdown of lazily used mms. Lazy CPUs
    leave mm_cpumask here, so the shootdown scans every CPU (over the mask
    it would miss them: a use-after-free, not the hang this is about). Page
    tables go back as soon as the flush returned, as in lazy_pcid's time:
    freed by RCU (Policy's default since v6.15) they outlive the walk."""
    lazy_cpumask = "clear"
    flush_lazy_cpus = "never"
    lazy_mm_ref = "shootdown"
    lazy_mm_scan = "all_cpus"
    cpumask_update = "eager"
    table_free = "after_flush"


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


def policy(base="mainline", **knobs):
    """A built-in policy with some knobs changed."""
    return type(f"{base}+{'+'.join(knobs)}", (tp.policies.get(base),), knobs)


W = tp.workloads
SHORT = {"warmup_us": 20, "window_us": 100}


def skylake(**changes):
    return tp.profiles.get("skylake-2s").with_changes(name="skylake-variant", **changes)


def milan(**changes):
    return tp.profiles.get("milan-36c").with_changes(name="milan-variant", **changes)


# a part with Remote Action Request and without Meltdown (as Intel's RAR parts are)
RAR_PART = skylake(rar=True, meltdown=False)


def kvm(**changes):
    return tp.profiles.get("kvm-guest-16").with_changes(name="kvm-variant", **changes)


def counter(name, check):
    """A check on the python engine's counters, so a scenario that stops
    reaching its path fails instead of passing for nothing."""
    return lambda raws: check([raw["counters"][name] for raw in raws])


def barriers(b, profile):
    mm = b.mm(64)
    for cpu in range(6):
        t = b.task(mm, cpu)
        for _ in range(4):
            t.access(cpu, 2).membarrier().madvise(cpu, 1).compute_us(3)


def window_from_zero(b, profile):
    """A measured window that opens at time 0 (no warm-up), with a pipe
    ping-pong pinned to two CPUs and a kthread that only computes."""
    b.warmup, b.window = 0, b.cycles(60_000)
    ping, pong = b.channel(), b.channel()
    main = b.task(b.mm(64), 0, affinity=(0, 1))
    top = main.here()
    main.access(0, 2).wake(ping).block(pong).mark().loop(top)
    child = b.task(0, 1, affinity=(0, 1))
    top = child.here()
    child.block(ping).access(4, 2, write=False).wake(pong).mark().loop(top)
    b.kthread(2).compute_us(30)


# (id, profile, policy, workload, check on the python engine's raw dicts)
KNOB_SCENARIOS = [
    # PTI: INVLPG plus INVPCID of the user ASID, or the whole user ASID
    # without INVPCID; the CR3 switches on every kernel entry
    ("pti_on_invpcid", skylake(), policy(pti=True), W.tlb_flush1(threads=4, **SHORT),
     counter("invpcid", lambda n: all(n))),
    ("pti_on_no_invpcid", skylake(invpcid=False), policy(pti=True),
     W.tlb_flush1(threads=4, **SHORT), counter("invpcid", lambda n: not any(n))),
    ("pti_off", skylake(), policy(pti=False), W.tlb_flush1(threads=4, **SHORT),
     counter("invpcid", lambda n: not any(n))),
    ("pti_on_amd_no_invpcid", "zen1-epyc", policy(pti=True),
     W.madvise_dontneed(threads=4, iterations=40), None),
    ("pti_auto_no_pcid", tp.profiles.get("haswell-4c").with_changes(name="h", pcid=False),
     policy(), W.madvise_dontneed(threads=4, iterations=40), None),
    # init_mm's ASID: one of the 6 dynamic ones (boot state: ASID 0,
    # next_asid 1) or its own; and no PCID at all
    ("init_mm_dedicated", "skylake-2s", policy(init_mm_asid="dedicated"),
     W.context_switch(cpus=16, **SHORT), None),
    ("init_mm_dedicated_v4_14", "skylake-2s", policy("v4_14", init_mm_asid="dedicated"),
     W.kernel_build(jobs=12), None),
    ("no_pcid_exit_storm", tp.profiles.get("haswell-4c").with_changes(name="h", pcid=False),
     policy(lazy_mm_ref="none"), W.exit_storm(processes=8), None),
    ("no_pcid_context_switch", tp.profiles.get("zen1-epyc").with_changes(name="z", pcid=False),
     policy(), W.context_switch(cpus=16, **SHORT), None),
    # the APIC: one ICR write per cluster of 16, per target, per 128 (KVM PV)
    ("apic_cluster", "skylake-2s", policy(), W.tlb_flush1(threads=20, **SHORT),
     lambda raws: all(r["counters"]["icr_writes"] < r["counters"]["ipis"] for r in raws)),
    ("apic_physical", skylake(ipi={"apic": "physical"}), policy(),
     W.tlb_flush1(threads=20, **SHORT),
     lambda raws: all(r["counters"]["icr_writes"] == r["counters"]["ipis"] for r in raws)),
    ("apic_kvm_pv", "kvm-guest-16", policy(pv_flush=False), W.munmap_storm(threads=16),
     lambda raws: all(r["counters"]["icr_writes"] < r["counters"]["ipis"] for r in raws)),
    ("apic_cluster_guest", kvm(ipi={"apic": "cluster"}), policy(), W.munmap_storm(threads=16),
     None),
    ("apic_physical_guest", kvm(ipi={"apic": "physical"}), policy("async_flush"),
     W.vm_overcommit(iterations=8), None),
    # tlb_remove_table: RCU grace periods, and the sync broadcast when the
    # batch page cannot be allocated (a machine-stream draw per batch)
    ("table_rcu", "kvm-guest-16", policy(), W.kernel_build(jobs=12), None),
    ("table_sync_half", kvm(memory={"table_batch_fail_percent": 50}), policy(),
     W.munmap_storm(threads=8, iterations=20), None),
    ("table_sync_always", kvm(memory={"table_batch_fail_percent": 100}), policy("hazptr_lazymm"),
     W.exit_storm(processes=8), None),
    ("table_sync_tlb_flush2", kvm(memory={"table_batch_fail_percent": 30}), policy(),
     W.tlb_flush2(threads=2, warmup_us=20, window_us=1500), None),
    ("table_sync_kernel_build", kvm(memory={"table_batch_fail_percent": 40}),
     policy("shootdown_lazymm"), W.kernel_build(jobs=12), None),
    # lazy-mm teardowns: 2021 hand-off, 2024 synchronous calls, shootdown,
    # over mm_cpumask or every CPU
    ("hazard_handoff", "skylake-2s", policy("hazard_lazymm"), W.exit_storm(processes=12), None),
    ("hazard_handoff_all_cpus", "skylake-2s", policy("hazard_lazymm", lazy_mm_scan="all_cpus"),
     W.exit_storm(processes=12), None),
    ("hazptr_sync_ipi", "skylake-2s", policy("hazptr_lazymm"), W.exit_storm(processes=12),
     counter("ipis", lambda n: all(n))),
    ("hazptr_sync_ipi_mm_cpumask", "zen1-epyc",
     policy("hazptr_lazymm", lazy_mm_scan="mm_cpumask"), W.exit_storm(processes=12), None),
    ("shootdown_mask", "skylake-2s", policy("shootdown_lazymm"), W.exit_storm(processes=12),
     None),
    ("shootdown_all_cpus", "skylake-2s", policy("shootdown_lazymm", lazy_mm_scan="all_cpus"),
     W.exit_storm(processes=12), None),
    ("hazptr_context_switch1", "laptop-8c", policy("hazptr_lazymm"),
     W.context_switch1(pairs=8, **SHORT), None),
    # async flush: the initiator goes on at the ack, and waits in csd_lock()
    # for a target that has not unlocked its previous request
    ("async_csd_lock", "skylake-2s", policy("async_flush"),
     W.madvise_dontneed(threads=16, iterations=60), None),
    ("async_tlb_flush1", "zen1-epyc", policy("async_flush"), W.tlb_flush1(threads=16, **SHORT),
     None),
    # read_mm_tlb_gen before and after aa44284960d5
    ("read_gen_always", "skylake-2s", policy(read_mm_tlb_gen="always"),
     W.tlb_flush1(threads=12, **SHORT), None),
    # a store to a line many CPUs share pays one invalidation per further
    # copy; filling each csd costs its setup (zero in the built-in profiles)
    ("rfo_invalidations", skylake(cache_line={"invalidate_cycles": 40}), policy(),
     W.tlb_flush1(threads=20, **SHORT), None),
    ("rfo_invalidations_context_switch1", skylake(cache_line={"invalidate_cycles": 25}),
     policy("hazptr_lazymm"), W.context_switch1(pairs=28, **SHORT), None),
    ("csd_setup", skylake(costs={"csd_setup_cycles": 60}), policy("async_flush"),
     W.madvise_dontneed(threads=8, iterations=40), None),
    ("csd_setup_membarrier", tp.profiles.get("laptop-8c").with_changes(
        name="l", costs={"csd_setup_cycles": 90, "invpcid_ns": 300}), policy(pti=True),
     W.custom("barriers", barriers), None),
    # windows, and pipes with affinity and (non-)polling C-states
    ("window_from_zero", "laptop-8c", policy(), W.custom("window_from_zero", window_from_zero),
     lambda raws: all(r["window_marks"] and r["finished"] for r in raws)),
    ("resched_ipis_hlt", "kvm-guest-16", policy(), W.hackbench(groups=1, loops=3),
     counter("resched_ipis", lambda n: all(n))),
    ("pipes_hlt", "kvm-guest-16", policy("hazard_lazymm"), W.context_switch1(pairs=8, **SHORT),
     None),
    ("pipes_non_polling", skylake(cstates=[
        {"name": "C1", "exit_latency_us": 2, "target_residency_us": 2, "tlb_flushed": False},
        {"name": "C6", "exit_latency_us": 133, "target_residency_us": 600, "tlb_flushed": True,
         "wake_latency_ns": [46000, 92000]}]), policy(), W.hackbench(groups=2, loops=2),
     counter("resched_ipis", lambda n: all(n))),
    ("pipes_zen_c2", "zen1-epyc", policy("shootdown_lazymm"), W.hackbench(groups=1, loops=3),
     None),
    # v6.14's lazy mm_cpumask: a CPU that switched to another process stays
    # in the mask; should_flush_tlb() skips it, the trim flush a second after
    # the mm's creation IPIs it (which clears it), 209954cbc7d0 alone IPIs it
    # at the first flush (test_kernel_paths_v615's program)
    ("lazy_mask", "haswell-4c", policy("mainline_v6_14"),
     W.custom("stale_cpu1", _stale_cpu1(100)),
     lambda raws: all(r["ipis_received"][1] == 0 for r in raws)),
    ("lazy_mask_trim", "haswell-4c", policy("mainline_v6_14"),
     W.custom("stale_cpu1", _stale_cpu1(1_002_000)),
     lambda raws: all(r["ipis_received"][1] == 1 for r in raws)),
    ("lazy_mask_untrimmed", "haswell-4c", Untrimmed, W.custom("stale_cpu1", _stale_cpu1(100)),
     lambda raws: all(r["ipis_received"][1] == 1 for r in raws)),
    # v6.15's global ASIDs: the transition flushes by IPI until every CPU
    # runs the global ASID, then INVLPGB + TLBSYNC
    ("global_asid_transition", "milan-36c", policy(),
     W.tlb_flush2(threads=8, warmup_us=1, window_us=150),
     lambda raws: all(r["counters"]["ipis"] and r["counters"]["invlpgb"] for r in raws)),
    ("invlpgb_ranges", "milan-36c", policy(), W.custom("invlpgb_ranges", invlpgb_ranges),
     lambda raws: all(r["counters"]["invlpgb"] > r["counters"]["ipis"] for r in raws)),
    ("invlpgb_one_page_each", milan(invlpgb_max_pages=1), policy(flush_local="before_remote"),
     W.custom("invlpgb_ranges", invlpgb_ranges), counter("invlpgb", lambda n: all(n))),
    ("invlpgb_read_gen_always", "genoa-2s", policy(read_mm_tlb_gen="always", flush_wait="ack"),
     W.tlb_flush1(threads=12, **SHORT), counter("invlpgb", lambda n: all(n))),
    # a broadcast flush returning before TLBSYNC: the oracle's stale TLB /
    # freed table walks, with traces through TR_BROADCAST
    ("tlbsync_skip", "milan-36c", SkipTlbsync, W.custom("readers", _readers_and_unmapper),
     lambda raws: all(r["violations"] for r in raws)),
    ("tlbsync_before_return", "milan-36c", SkipTlbsync.__mro__[1],
     W.custom("readers", _readers_and_unmapper),
     lambda raws: not any(r["violations"] for r in raws)),
    # the RAR RFC: requests the targets' microcode acts on, idle targets
    # after their C-state exit; its trim of global-ASID mms by IPI
    ("rar", RAR_PART, policy("rar"), W.tlb_flush2(threads=8, **SHORT),
     lambda raws: all(r["counters"]["rar_requests"] and not r["counters"]["ipis"]
                      for r in raws)),
    ("rar_trim", RAR_PART, policy("rar"), W.custom("rar_trim", rar_trim),
     lambda raws: all(r["counters"]["rar_requests"] and r["ipis_received"][1]
                      for r in raws)),
    ("rar_eager_mask", RAR_PART, policy("rar", cpumask_update="eager", flush_wait="ack"),
     W.madvise_dontneed(threads=8, iterations=30), counter("rar_requests", lambda n: all(n))),
    ("rar_untrimmed", RAR_PART, policy("rar", cpumask_update="lazy_untrimmed"),
     W.custom("rar_trim", rar_trim), counter("rar_requests", lambda n: all(n))),
    ("rar_kvm_pv_apic", RAR_PART.with_changes(ipi={"apic": "physical"}), policy("rar"),
     W.munmap_storm(threads=8), None),
    # reclaim's arch_tlbbatch_flush: IPIs, one INVLPGB of every PCID, or RAR
    ("reclaim_ipis", "milan-36c", policy("mainline_v6_14"), W.page_reclaim(threads=6, **SHORT),
     counter("ipis", lambda n: all(n))),
    ("reclaim_invlpgb", "milan-36c", policy(), W.page_reclaim(threads=6, **SHORT),
     lambda raws: all(r["counters"]["invlpgb"] and not r["counters"]["ipis"] for r in raws)),
    ("reclaim_rar", RAR_PART, policy("rar"), W.page_reclaim(threads=6, **SHORT),
     counter("rar_requests", lambda n: all(n))),
    ("reclaim_pv", "kvm-guest-16", policy(), W.page_reclaim(threads=4, **SHORT), None),
    # the LRU lock: lru_add_drain() in every zap, or only full batches
    ("lru_on_zap", "milan-36c", policy("mainline_v6_14", lru_drain="on_zap"),
     W.tlb_flush2(threads=4, **SHORT), counter("lru_locks", lambda n: all(n))),
    ("lru_batch_full", "milan-36c", policy("mainline_v6_14", lru_drain="batch_full"),
     W.tlb_flush2(threads=4, warmup_us=20, window_us=400), counter("lru_locks", lambda n: all(n))),
    ("lru_exit_storm", "genoa-2s", policy("mainline_v6_6"), W.exit_storm(processes=8), None),
    # page tables freed after the flush or by RCU, natively (a37259732a7d),
    # and the sync IPI when the batch page cannot be allocated
    ("table_free_after_flush", "milan-36c", policy(table_free="after_flush"),
     W.munmap_storm(threads=8), None),
    ("table_free_rcu", "milan-36c", policy("mainline_v6_6", table_free="rcu"),
     W.munmap_storm(threads=8), None),
    ("table_free_rcu_sync", milan(memory={"table_batch_fail_percent": 50}), policy(),
     W.kernel_build(jobs=12), None),
    # mmap_lock: madvise and faults of many threads on one line
    ("mmap_lock_contention", "genoa-2s", policy(), W.tlb_flush1(threads=48, **SHORT),
     counter("atomic_contention", lambda n: all(n))),
    # a shootdown storm: each llist_add() lands as the sender's loop reaches
    # its target (EV_QUEUE), the ICR writes go out after the loop (EV_SEND),
    # and a handler drains its queue after the interrupt entry, so requests
    # meet in batches the timing decides -- more interrupts than one per
    # round, fewer than one per request (aa44284960d5's table, both sides)
    ("storm_batches_before", "skylake-2s", Tf1Before, W.tlb_flush1(threads=40, **SHORT),
     lambda raws: all(40 < r["counters"]["ipis"] and r["counters"]["icr_writes"]
                      < r["counters"]["ipis"] for r in raws)),
    ("storm_batches_patch", "skylake-2s", Tf1Patch, W.tlb_flush1(threads=40, **SHORT),
     None),
    ("storm_cluster_apic", "milan-36c", policy("mainline_v6_6"),
     W.tlb_flush2(threads=36, **SHORT), None),
]


@pytest.mark.parametrize("profile, pol, workload, check", [s[1:] for s in KNOB_SCENARIOS],
                         ids=[s[0] for s in KNOB_SCENARIOS])
def test_knob_and_profile_scenarios(profile, pol, workload, check):
    """Paths the grid reaches rarely or not at all: PTI with and without
    INVPCID, init_mm's ASID, the APIC modes, table freeing through RCU and
    the sync broadcast, each lazy-mm teardown, csd_lock waits, windows,
    wake-ups into polling and non-polling C-states, the lazy mm_cpumask's
    trim, global ASIDs and their transition, INVLPGB ranges and a skipped
    TLBSYNC, RAR (no built-in profile has it) and its trim, reclaim three
    ways, the LRU drains and mmap_lock contention."""
    prof = tp.profiles.get(profile)
    raws = []
    for seed in range(3):
        program = workload.compile(prof, seed)
        ref, got = both(prof, pol().knobs(prof), program, seed)
        assert_same(ref, got, f"{workload}@{prof.name} {pol.__name__} seed={seed}")
        raws.append(ref)
    if check is not None:
        assert check(raws), "the scenario no longer reaches the path it is about"


def big_skylake():
    """skylake-2s grown to 384 CPUs, the size of genoa-2s, with 8-core LLC
    domains: Intel's side at that size (PTI, no INVLPGB)."""
    return tp.profiles.get("skylake-2s").with_changes(
        name="skylake-384", topology={"cpus": 384, "sockets": 2, "smt": 2, "cores_per_llc": 8})


BIG_POLICIES = {
    # today's kernel (INVLPGB on genoa), the lazy mask alone, the eager mask,
    # the lazy-mm teardowns, v4.14's lazy PCID switch, async flush
    "genoa-2s": ("mainline", "mainline_v6_14", "mainline_v6_6", "hazptr_lazymm",
                 "shootdown_lazymm", "v4_14"),
    "skylake-384": ("mainline", "hazard_lazymm", "async_flush"),
}


@pytest.mark.slow
@pytest.mark.parametrize("profile, workload", [
    # the calibration runs' shape: will-it-scale on half the cores and more
    ("genoa-2s", W.tlb_flush2(threads=96, warmup_us=30, window_us=40)),
    ("genoa-2s", W.page_reclaim(threads=48, batches=8, warmup_us=30, window_us=60)),
    ("genoa-2s", W.context_switch1(pairs=96, warmup_us=10, window_us=60)),
    ("genoa-2s", W.exit_storm(processes=8, threads=4, cpus=192)),
    ("genoa-2s", W.hackbench(groups=2, loops=2)),
    ("genoa-2s", W.madvise_dontneed(threads=48, iterations=10)),
    ("skylake-384", W.tlb_flush1(threads=96, warmup_us=30, window_us=40)),
    ("skylake-384", W.exit_storm(processes=8, threads=4, cpus=192)),
], ids=lambda v: v if isinstance(v, str) else v.name)
def test_a_384_cpu_machine(profile, workload):
    prof = big_skylake() if profile == "skylake-384" else tp.profiles.get(profile)
    for name in BIG_POLICIES[profile]:
        for seed in range(2):
            program = workload.compile(prof, seed)
            ref, got = both(prof, tp.policies.get(name)().knobs(prof), program, seed)
            assert_same(ref, got, f"{workload}@{prof.name} {name} seed={seed}")


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
    program = tp.workloads.context_switch1(pairs=2, warmup_us=5, window_us=20).compile(prof, 0)
    p, cstates, virt = native.flatten_profile(prof)
    return [p, cstates, virt, native.flatten_knobs(tp.Policy().knobs(prof)),
            *native.flatten_program(program), 0]


# where run() takes each argument
PROFILE, CSTATES, VIRT, KNOBS, MM_PAGES, TASKS, CHANNELS, WARMUP, WINDOW, SEED = range(10)


def replaced(args, index, value):
    args = list(args)
    args[index] = value
    return args


def field(args, name, value):
    """The profile with one field (native.PROFILE_FIELDS) replaced."""
    p = list(args[PROFILE])
    p[native.PROFILE_FIELDS.index(name)] = value
    return replaced(args, PROFILE, tuple(p))


def knob(args, name, value):
    k = list(args[KNOBS])
    k[native.KNOB_FIELDS.index(name)] = value
    return replaced(args, KNOBS, tuple(k))


def with_task(args, task):
    return replaced(args, TASKS, args[TASKS] + (task,))


def packed(*words):
    """ops as native.run() passes them: int64 words in native byte order"""
    return array("q", words).tobytes()


BAD = [
    # (what, change to good_args(), exception)
    ("profile not a tuple", lambda a: replaced(a, PROFILE, list(a[PROFILE])), TypeError),
    ("profile too short", lambda a: replaced(a, PROFILE, a[PROFILE][:-1]), ValueError),
    ("a cost is a str", lambda a: field(a, "invlpg", "5"), TypeError),
    ("a cost is a float", lambda a: field(a, "invlpg", 5.0), TypeError),
    ("no CPUs", lambda a: field(a, "cpus", 0), ValueError),
    ("smt does not divide cpus", lambda a: field(a, "smt", 3), ValueError),
    ("sockets do not divide the cores", lambda a: field(a, "sockets", 3), ValueError),
    ("cores_per_llc does not divide a socket", lambda a: field(a, "cores_per_llc", 5),
     ValueError),
    ("no clock", lambda a: field(a, "clock_mhz", 0), ValueError),
    ("unknown APIC mode", lambda a: field(a, "apic", 3), ValueError),
    ("table batch fails 101%", lambda a: field(a, "table_batch_fail_percent", 101),
     ValueError),
    ("meltdown is 2", lambda a: field(a, "meltdown", 2), ValueError),
    ("a cost beyond 64 bits", lambda a: field(a, "invlpg", 2**70), ValueError),
    ("negative cost", lambda a: field(a, "wakeup", -1), ValueError),
    ("invlpgb_max_pages 0", lambda a: field(a, "invlpgb_max_pages", 0), ValueError),
    ("cstate not a 6-tuple", lambda a: replaced(a, CSTATES, ((1, 0, 1, 5, 9),)), ValueError),
    ("cstate polling is 2", lambda a: replaced(a, CSTATES, ((1, 0, 2, 5, 9, 9),)), ValueError),
    ("cstate wake_max negative", lambda a: replaced(a, CSTATES, ((1, 0, 1, 5, -9, 9),)),
     ValueError),
    ("cstate exit_latency negative", lambda a: replaced(a, CSTATES, ((1, 0, 1, 5, 9, -9),)),
     ValueError),
    ("cstates a list", lambda a: replaced(a, CSTATES, list(a[CSTATES])), TypeError),
    ("virt a dict", lambda a: replaced(a, VIRT, {"preempt_percent": 25}), TypeError),
    ("vCPU never runs", lambda a: replaced(a, VIRT, (25, 0, 1)), ValueError),
    ("preempted 96%", lambda a: replaced(a, VIRT, (96, 1000, 1)), ValueError),
    ("unknown knob value", lambda a: knob(a, "lazy_tlb", 2), ValueError),
    ("unknown pti value", lambda a: knob(a, "pti", 3), ValueError),
    ("broadcast_flush 'auto' unresolved", lambda a: knob(a, "broadcast_flush", 3), ValueError),
    ("unknown cpumask_update", lambda a: knob(a, "cpumask_update", 3), ValueError),
    ("table_free None", lambda a: knob(a, "table_free", None), TypeError),
    ("knob None", lambda a: knob(a, "lazy_mm_release", None), TypeError),
    ("knobs too short", lambda a: replaced(a, KNOBS, a[KNOBS][:-1]), ValueError),
    ("mm_pages a list", lambda a: replaced(a, MM_PAGES, list(a[MM_PAGES])), TypeError),
    ("negative mm size", lambda a: replaced(a, MM_PAGES, (-1,)), ValueError),
    ("negative channels", lambda a: replaced(a, CHANNELS, -1), ValueError),
    ("channels a str", lambda a: replaced(a, CHANNELS, "4"), TypeError),
    ("negative warm-up", lambda a: replaced(a, WARMUP, -1), ValueError),
    ("window beyond the bound", lambda a: replaced(a, WINDOW, 2**50), ValueError),
    ("task not a tuple", lambda a: with_task(a, [0, 0, 0, (), ()]), TypeError),
    ("task without affinity", lambda a: with_task(a, (0, 0, 0, ())), ValueError),
    ("task cpu beyond the machine", lambda a: with_task(a, (0, 16, 0, (), ())), ValueError),
    ("task names a missing mm", lambda a: with_task(a, (1, 0, 0, (), ())), ValueError),
    ("affinity a list", lambda a: with_task(a, (0, 0, 0, (), [0])), TypeError),
    ("affinity beyond the machine", lambda a: with_task(a, (0, 0, 0, (), (0, 16))),
     ValueError),
    ("affinity names a CPU twice", lambda a: with_task(a, (0, 0, 0, (), (3, 3))), ValueError),
    ("ops a list", lambda a: with_task(a, (0, 0, 0, [abi.OP_MARK, 0, 0, 0], ())), TypeError),
    ("ops not in fours", lambda a: with_task(a, (0, 0, 0, (abi.OP_MARK, 0, 0), ())),
     ValueError),
    ("unknown op", lambda a: with_task(a, (0, 0, 0, (99, 0, 0, 0), ())), ValueError),
    ("op argument a str", lambda a: with_task(a, (0, 0, 0, (abi.OP_COMPUTE, "1", 0, 0), ())),
     TypeError),
    ("op argument huge", lambda a: with_task(a, (0, 0, 0, (abi.OP_COMPUTE, 2**63, 0, 0), ())),
     ValueError),
    ("access beyond the mm", lambda a: with_task(a, (0, 0, 0, (abi.OP_ACCESS, 510, 8, 1), ())),
     ValueError),
    ("access before the mm", lambda a: with_task(a, (0, 0, 0, (abi.OP_ACCESS, -1, 2, 1), ())),
     ValueError),
    ("madvise before the mm",
     lambda a: with_task(a, (0, 0, 0, (abi.OP_MADVISE, -4, 8, 0), ())), ValueError),
    ("block on a missing channel",
     lambda a: with_task(a, (0, 0, 0, (abi.OP_BLOCK, 4, 0, 0), ())), ValueError),
    ("wake a negative channel",
     lambda a: with_task(a, (0, 0, 0, (abi.OP_WAKE, -1, 0, 0), ())), ValueError),
    ("loop to a negative op", lambda a: with_task(a, (0, 0, 0, (abi.OP_LOOP, -1, 0, 0), ())),
     ValueError),
    ("reclaim of a missing mm template",
     lambda a: with_task(a, (-1, 0, 0, (abi.OP_RECLAIM, 0, 8, 1), ())), ValueError),
    ("reclaim of a negative mm template",
     lambda a: with_task(a, (-1, 0, 0, (abi.OP_RECLAIM, 0, 8, -1), ())), ValueError),
    ("reclaim before the mm",
     lambda a: with_task(a, (-1, 0, 0, (abi.OP_RECLAIM, -2, 8, 0), ())), ValueError),
    ("packed ops not in fours", lambda a: with_task(a, (0, 0, 0, bytes(24), ())), ValueError),
    ("packed op word beyond the bound",
     lambda a: with_task(a, (0, 0, 0, packed(abi.OP_COMPUTE, 2**50, 0, 0), ())), ValueError),
    ("packed unknown op", lambda a: with_task(a, (0, 0, 0, packed(99, 0, 0, 0), ())),
     ValueError),
    ("packed access beyond the mm",
     lambda a: with_task(a, (0, 0, 0, packed(abi.OP_ACCESS, 510, 8, 1), ())), ValueError),
    ("seed a str", lambda a: replaced(a, SEED, "1"), TypeError),
    ("missing argument", lambda a: a[:-1], TypeError),
]


@pytest.mark.parametrize("change, exc", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_raises(change, exc):
    _native.run(*good_args())           # the unchanged arguments run
    with pytest.raises(exc):
        _native.run(*change(good_args()))


def test_inputs_machine_py_accepts_within_the_bounds():
    # a kernel thread's access is a no-op whatever its pages; madvise and
    # reclaim past the end of an mm are clipped; reclaim of an mm no task
    # has started yet does nothing; a migration off the machine stays put; a
    # loop past a task's last op ends it; a seed beyond 64 bits is masked;
    # a task may be woken at a negative time and outside its affinity
    tasks = [(-1, 1, 0, (abi.OP_ACCESS, -5, 3, 0, abi.OP_MIGRATE, 99, 0, 0), ()),
             (0, 2, 0, (abi.OP_MADVISE, 400, 10_000, 0, abi.OP_MUNMAP, 0, 4096, 1), ()),
             (0, 3, -7, (abi.OP_ACCESS, 0, 8, 1, abi.OP_COMPUTE, 9, 0, 0, abi.OP_LOOP, 40, 0, 0),
              (4, 5)),
             (-1, 4, 0, (abi.OP_RECLAIM, 0, 4, 1, abi.OP_COMPUTE, 5_000, 0, 0,
                         abi.OP_RECLAIM, 0, 10_000, 0), ())]
    prof = tp.profiles.get("kvm-guest-16")
    for seed in (0, 2**64 + 7):
        args = replaced(good_args(), MM_PAGES, good_args()[MM_PAGES] + (64,))
        for task in tasks:
            args = with_task(args, task)
        args = replaced(args, SEED, seed)
        program = tp.workloads.Program("t", list(args[MM_PAGES]), [
            tp.workloads.TaskSpec(*t) for t in args[TASKS]], *args[CHANNELS:SEED])
        ref = Machine(prof, tp.Policy().knobs(prof), program, seed).run()
        assert_same(ref, _native.run(*args), "edge inputs")


def test_packed_ops_are_the_ops():
    """native.run() packs each task's ops once per program; the result is
    the one the tuples of ints give, and a word beyond int64 still gets the
    native engine's ValueError rather than array's OverflowError."""
    prof = tp.profiles.get("laptop-8c")
    knobs = tp.policies.get("hazptr_lazymm")().knobs(prof)
    program = tp.workloads.hackbench(loops=2).compile(prof, 3)
    args = (*native.flatten_profile(prof), native.flatten_knobs(knobs),
            *native.flatten_program(program), 3)
    assert isinstance(native._packed_program(program)[1][0][3], bytes)
    assert native.run(prof, knobs, program, 3) == _native.run(*args)
    huge = tp.workloads.Program("huge", [64], [
        tp.workloads.TaskSpec(0, 0, 0, (abi.OP_COMPUTE, 2**70, 0, 0))])
    with pytest.raises(ValueError, match="task 0 op 0 word 1"):
        native.run(prof, knobs, huge, 0)


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
        big = dict(zip(native.PROFILE_FIELDS, p), cpus=1 << 16, smt=1, sockets=1,
                   cores_per_llc=1 << 16)
        big = tuple(big[name] for name in native.PROFILE_FIELDS)
        setup = (big, cstates, virt, knobs, (), (), 0, 0, 0)
        # loop: eight 2**31-page mms, each 256 MB of page-block pointers at exec
        tasks = tuple((i, 0, 0, (1, 0, 1, 1), ()) for i in range(8))
        loop = (p, cstates, virt, knobs, (2**31 - 1,) * 8, tasks, 0, 0, 0)
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

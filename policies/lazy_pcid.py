"""lazy_pcid: v4.14-rc1's PCID rework, the code behind the 2017 hang.

Mirrors Andy Lutomirski's "x86/mm: Rework lazy TLB mode and TLB freshness
tracking" (94b1b03b519b, v4.14-rc1) and the PCID series around it. A CPU
entering lazy mode keeps CR3 on the old mm but leaves mm_cpumask, so it gets
no flush IPIs at all; when it returns it compares ctxs[asid].tlb_gen with the
mm's and flushes if it fell behind. That is sound for TLB entries and wrong
for the paging-structure caches: the lazy CPU still points at page tables that
a flush it never saw has freed, and a speculative walk through them hung AMD
machines (seed 000: "Current mainline git (24e700e291d52bd2) hangs when
building e.g. perf"; seed 001: "nothing stops the problematic speculative
load").

Relative to the Policy defaults: lazy_cpumask="clear", flush_lazy_cpus="never",
flush_local="before_remote" (concurrent flushing came in v5.13),
pv_flush=False (KVM's PV flush came with 858a43aae236, Dec 2017),
read_mm_tlb_gen="always" (before aa44284960d5, v6.0), pti=False (PTI came in
v4.15). The same series stopped calling leave_mm() from idle (43858b4f25cf,
"x86/mm: Stop calling leave_mm() in idle code"): idle_leave_mm="never".

Kernel functions: enter_lazy_tlb, switch_mm_irqs_off (the lazy re-entry path),
flush_tlb_mm_range, flush_tlb_func_common.
"""

from pytest_tlbperf.policy import Policy


class LazyPcid(Policy):
    name = "lazy_pcid"
    # Every knob is spelled out: Policy's defaults follow today's mainline, and a
    # historic kernel must not change when mainline does.
    lazy_tlb = "stay"
    lazy_cpumask = "clear"
    flush_lazy_cpus = "never"
    flush_local = "before_remote"
    flush_wait = "done"
    lazy_mm_ref = "refcount"
    pv_flush = False
    idle_leave_mm = "never"
    flush_ceiling = 33
    switch_mm_barrier = "implicit"
    read_mm_tlb_gen = "always"
    init_mm_asid = "dynamic"
    pti = False
    lazy_mm_scan = "mm_cpumask"
    lazy_mm_release = "handoff"
    cpumask_update = "eager"
    broadcast_flush = "none"
    tlbsync = "before_return"
    lru_drain = "on_zap"
    table_free = "after_flush"
    # the historic bug: reported as expected (like xfail) and must keep
    # appearing, or the oracle has lost its teeth (DESIGN §5)
    known_violations = frozenset({"freed_table_walk"})

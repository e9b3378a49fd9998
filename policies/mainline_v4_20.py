"""mainline_v4_20: lazy TLB as Rik van Riel's 2018 series left it (v4.20).

Mirrors the re-spin merged for v4.20: "x86/mm/tlb: Make lazy TLB mode lazier"
(145f573b89a6), "x86/mm/tlb: Add freed_tables argument to flush_tlb_mm_range"
(016c4d92cd16) and "smp,cpumask: introduce on_each_cpu_cond_mask"
(7d49b28a80b8). Lazy CPUs stay in mm_cpumask; flush_tlb_mm_range() skips them
(on_each_cpu_cond_mask with tlb_is_not_lazy) unless page tables are freed, in
which case every CPU in the mask gets the IPI and a lazy one switches to
init_mm ("if page tables are getting freed, we need to send the IPI
everywhere"). The July 2018 versions (95b0e6357d3e "Always use lazy TLB mode",
64482aafe55f "Only send page table free TLB flush to lazy TLB CPUs") were
reverted on Aug 22 2018, before v4.19-rc1, and are in no release. The local
flush still runs before the remote IPIs are sent; this is the "before" column
of seed 002. KVM's PV flush (858a43aae236) and PTI (v4.15) are in; idle states
that flush the TLB leave the mm first (intel_idle's leave_mm()).

Relative to lazy_pcid: lazy_cpumask="keep", flush_lazy_cpus="freed_tables",
pv_flush=True, idle_leave_mm="tlb_flushed_states", pti="auto".
Kernel functions: flush_tlb_mm_range, native_flush_tlb_others /
kvm_flush_tlb_others, flush_tlb_func_common, switch_mm_irqs_off.
"""

from pytest_tlbperf.policy import Policy


class MainlineV420(Policy):
    name = "mainline_v4_20"
    # Every knob is spelled out: Policy's defaults follow today's mainline, and a
    # historic kernel must not change when mainline does.
    lazy_tlb = "stay"
    lazy_cpumask = "keep"
    flush_lazy_cpus = "freed_tables"
    flush_local = "before_remote"
    flush_wait = "done"
    lazy_mm_ref = "refcount"
    pv_flush = True
    idle_leave_mm = "tlb_flushed_states"
    flush_ceiling = 33
    switch_mm_barrier = "implicit"
    read_mm_tlb_gen = "always"
    init_mm_asid = "dynamic"
    pti = "auto"
    lazy_mm_scan = "mm_cpumask"
    lazy_mm_release = "handoff"
    cpumask_update = "eager"
    broadcast_flush = "none"
    tlbsync = "before_return"
    lru_drain = "on_zap"
    table_free = "after_flush"

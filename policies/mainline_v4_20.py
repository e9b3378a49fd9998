"""mainline_v4_20: lazy TLB as Rik van Riel's 2018 series left it.

Mirrors "x86/mm/tlb: Always use lazy TLB mode" (95b0e6357d3e) and "x86/mm/tlb:
Only send page table free TLB flush to lazy TLB CPUs" (64482aafe55f), v4.19/
v4.20: lazy CPUs stay in mm_cpumask; flush_tlb_mm_range() skips them
(on_each_cpu_cond_mask with tlb_is_not_lazy) unless page tables are freed, in
which case every CPU in the mask gets the IPI and a lazy one switches to
init_mm. The local flush still runs before the remote IPIs are sent; this is
the "before" column of seed 002. KVM's PV flush (858a43aae236, v4.16) is in.

Relative to lazy_pcid: lazy_cpumask="keep", flush_lazy_cpus="freed_tables",
pv_flush=True.
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
    idle_leave_mm = "never"
    flush_ceiling = 33
    switch_mm_barrier = "implicit"
    read_mm_tlb_gen = "always"

"""mainline: today's x86 (arch/x86/mm/tlb.c), the baseline of every comparison.

- Lazy TLB mode stays (enter_lazy_tlb keeps CR3 and sets is_lazy); a lazy
  CPU stays in mm_cpumask and gets flush IPIs only when page tables are
  freed, otherwise it catches up through tlb_gen when it switches back
  (Rik van Riel, "x86/mm/tlb: Only send page table free TLB flush to lazy TLB
  CPUs", v4.20).
- The local flush runs while the remote IPIs are in flight (Nadav Amit,
  "x86/mm/tlb: Flush remote and local TLBs concurrently", seed 002's
  "concurrent", merged for v5.10).
- Lazy mms are kept alive by mmgrab()/mmdrop() refcounting.
- In KVM guests, the paravirtual flush skips preempted vCPUs (858a43aae236,
  v4.16).

Kernel functions: switch_mm_irqs_off, enter_lazy_tlb, flush_tlb_mm_range,
native_flush_tlb_multi / kvm_flush_tlb_multi, flush_tlb_func.
"""

from pytest_tlbperf.policy import Policy


class Mainline(Policy):
    name = "mainline"
    # Policy's defaults are mainline; they are restated here so the module
    # reads as the patch set it mirrors.
    lazy_tlb = "stay"
    lazy_cpumask = "keep"
    flush_lazy_cpus = "freed_tables"
    flush_local = "concurrent"
    flush_wait = "done"
    lazy_mm_ref = "refcount"
    pv_flush = True
    idle_leave_mm = "never"
    flush_ceiling = 33
    switch_mm_barrier = "implicit"

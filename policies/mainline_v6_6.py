"""mainline_v6_6: the x86 TLB code of v6.6 (the model's `mainline` until v6.14's changes).

v4.20's lazy handling (mainline_v4_20: lazy CPUs stay in mm_cpumask and get
IPIs only when page tables are freed) plus concurrent local/remote flushing
(concurrent_flush, v5.13), mmgrab()/mmdrop() refcounting of lazy mms, KVM's
PV flush for preempted vCPUs (858a43aae236), PTI on Meltdown-affected parts,
leave_mm() before idle states that flush the TLB (cpuidle_enter_state(), made
generic by "cpuidle: Make CPUIDLE_FLAG_TLB_FLUSHED generic", 2020), and
flush_tlb_func() reading the contended mm->context.tlb_gen only when this CPU
is behind the flush it was sent (aa44284960d5, "x86/mm/tlb: Avoid reading
mm_tlb_gen when possible", v6.0). mm_cpumask is updated eagerly at every
switch; native kernels free page tables as soon as the flush returned
(pv_ops.mmu.tlb_remove_table is tlb_remove_page outside KVM guests); every
madvise/munmap zap drains the per-CPU LRU batch first.

This is pristine v6.6: the 6.6.y stable series later took 6db2526c1d69 and
fea4e317f9e7 (should_flush_tlb() and the once-a-second trim) without the lazy
mask; that kernel is not a policy here.

Relative to concurrent_flush: read_mm_tlb_gen="when_needed".
Kernel functions: switch_mm_irqs_off, enter_lazy_tlb, flush_tlb_mm_range,
native_flush_tlb_multi / kvm_flush_tlb_multi, flush_tlb_func.
"""

from .concurrent_flush import ConcurrentFlush


class MainlineV66(ConcurrentFlush):
    name = "mainline_v6_6"
    read_mm_tlb_gen = "when_needed"

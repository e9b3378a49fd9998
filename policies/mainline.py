"""mainline: today's x86 (arch/x86/mm/tlb.c), the baseline of every comparison.

v4.20's lazy handling (mainline_v4_20: lazy CPUs stay in mm_cpumask and get
IPIs only when page tables are freed) plus concurrent local/remote flushing
(concurrent_flush, v5.13), mmgrab()/mmdrop() refcounting of lazy mms, KVM's
PV flush for preempted vCPUs (858a43aae236), PTI on Meltdown-affected parts,
leave_mm() before idle states that flush the TLB (cpuidle_enter_state(), made
generic by "cpuidle: Make CPUIDLE_FLAG_TLB_FLUSHED generic", 2020), and
flush_tlb_func() reading the contended mm->context.tlb_gen only when this CPU
is behind the flush it was sent (aa44284960d5, "x86/mm/tlb: Avoid reading
mm_tlb_gen when possible", v6.0). These are also the defaults of `Policy`, so
a reviewer's subclass changes only what the patch changes.

Relative to concurrent_flush: read_mm_tlb_gen="when_needed".
Kernel functions: switch_mm_irqs_off, enter_lazy_tlb, flush_tlb_mm_range,
native_flush_tlb_multi / kvm_flush_tlb_multi, flush_tlb_func.
"""

from .concurrent_flush import ConcurrentFlush


class Mainline(ConcurrentFlush):
    name = "mainline"
    read_mm_tlb_gen = "when_needed"

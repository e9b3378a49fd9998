"""shootdown_lazymm: Piggin's MMU_LAZY_TLB_SHOOTDOWN on x86.

Mirrors Nicholas Piggin, "lazy tlb: shoot lazies, non-refcounting lazy tlb mm
reference handling scheme" (merged for v6.2, enabled on powerpc): kernel
threads borrow mms without touching mm_count, and __mmdrop() IPIs the CPUs
that may still use the mm lazily so they switch to init_mm before it is
freed. x86 clears a CPU from mm_cpumask when it leaves an mm, so on x86 the
CPUs that may borrow it are all of them: every teardown IPIs every CPU (the
cost the exit_storm workload shows). mmdrop_lazy_tlb() keeps the full barrier
membarrier relies on ("must provide a full memory barrier"), modeled as the
explicit barrier.

Relative to mainline: lazy_mm_ref="shootdown", switch_mm_barrier="explicit".
Kernel functions: __mmdrop, cleanup_lazy_tlbs, do_shoot_lazy_tlb, context_switch.
"""

from .mainline import Mainline


class ShootdownLazyMm(Mainline):
    name = "shootdown_lazymm"
    lazy_mm_ref = "shootdown"
    switch_mm_barrier = "explicit"

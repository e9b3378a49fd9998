"""shootdown_lazymm: Piggin's MMU_LAZY_TLB_SHOOTDOWN on x86.

Mirrors Nicholas Piggin, "lazy tlb: shoot lazies, non-refcounting lazy tlb mm
reference handling scheme" (2655421ae69f, v6.4; only powerpc selects it):
kernel threads borrow mms without touching mm_count, and __mmdrop()'s
cleanup_lazy_tlbs() makes one on_each_cpu_mask(mm_cpumask(mm),
do_shoot_lazy_tlb, mm, 1) -- one IPI per mask, wait -- so the CPUs that may
still use the mm lazily switch to init_mm before it is freed.
mmdrop_lazy_tlb() keeps the full barrier membarrier relies on ("must provide
a full memory barrier"), modeled as the explicit barrier.

Known violation, kept because the oracle finds it: the scheme requires that
"at the time of the final mmdrop of the mm, mm_cpumask(mm) contains at least
all possible CPUs in which the mm is lazy" (arch/Kconfig). x86 does not meet
it -- a lazy CPU that a freed-tables flush or leave_mm() moved to init_mm
leaves the mask but keeps the mm as its active_mm -- which is why x86 never
selected the option.

Relative to mainline: lazy_mm_ref="shootdown", lazy_mm_scan="mm_cpumask",
switch_mm_barrier="explicit".
Kernel functions: __mmdrop, cleanup_lazy_tlbs, do_shoot_lazy_tlb, context_switch.
"""

from .mainline import Mainline


class ShootdownLazyMm(Mainline):
    name = "shootdown_lazymm"
    lazy_mm_ref = "shootdown"
    lazy_mm_scan = "mm_cpumask"
    switch_mm_barrier = "explicit"
    known_violations = frozenset({"lazy_mm_use_after_free"})

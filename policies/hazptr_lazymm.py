"""hazptr_lazymm: Desnoyers' 2024 RFC, hazard pointers for the lazy active mm.

Mirrors Mathieu Desnoyers, "[RFC PATCH v2 4/4] sched+mm: Use hazard pointers to
track lazy active mm existence" (Oct 4 2024, on v6.11.1): mmgrab_lazy_tlb()
takes a per-CPU hazard-pointer slot (smp_mb(); hp_allocate()) and
mmdrop_lazy_tlb() clears it (smp_mb(); WRITE_ONCE()), replacing mmgrab()/
mmdrop() on the shared mm_count. __mmdrop()'s cleanup_lazy_tlbs() runs
hp_scan() over every possible CPU's slot (for_each_possible_cpu), and for each
CPU whose slot still holds the mm makes two synchronous calls,
smp_call_function_single(cpu, do_shoot_lazy_tlb, ...) and then
do_check_lazy_tlb, one CPU at a time. The RFC's benchmark is will-it-scale
context_switch1_threads on 2 x EPYC 9654 (the genoa-2s profile).

Relative to mainline: lazy_mm_ref="hazard_pointer", lazy_mm_scan="all_cpus",
lazy_mm_release="sync_ipi", switch_mm_barrier="explicit" (the smp_mb() of the
lazy grab and drop, where mmgrab/mmdrop's atomics used to imply one).
Kernel functions: context_switch, mmgrab_lazy_tlb, mmdrop_lazy_tlb,
cleanup_lazy_tlbs, hp_scan, do_shoot_lazy_tlb.
"""

from .mainline import Mainline


class HazptrLazyMm(Mainline):
    name = "hazptr_lazymm"
    lazy_mm_ref = "hazard_pointer"
    lazy_mm_scan = "all_cpus"
    lazy_mm_release = "sync_ipi"
    switch_mm_barrier = "explicit"

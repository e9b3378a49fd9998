"""hazard_lazymm: Lutomirski's hazard-pointer lazy mm (seed 003).

Mirrors "sched: Use lightweight hazard pointers to grab lazy mms", in the
sched/lazymm branch of June 2021 (ecc3992c36cb, "Not even boot tested!"): a
kernel thread borrowing an mm publishes it in a per-CPU pointer instead of
mmgrab()/mmdrop() on the shared mm_count, and the last mmdrop scans the
CPUs that may still borrow it and makes those that do switch away first.
The same series' PATCH 4/8, "membarrier: Make the post-switch-mm barrier
explicit", adds the smp_mb() that mmdrop()'s atomic used to imply; the
membarrier checker shows why it is needed.

Relative to mainline: lazy_mm_ref="hazard_pointer", switch_mm_barrier="explicit".
Kernel functions: context_switch, finish_task_switch, __mmdrop, enter_lazy_tlb.
"""

from .mainline import Mainline


class HazardLazyMm(Mainline):
    name = "hazard_lazymm"
    lazy_mm_ref = "hazard_pointer"
    switch_mm_barrier = "explicit"

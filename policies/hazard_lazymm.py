"""hazard_lazymm: Lutomirski's hazard-pointer lazy mm, as posted in June 2021 (seed 003).

Mirrors "sched: Use lightweight hazard pointers to grab lazy mms" (sched/lazymm
branch, ecc3992c36cb, "Not even boot tested!"; reviewed from Peter Zijlstra's
repost "[RFC][PATCH] sched: Use lightweight hazard pointers to grab lazy mms",
Jun 17 2021): a kernel thread borrowing an mm publishes it in its rq->lazy_mm
with a plain store instead of mmgrab()/mmdrop() on the shared mm_count. In
__mmput(), mm_unlazy_mm_count() scans for_each_possible_lazymm_cpu() -- on x86
mm_cpumask(mm) -- and hands every CPU whose hazard still holds the mm an
mm_count reference through xchg(&rq->drop_mm, mm), which that CPU drops at its
next context switch: no IPI, no wait. The series' PATCH 4/8, "membarrier: Make
the post-switch-mm barrier explicit", adds the smp_mb() that mmdrop()'s atomic
used to imply.

Known violation, kept because the oracle finds it: on x86 a lazy CPU that a
freed-tables flush (or leave_mm() before a deep idle state) moved to init_mm
leaves mm_cpumask while its rq->lazy_mm still points at the mm, so the scan
misses it and the mm is freed under it. Lutomirski's January 2022 rework says
as much ("x86/mm: Optimize for_each_possible_lazymm_cpu()": "Now that x86 does
not switch away from a lazy mm behind the scheduler's back and thus clear a
CPU from mm_cpumask() that the scheduler thinks is lazy, x86 can use
mm_cpumask()").

Relative to mainline: lazy_mm_ref="hazard_pointer", lazy_mm_scan="mm_cpumask",
lazy_mm_release="handoff", switch_mm_barrier="explicit".
Kernel functions: context_switch, finish_task_switch (mmdrop_lazy), __mmput
(mm_unlazy_mm_count), enter_lazy_tlb.
"""

from .mainline import Mainline


class HazardLazyMm(Mainline):
    name = "hazard_lazymm"
    lazy_mm_ref = "hazard_pointer"
    lazy_mm_scan = "mm_cpumask"
    lazy_mm_release = "handoff"
    switch_mm_barrier = "explicit"
    known_violations = frozenset({"lazy_mm_use_after_free"})

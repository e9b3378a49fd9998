"""lazy_mm_cpumask: van Riel's "x86/mm/tlb: Update mm_cpumask lazily" alone (209954cbc7d0).

Mirrors 209954cbc7d0 as it went into tip x86/mm in November 2024, before its
follow-ups: switch_mm_irqs_off() sets the CPU's bit in the next mm's
mm_cpumask only if it is not set, and no longer clears it in the previous
mm's ("setting the CPU bit at context switch time (if not already set), and
clearing the CPU bit at the first TLB flush sent to a CPU where the process
isn't running"). flush_tlb_mm_range() still filters with tlb_is_not_lazy(), so
every flush IPIs the CPUs left in the mask; the kernel test robot measured
"a 13.2% regression of will-it-scale.per_thread_ops" (tlb_flush2, 104-thread
Skylake), which 6db2526c1d69 ("Only trim the mm_cpumask once a second") fixed
-- see mainline_v6_14. The commit quotes hackbench --groups 20 --loops 10000
on a 36-core Milan, 4.5 s before and 4.2 s after.

Relative to mainline_v6_6: cpumask_update="lazy_untrimmed".
Kernel functions: switch_mm_irqs_off, flush_tlb_func (the stale-mm branch).
"""

from .mainline_v6_6 import MainlineV66


class LazyMmCpumask(MainlineV66):
    name = "lazy_mm_cpumask"
    cpumask_update = "lazy_untrimmed"

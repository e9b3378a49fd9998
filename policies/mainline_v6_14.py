"""mainline_v6_14: v6.14's lazy mm_cpumask and van Riel's lru_add_drain removal.

v6.6 (mainline_v6_6) plus Rik van Riel's lazy mm_cpumask series in tip
x86/mm for v6.14: "x86/mm/tlb: Update mm_cpumask lazily" (209954cbc7d0),
"x86/mm/tlb: Only trim the mm_cpumask once a second" (6db2526c1d69:
should_flush_tlb() skips CPUs that run another mm, except in one flush a
second per mm, which clears their bits) and "x86/mm/tlb: Also remove local
CPU from mm_cpumask if stale" (953753db887f). fea4e317f9e7 (v6.15-rc6, also in
6.14.7: flush in the LOADED_MM_SWITCHING window) changes nothing here, since
the model's switch_mm_irqs_off() is atomic to other CPUs.

Also van Riel's "mm: remove unnecessary calls to lru_add_drain" (Dec 2024,
through the mm tree in the v6.14 merge window; the release it landed in is
not checked here): a madvise/munmap zap no longer drains the per-CPU LRU add
batch, so lru_lock is taken once per 31 folios.

Relative to mainline_v6_6: cpumask_update="lazy", lru_drain="batch_full".
Kernel functions: switch_mm_irqs_off, flush_tlb_mm_range (should_trim_cpumask),
native_flush_tlb_multi (should_flush_tlb), flush_tlb_func, zap_page_range_single.
"""

from .mainline_v6_6 import MainlineV66


class MainlineV614(MainlineV66):
    name = "mainline_v6_14"
    cpumask_update = "lazy"
    lru_drain = "batch_full"

"""revert_to_ipi: seed 000's option 1, "continue sending IPIs to lazy CPUs".

Lutomirski, Sep 8 2017: "Revert this behavior change: continue sending IPIs
to lazy CPUs. The problem is that this will totally wipe out the performance
gain". What v4.14 shipped (b956575bed91, "x86/mm: Flush more aggressively in
lazy TLB mode") is this shape only on parts without PCID (see v4_14): lazy
CPUs stay in mm_cpumask, every flush IPIs them, and flush_tlb_func_common() on
a lazy CPU switches it to init_mm ("we need to at least flush our
paging-structure cache"). This policy applies it everywhere.

Relative to lazy_pcid: lazy_cpumask="keep", flush_lazy_cpus="always".
Kernel functions: flush_tlb_mm_range, flush_tlb_func_common, switch_mm_irqs_off.
"""

from .lazy_pcid import LazyPcid


class RevertToIpi(LazyPcid):
    name = "revert_to_ipi"
    lazy_cpumask = "keep"
    flush_lazy_cpus = "always"
    known_violations = frozenset()

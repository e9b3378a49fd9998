"""drop_lazy: seed 000's option 2, "get rid of lazy mode", as seed 001 details it.

Lutomirski, Sep 10 2017: "If PCID is on, then, in enter_lazy_tlb(), we switch
to init_mm with the no-flush flag set. (And we give init_mm its own dedicated
ASID ...) We clear the bit in mm_cpumask. ... No extra IPIs." The price is a
CR3 write on every switch to and from a kernel thread, and the mm_cpumask
bouncing of a real switch each time. The dedicated ASID is the proposal's: what
shipped (v4_14) let init_mm compete for the 6 dynamic ASIDs.

Relative to lazy_pcid: lazy_tlb="switch_to_init_mm", init_mm_asid="dedicated".
Kernel functions: enter_lazy_tlb, switch_mm_irqs_off, choose_new_asid.
"""

from .lazy_pcid import LazyPcid


class DropLazy(LazyPcid):
    name = "drop_lazy"
    lazy_tlb = "switch_to_init_mm"
    init_mm_asid = "dedicated"
    known_violations = frozenset()

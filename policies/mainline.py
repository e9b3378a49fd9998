"""mainline: today's x86 (v6.15 and later), the baseline of every comparison.

v6.14 (mainline_v6_14: lazy mm_cpumask, once-a-second trim, no lru_add_drain
in zaps) plus v6.15's AMD broadcast TLB invalidation, van Riel's series merged
with "Merge tag 'x86-core-2025-03-22'" (e34c38057a13): on parts with INVLPGB,
an mm that runs on more than 3 CPUs at once gets a global ASID
(d504d1247e36, be88a1dd6112, 4afeb0ed1753) and its flushes go out as
INVLPGB + TLBSYNC instead of IPIs; reclaim flushes its batches with one
INVLPGB of every PCID (72a920eacd8a, 0b7eb55cb706). The kernel keeps
INVLPGB off without PCID (44126343d58c, "x86/mm: Disable broadcast TLB flush
when PCID is disabled", May 2026) and with PTI on (94a17f2dc90b, v6.16):
broadcast_flush="auto" resolves, per profile, to the broadcast flush the
kernel would use there (`policy.broadcast_for`). Page tables are freed after an RCU grace period on
every x86 kernel (a37259732a7d, "x86/mm: Make MMU_GATHER_RCU_TABLE_FREE
unconditional", the prerequisite for INVLPGB). These are also the defaults
of `Policy`, so a reviewer's subclass changes only what the patch changes.

Relative to mainline_v6_14: table_free="rcu", broadcast_flush="auto".
Kernel functions: flush_tlb_mm_range, broadcast_tlb_flush,
finish_asid_transition, consider_global_asid, switch_mm_irqs_off,
choose_new_asid, flush_tlb_func, arch_tlbbatch_flush.
"""

from .mainline_v6_14 import MainlineV614


class Mainline(MainlineV614):
    name = "mainline"
    table_free = "rcu"
    broadcast_flush = "auto"

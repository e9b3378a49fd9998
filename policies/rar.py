"""rar: Intel Remote Action Request TLB flushing, van Riel's RFC (v3/v4, June 2025, unmerged).

Mirrors "[RFC PATCH v3 0/7] Intel RAR TLB invalidation" (Rik van Riel, 5 Jun
2025, <20250605163544.3852565-1-riel@surriel.com>; v4 followed on 19 Jun),
built on Yu-cheng Yu's 2019 series: on parts with RAR (Sapphire Rapids and
newer; IA32_CORE_CAPABILITIES bit 1) global ASIDs are handed out as for
INVLPGB, and a global-ASID mm is flushed by writing one payload, an action
entry per CPU in mm_cpumask -- lazy and stale ones included, since "RAR
flushes do not update the tlb_gen" -- and one RAR IPI, which the targets'
microcode handles with no interrupt ("because the action handler is
microcode rather than software"), even with IRQs off; the initiator spins
until every target reports. A CPU that switches to a global-ASID mm flushes
only if it had to set its mm_cpumask bit ("If the CPU fell out of the
cpumask, it can be out of date with RAR"), and the once-a-second trim still
goes out by IPI. The series says of itself "unclear whether the TLB is
actually flushed correctly" (v4); no RAR latency has been published, so the
profile's rar_ns is an assumption. On parts without RAR this is mainline.

Relative to mainline: configure() picks broadcast_flush="rar" where the
profile has rar = true (and PCID).
Kernel functions: flush_tlb_mm_range, broadcast_tlb_flush (rar_tlb_flush),
choose_new_asid (new_cpu), arch_tlbbatch_flush (rar_full_flush).
"""

from .mainline import Mainline


class Rar(Mainline):
    name = "rar"

    def configure(self, profile):
        if profile.rar and profile.pcid:
            return {"broadcast_flush": "rar"}
        return None

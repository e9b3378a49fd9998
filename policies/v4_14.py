"""v4_14: what shipped from b956575bed91 through v4.19 -- lazy mode off on PCID parts.

After the 2017 hang (seed 000), Lutomirski's "x86/mm: Flush more aggressively
in lazy TLB mode" (b956575bed91, v4.14) put lazy CPUs back in mm_cpumask and
made enter_lazy_tlb() ask tlb_defer_switch_to_init_mm(), which returned
`!static_cpu_has(X86_FEATURE_PCID)`: on PCID parts a CPU entering lazy mode
switches to init_mm at once (seed 000's option 2; init_mm takes one of the 6
dynamic ASIDs like any mm -- seed 001's dedicated ASID did not ship), and only
on parts without PCID does it stay lazily in the mask, getting every flush IPI
and switching to init_mm in the handler (seed 000's option 1). Rik van Riel's
2018 series ("x86/mm/tlb: Always use lazy TLB mode", 95b0e6357d3e) removed
this for v4.19 but was reverted before v4.19-rc1 (Peter Zijlstra, "x86/mm/tlb:
Revert the recent lazy TLB patches", Aug 22 2018); the re-spin shipped in
v4.20 (mainline_v4_20). The code is read from that revert, which restored it.

Relative to lazy_pcid: configure() picks lazy_tlb="switch_to_init_mm" on PCID
profiles; lazy_cpumask="keep", flush_lazy_cpus="always" everywhere (without
PCID a lazy CPU gets every IPI); idle_leave_mm="tlb_flushed_states" (intel_idle's
leave_mm() for CPUIDLE_FLAG_TLB_FLUSHED states, removed in v4.14-rc1 by
43858b4f25cf and present again in the v5.x driver; when it came back is not
checked here). No PTI (v4.15) and no KVM PV flush (858a43aae236, Dec 2017).

Kernel functions: enter_lazy_tlb, tlb_defer_switch_to_init_mm, switch_mm_irqs_off,
choose_new_asid, native_flush_tlb_others, flush_tlb_func_common.
"""

from .lazy_pcid import LazyPcid


class V414(LazyPcid):
    name = "v4_14"
    lazy_cpumask = "keep"
    flush_lazy_cpus = "always"
    idle_leave_mm = "tlb_flushed_states"
    known_violations = frozenset()

    def configure(self, profile):
        # tlb_defer_switch_to_init_mm(): return !static_cpu_has(X86_FEATURE_PCID)
        return {"lazy_tlb": "switch_to_init_mm"} if profile.pcid else None

"""Turn the engines' integer trace records into the lines a reviewer reads
under a violation. Both engines produce the same records; this is the only
place they become text."""

from . import abi

_CALLS = {abi.CALL_FLUSH: "flush_tlb_func", abi.CALL_UNLAZY: "lazy mm shootdown",
          abi.CALL_MEMBARRIER: "ipi_mb"}


def _mm(mm):
    return "init_mm" if mm == 0 else f"mm{mm}"


def describe(code, a, b, cstates):
    if code == abi.TR_SWITCH:
        return f"context_switch to task {a} ({_mm(b)})" if a >= 0 else "context_switch to idle"
    if code == abi.TR_SWITCH_MM:
        return f"switch_mm_irqs_off {_mm(a)} -> {_mm(b)}"
    if code == abi.TR_LAZY:
        return f"enter_lazy_tlb: {_mm(a)} stays loaded"
    if code == abi.TR_CPUMASK_CLEAR:
        return f"cpumask_clear_cpu from mm_cpumask({_mm(a)})"
    if code == abi.TR_FLUSH:
        if b < 0:
            return f"flush_tlb_mm_range({_mm(a)}) for this page returned"
        return f"flush_tlb_mm_range({_mm(a)}): IPIs to {b} CPUs"
    if code == abi.TR_IPI:
        return f"IPI from cpu{b}: {_CALLS.get(a, a)}"
    if code == abi.TR_IDLE:
        return f"idle: enter {cstates[a].name if 0 <= a < len(cstates) else a}"
    if code == abi.TR_WAKE:
        state = cstates[b].name if 0 <= b < len(cstates) else b
        return f"wake from {state} ({'IPI' if a else 'timer/task'})"
    if code == abi.TR_PSC_FILL:
        return f"page walk caches page table {a} of {_mm(b)}"
    if code == abi.TR_TABLE_FREE:
        return f"frees page table {a} of {_mm(b)} (flush returned)"
    if code == abi.TR_SKIP:
        return f"flush_tlb_mm_range({_mm(b)}) sends no IPI to cpu{a}"
    if code == abi.TR_MM_FREE:
        return f"__mmdrop frees {_mm(a)}"
    if code == abi.TR_LEAVE_MM:
        return f"leave_mm: {_mm(a)} -> init_mm"
    if code == abi.TR_WALK:
        return f"speculative walk through page table {a} of {_mm(b)}"
    if code == abi.TR_ACCESS_STALE:
        return f"access to page {a} of {_mm(b)} hits a stale TLB entry"
    if code == abi.TR_HUNG:
        return f"cpu{a} hangs"
    if code == abi.TR_PV_DEFER:
        return f"PV flush: vCPU {a} preempted, flush deferred to VM entry"
    if code == abi.TR_EXIT:
        return f"task {a} exits ({_mm(b)})"
    return f"event {code} {a} {b}"


def format_trace(records, profile):
    return tuple(f"{profile.ns_from_cycles(t):>12} ns  cpu{cpu:<3} "
                 f"{describe(code, a, b, profile.cstates)}"
                 for t, cpu, code, a, b in records)

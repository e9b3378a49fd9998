"""concurrent_flush: flush the local TLB while the remote IPIs are in flight.

Mirrors Nadav Amit, "x86/mm/tlb: Flush remote and local TLBs concurrently"
(4ce94eabac16, with "smp: Run functions concurrently in
smp_call_function_many_cond()", a32a4d8a815c; the "concurrent" column of seed
002; merged for v5.13): flush_tlb_mm_range() sends the IPIs first and runs
flush_tlb_func() locally while they travel, instead of flushing locally first
("during (*), CPU0 might do some local TLB flushes, making it very likely that
CSD will be unlocked by the time it gets there").

Relative to mainline_v4_20: flush_local="concurrent".
Kernel functions: flush_tlb_mm_range, native_flush_tlb_multi, flush_tlb_func.
"""

from .mainline_v4_20 import MainlineV420


class ConcurrentFlush(MainlineV420):
    name = "concurrent_flush"
    flush_local = "concurrent"

"""concurrent_flush: flush the local TLB while the remote IPIs are in flight.

Mirrors Nadav Amit, "x86/mm/tlb: Flush remote and local TLBs concurrently"
(the "concurrent" column of seed 002; merged as 4ce94eabac16 for v5.10):
flush_tlb_mm_range() sends the IPIs first and runs flush_tlb_func() locally
while they travel, instead of flushing locally first ("during (*), CPU0 might
do some local TLB flushes, making it very likely that CSD will be unlocked by
the time it gets there").

Relative to mainline_v4_20: flush_local="concurrent".
Kernel functions: flush_tlb_mm_range, native_flush_tlb_multi, flush_tlb_func.
"""

from .mainline_v4_20 import MainlineV420


class ConcurrentFlush(MainlineV420):
    name = "concurrent_flush"
    flush_local = "concurrent"

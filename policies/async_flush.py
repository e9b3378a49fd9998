"""async_flush: continue once the targets have copied the flush request.

Mirrors Nadav Amit, "[RFC PATCH v2 11/12] x86/mm/tlb: Use async and inline
messages for flushing" (seed 002, the "+async" column; not merged): a target
copies the call_single_data to its stack and unlocks it *before* flushing, so
the initiator continues while the remote flushes are still running; the
flush's parameters travel inline in the csd, so a target does not load the
initiator's flush_tlb_info line. Its rule
1, "No tables are freed, since otherwise speculative page walks might cause
machine-checks", is enforced by the engine: flush_wait is forced to "done"
whenever a flush frees page tables.

Relative to concurrent_flush: flush_wait="ack".
Kernel functions: flush_tlb_mm_range, __smp_call_function_many, flush_tlb_func.
"""

from .concurrent_flush import ConcurrentFlush


class AsyncFlush(ConcurrentFlush):
    name = "async_flush"
    flush_wait = "ack"

"""The reference engine: a discrete-event model of an x86 machine running
Linux's TLB-shootdown and lazy-TLB code (DESIGN §3). It defines the
semantics; the native engine (`_native/`, the same files in C) must
reproduce it bit for bit.

Reading guide. The engine is laid out by the kernel file it models, so a
reviewer holding a patch finds its counterpart by name:

| module     | models                                                          |
|------------|-----------------------------------------------------------------|
| `core.py`  | the event loop, costs and knob codes every room shares          |
| `tlb.py`   | arch/x86/mm/tlb.c: switch_mm_irqs_off, enter_lazy_tlb,          |
|            | choose_new_asid, leave_mm, flush_tlb_mm_range,                  |
|            | native_flush_tlb_multi, flush_tlb_func                          |
| `smp.py`   | kernel/smp.c: call_single_queue, IPI delivery, csd acks         |
| `kvm.py`   | arch/x86/kernel/kvm.c: the PV TLB flush                         |
| `sched.py` | kernel/sched/: context_switch, lazy mm references, exit,        |
|            | membarrier                                                      |
| `idle.py`  | cpuidle: governor, C-states                                     |
| `mm.py`    | mm/: mm_struct lifetime, page-table pages, madvise/munmap/      |
|            | mprotect, exit_mmap                                             |
| `hw.py`    | the hardware: cache lines, TLB, paging-structure cache, page    |
|            | walks, the host's vCPU preemption                               |
| `task.py`  | user space: the workload's op program                           |
| `oracle.py`| the correctness checks and their traces                         |

Each room is a mixin; `Machine` puts them together, so a kernel path calls
another by its kernel name whichever file it lives in. Each path takes the
CPU it runs on and the time `t` (cycles) at which it starts, and returns
the time at which it is done: costs are charged by advancing `t`, state
changes take effect at once.

Modeling rules that matter when reading results:
- Time is integer cycles of the profile clock. Events are ordered by
  (time, cpu, sequence number), so ties break the same way in every engine.
- An op's state effects apply when it starts; its cost delays the next op.
  Cross-calls are the exception: each llist_add() onto a target's
  call_single_queue lands when the sender's queueing loop gets there, and
  the IPIs go out when the loop is over (smp_call_function_many_cond()).
  An interrupt that lands while an op runs postpones the op's end by the
  handler's duration; IPIs that arrive while IRQs are off (the context
  switch) wait until they are on again.
- A contended cache line has an owner and a free-at time: an atomic on it
  waits until the line is free and pays the transfer from the owner
  (same core / same socket / remote). Contention is emergent.
- Speculative page walks are only scheduled through paging-structure cache
  entries that point at a freed page-table page: walks through live entries
  change nothing the oracle or the metrics can see. A walk is drawn at a
  uniform delay (mean: the profile's walk interval) after the entry became
  stale or the CPU woke up, and only happens while the CPU executes (not
  halted in a C-state, not a preempted vCPU).
- The idle governor knows the next timer on its CPU and picks the deepest
  state whose target residency fits. Entering a state takes as long as
  leaving it; an interrupt during entry pays only the time already spent.
- Scheduling is per-CPU FIFO and non-preemptive: a task runs until it
  sleeps, yields, migrates, blocks in a flush or exits. Workloads place and
  migrate tasks explicitly.
"""

from __future__ import annotations

from .core import (INIT_ASID, INIT_MM, MAX_VIOLATIONS, NR_HW_ASIDS, PAGES_PER_TABLE, RING,
                   TLB_FLUSH_ALL, TLB_NR_DYN_ASIDS, WATCHDOG_NS, Core)
from .hw import Hardware
from .idle import Idle
from .kvm import Kvm
from .mm import Mm
from .oracle import Oracle
from .sched import Sched
from .smp import Call, Smp
from .task import Task
from .tlb import FlushInfo, Tlb

__all__ = ["Machine", "Call", "FlushInfo", "INIT_ASID", "INIT_MM", "MAX_VIOLATIONS",
           "NR_HW_ASIDS", "PAGES_PER_TABLE", "RING", "TLB_FLUSH_ALL", "TLB_NR_DYN_ASIDS",
           "WATCHDOG_NS"]


class Machine(Task, Sched, Mm, Tlb, Smp, Kvm, Idle, Hardware, Oracle, Core):
    """One run: a profile, a policy's knobs, a compiled workload and a seed.
    `Machine(profile, knobs, program, seed, hook=None).run()` returns the raw
    counters, samples and violations (metrics.compute turns them into
    metrics)."""

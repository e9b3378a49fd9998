"""The event core: a tiny discrete-event loop everything else is built on.

`Core` holds what every room shares -- the profile's costs in cycles, the
policy's knob codes, the topology, the machine's random stream, the event
heap and the counters -- and runs the loop. Each kernel room adds its own
per-CPU state in an `init_*` method and its kernel paths as methods; the
rooms are mixed into one `Machine` (engine/machine.py), so a kernel path
calls another by its kernel name, `self.switch_mm_irqs_off(c, mm, t)`,
whichever file it lives in.

Events are tuples (time, cpu, sequence, kind, a, b) on one heap: ties break
by cpu, then by the order they were pushed, in both engines.
"""

from __future__ import annotations

import heapq
from bisect import insort

from . import abi
from .abi import (EV_BROADCAST, EV_CALL_DONE, EV_CSD, EV_IPI, EV_QUEUE, EV_SEND,
                  EV_SPEC_WALK, EV_STEP, EV_WAKE, EV_WATCHDOG, EV_WINDOW)
from .prng import STREAM_MACHINE, Stream

TLB_NR_DYN_ASIDS = 6           # arch/x86/include/asm/tlbflush.h
INIT_ASID = TLB_NR_DYN_ASIDS   # init_mm's own hardware ASID (seed 001: "give init_mm its own
NR_HW_ASIDS = TLB_NR_DYN_ASIDS + 1  # dedicated ASID"); it maps no user pages
INIT_MM = 0
PAGES_PER_TABLE = 512          # one page-table page maps 2 MiB of 4 KiB pages
TLB_FLUSH_ALL = -1
WATCHDOG_NS = 1_000_000_000    # an initiator waiting this long for its flush has hung
RING = 8                       # trace records kept per CPU
MAX_VIOLATIONS = 64            # violations kept with a trace (all are counted)


class Core:
    """One run: a profile, a policy's knobs, a compiled workload and a seed."""

    def __init__(self, profile, knobs, program, seed, hook=None):
        P = self.profile = profile
        k = knobs.codes()
        self.k_lazy_tlb = k["lazy_tlb"]
        self.k_lazy_cpumask = k["lazy_cpumask"]
        self.k_flush_lazy = k["flush_lazy_cpus"]
        self.k_flush_local = k["flush_local"]
        self.k_flush_wait = k["flush_wait"]
        self.k_lazy_ref = k["lazy_mm_ref"]
        self.k_idle_leave = k["idle_leave_mm"]
        self.k_ceiling = k["flush_ceiling"]
        self.k_barrier = k["switch_mm_barrier"]
        self.k_read_gen = k["read_mm_tlb_gen"]
        self.k_init_asid = k["init_mm_asid"]
        self.k_scan = k["lazy_mm_scan"]
        self.k_release = k["lazy_mm_release"]
        self.k_cpumask = k["cpumask_update"]
        self.k_broadcast = k["broadcast_flush"]
        self.k_tlbsync = k["tlbsync"]
        self.k_lru = k["lru_drain"]
        self.k_table_free = k["table_free"]
        # PTI: the knob, or on Meltdown-affected parts ('auto', the default)
        self.pti = (k["pti"] == abi.PTI_ON
                    or (k["pti"] == abi.PTI_AUTO and P.meltdown))
        self.invpcid = P.invpcid
        self.virt = P.virt
        self.pv = bool(P.virt and P.virt["pv_tlb_flush"] and k["pv_flush"])
        self.hook = hook

        n = self.ncpu = P.cpus
        self.core = [P.core_of(c) for c in range(n)]
        self.llc = [P.llc_of(c) for c in range(n)]
        self.socket = [P.socket_of(c) for c in range(n)]
        c = P.costs
        self.c_syscall, self.c_access = c["syscall"], c["access"]
        self.c_walk, self.c_walk_psc = c["walk"], c["walk_psc"]
        self.c_fault, self.c_zap, self.c_pte = c["page_fault"], c["zap_pte"], c["pte_update"]
        self.c_invlpg, self.c_full_flush = c["invlpg"], c["full_flush"]
        self.c_invpcid = c["invpcid"]
        self.c_cr3, self.c_ctxsw = c["cr3_write"], c["context_switch"]
        self.c_irq, self.c_flush_func, self.c_csd = (c["irq_entry"], c["flush_func"],
                                                     c["csd_ack"])
        self.c_ipi_send, self.c_atomic, self.c_mb = c["ipi_send"], c["atomic"], c["smp_mb"]
        self.c_wakeup, self.c_pipe = c["wakeup"], c["pipe"]
        self.c_csd_setup = c["csd_setup"]
        self.c_lru_lock = c["lru_lock"]
        self.c_invlpgb, self.c_tlbsync, self.c_rar = c["invlpgb"], c["tlbsync"], c["rar"]
        self.jiffy = P.clock_mhz * 1000        # HZ=1000: one jiffy is 1 ms
        # PTI: every entry from user mode and every return to it switches CR3
        # (SWITCH_TO_KERNEL_CR3 / SWITCH_TO_USER_CR3, NOFLUSH with PCID):
        # syscalls, page faults and interrupts that land in user mode. Left out:
        # without PCID those writes also drop the user TLB.
        self.c_pti = 2 * self.c_cr3 if self.pti else 0
        self.c_syscall += self.c_pti
        self.c_fault += self.c_pti
        self.c_fault_file = c["file_fault"] + self.c_pti
        # IPI delivery by distance level (dist(): core, LLC, socket, remote):
        # the APIC fabric does not care about L3 domains
        smt, socket, remote = (P.cycles_from_ns(ns) for ns in P.ipi_ns)
        self.ipi_lat = (smt, socket, socket, remote)
        self.ipi_jitter = P.ipi_jitter
        self.xfer = P.line_transfer
        self.c_inval = P.invalidate_cycles
        self.rng = Stream(seed, STREAM_MACHINE)
        self.seed = seed
        self.program = program

        # --- counters and samples ------------------------------------------
        self.n_ipis = self.n_ipis_to_idle = self.n_ipis_to_lazy = 0
        self.n_cr3 = self.n_full_flushes = self.n_invlpg = self.n_tlb_misses = 0
        self.n_contention = self.n_idle_wakeups = self.n_ops = 0
        self.n_faults = self.n_spec_walks = self.n_switch_mb = self.n_resched_ipis = 0
        self.n_icr_writes = self.n_invpcid = 0
        self.n_invlpgb = self.n_rar = self.n_flush_cycles = self.n_lru_locks = 0
        self.ipis_received = [0] * n
        self.flush_lat = []

        # --- each room's state ------------------------------------------------
        self.init_hw()
        self.init_kvm()
        self.init_tlb()
        self.init_smp()
        self.init_sched()
        self.init_idle()
        self.init_mm()
        self.init_task()
        self.init_oracle()

        self.heap = []
        self.seq = 0
        self.now = 0
        for i, task in enumerate(program.tasks):
            insort(self.timers[task.cpu], task.start)
            self.push(task.start, task.cpu, EV_WAKE, i, 1)
        # a throughput workload: count from warm-up's end, stop at the window's
        self.stop = program.warmup + program.window if program.window else -1
        self.measuring = not program.window
        self.snapshot = None
        self.stopped = False
        if program.window:
            self.push(program.warmup, 0, EV_WINDOW)

    # ------------------------------------------------------------------ loop
    def push(self, t, cpu, ev, a=0, b=0):
        self.seq += 1
        heapq.heappush(self.heap, (t, cpu, self.seq, ev, a, b))

    def run(self):
        heap = self.heap
        pop = heapq.heappop
        stop = self.stop
        while heap:
            t, cpu, _, ev, a, b = pop(heap)
            if t >= stop >= 0:
                self.stopped = True
                break
            self.now = t
            if ev == EV_STEP:
                if a == self.step_token[cpu]:
                    self.step_at[cpu] = -1
                    self.ev_step(cpu)
            elif ev == EV_IPI:
                self.ev_ipi(cpu, a, b)
            elif ev == EV_CALL_DONE:
                self.ev_call_done(cpu, a)
            elif ev == EV_WAKE:
                self.ev_wake(cpu, a, b)
            elif ev == EV_SPEC_WALK:
                self.ev_spec_walk(cpu, a, b)
            elif ev == EV_WATCHDOG:
                self.ev_watchdog(cpu, a)
            elif ev == EV_CSD:
                self.ev_csd(cpu, a)
            elif ev == EV_QUEUE:
                self.ev_queue(cpu, a)
            elif ev == EV_SEND:
                self.ev_send(cpu, a, b)
            elif ev == EV_BROADCAST:
                self.ev_broadcast(cpu, a, b)
            elif ev == EV_WINDOW:
                self.snapshot = (self.counters(), list(self.ipis_received))
                self.measuring = True
        return self.raw_result()

    def schedule_step(self, c, t):
        if self.hung[c]:
            return
        if t < self.irq_busy[c]:
            t = self.irq_busy[c]
        if self.virt:
            t = self.stretch(c, self.now, t)
        self.step_token[c] += 1
        self.step_at[c] = t
        self.push(t, c, EV_STEP, self.step_token[c])

    def interrupted(self, c, start, end):
        """CPU c ran an interrupt handler from start to end: whatever it was
        doing finishes that much later."""
        self.irq_busy[c] = end
        if self.step_at[c] >= start:
            self.step_token[c] += 1
            self.step_at[c] += end - start
            self.push(self.step_at[c], c, EV_STEP, self.step_token[c])
        elif self.cur[c] < 0 and self.step_at[c] < 0:
            self.schedule_step(c, end)   # back to the idle loop

    def counters(self):
        return {
            "ipis": self.n_ipis, "ipis_to_idle": self.n_ipis_to_idle,
            "ipis_to_lazy": self.n_ipis_to_lazy, "cr3_writes": self.n_cr3,
            "full_flushes": self.n_full_flushes, "invlpg": self.n_invlpg,
            "tlb_misses": self.n_tlb_misses, "atomic_contention": self.n_contention,
            "idle_wakeups": self.n_idle_wakeups, "ops": self.n_ops,
            "page_faults": self.n_faults, "spec_walks": self.n_spec_walks,
            "switch_mm_barriers": self.n_switch_mb, "resched_ipis": self.n_resched_ipis,
            "icr_writes": self.n_icr_writes, "invpcid": self.n_invpcid,
            "invlpgb": self.n_invlpgb, "rar_requests": self.n_rar,
            "flush_cycles": self.n_flush_cycles, "lru_locks": self.n_lru_locks,
        }

    def raw_result(self):
        counters, received = self.counters(), list(self.ipis_received)
        if self.stop >= 0:
            # a throughput workload: what happened inside the measured window
            if self.snapshot is not None:
                before, received_before = self.snapshot
                counters = {k: v - before[k] for k, v in counters.items()}
                received = [a - b for a, b in zip(received, received_before)]
            end, finished = self.stop, self.stopped
        else:
            done = [t for t in self.task_done if t >= 0]
            finished = len(done) == len(self.task_done)
            end = max(done) if finished and done else self.now
        return {
            "end": end,
            "finished": finished,
            "counters": counters,
            "window": self.program.window,
            "window_marks": self.window_marks,
            "flush_latency": list(self.flush_lat),
            "ipis_received": received,
            "marks": [tuple(m) for m in self.task_marks],
            "task_pc": list(self.task_pc),
            "violation_counts": list(self.violation_counts),
            "violations": list(self.violations),
        }

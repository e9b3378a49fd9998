"""The reference engine: a discrete-event model of an x86 machine running
Linux's TLB-shootdown and lazy-TLB code (DESIGN §3). It defines the
semantics; the native engine must reproduce it bit for bit.

Reading guide. Kernel paths are methods named after their counterparts in
arch/x86/mm/tlb.c and kernel/sched/core.c: `switch_mm_irqs_off`,
`enter_lazy_tlb`, `choose_new_asid`, `leave_mm`, `flush_tlb_mm_range`,
`native_flush_tlb_multi` (with the KVM PV variant inside it),
`flush_tlb_func`, `mmgrab`/`mmdrop`, `exit_mmap`. Each takes the CPU it runs
on and the time `t` (cycles) at which it starts, and returns the time at
which it is done: costs are charged by advancing `t`, state changes take
effect at once. The hardware (TLB, paging-structure cache, cache lines,
C-states, vCPU preemption) sits below them.

Modeling rules that matter when reading results:
- Time is integer cycles of the profile clock. Events are ordered by
  (time, cpu, sequence number), so ties break the same way in every engine.
- An op's state effects apply when it starts; its cost delays the next op.
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

import heapq
from bisect import bisect_left, insort
from collections import deque

from . import abi
from .abi import (CALL_FLUSH, CALL_MEMBARRIER, CALL_UNLAZY, CONT_EXIT_FREE, CONT_EXIT_MMAP,
                  CONT_STEP, EV_CALL_DONE, EV_IPI, EV_SPEC_WALK, EV_STEP, EV_WAKE, EV_WATCHDOG)
from .prng import STREAM_MACHINE, STREAM_VCPU, Stream

TLB_NR_DYN_ASIDS = 6           # arch/x86/include/asm/tlbflush.h
INIT_ASID = TLB_NR_DYN_ASIDS   # init_mm's own hardware ASID (seed 001: "give init_mm its own
NR_HW_ASIDS = TLB_NR_DYN_ASIDS + 1  # dedicated ASID"); it maps no user pages
INIT_MM = 0
PAGES_PER_TABLE = 512          # one page-table page maps 2 MiB of 4 KiB pages
TLB_FLUSH_ALL = -1
WATCHDOG_NS = 1_000_000_000    # an initiator waiting this long for its flush has hung
RING = 8                       # trace records kept per CPU
MAX_VIOLATIONS = 64            # violations kept with a trace (all are counted)


class FlushInfo:
    """What `Policy.should_flush_cpu(cpu, info)` is told about a flush."""

    __slots__ = ("mm", "start", "npages", "new_tlb_gen", "freed_tables", "initiator",
                 "is_lazy", "default")

    def __init__(self, mm, start, npages, new_tlb_gen, freed_tables, initiator, is_lazy,
                 default):
        self.mm, self.start, self.npages = mm, start, npages
        self.new_tlb_gen, self.freed_tables = new_tlb_gen, freed_tables
        self.initiator, self.is_lazy, self.default = initiator, is_lazy, default


class Call:
    """One cross-call in flight: a flush_tlb_info plus its call_single_data
    bookkeeping (who waits, how many acks are missing, what happens next)."""

    __slots__ = ("kind", "initiator", "mm", "start", "npages", "new_gen", "freed", "snap",
                 "tables", "cont", "task", "t0", "pending", "done_at", "local_done",
                 "wait_ack", "watchdog", "targets")

    def __init__(self, kind, initiator, mm, task, cont, t0):
        self.kind, self.initiator, self.mm, self.task, self.cont = kind, initiator, mm, task, cont
        self.t0 = t0
        self.start = 0
        self.npages = TLB_FLUSH_ALL
        self.new_gen = 0
        self.freed = False
        self.snap = ()
        self.tables = ()
        self.pending = 0
        self.done_at = 0
        self.local_done = 0
        self.wait_ack = False
        self.watchdog = False
        self.targets = 0


class Machine:
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
        self.virt = P.virt
        self.pv = bool(P.virt and P.virt["pv_tlb_flush"] and k["pv_flush"])
        self.hook = hook

        n = self.ncpu = P.cpus
        self.core = [P.core_of(c) for c in range(n)]
        self.socket = [P.socket_of(c) for c in range(n)]
        c = P.costs
        self.c_syscall, self.c_access = c["syscall"], c["access"]
        self.c_walk, self.c_walk_psc = c["walk"], c["walk_psc"]
        self.c_fault, self.c_zap, self.c_pte = c["page_fault"], c["zap_pte"], c["pte_update"]
        self.c_invlpg, self.c_full_flush = c["invlpg"], c["full_flush"]
        self.c_cr3, self.c_ctxsw = c["cr3_write"], c["context_switch"]
        self.c_irq, self.c_flush_func, self.c_csd = (c["irq_entry"], c["flush_func"],
                                                     c["csd_ack"])
        self.c_ipi_send, self.c_atomic, self.c_mb = c["ipi_send"], c["atomic"], c["smp_mb"]
        self.ipi_lat = [P.cycles_from_ns(ns) for ns in P.ipi_ns]
        self.ipi_jitter = P.ipi_jitter
        self.xfer = P.line_transfer
        self.cs_exit = [s.exit_latency for s in P.cstates]
        self.cs_residency = [s.target_residency for s in P.cstates]
        self.cs_flushed = [s.tlb_flushed for s in P.cstates]
        self.walk_span = 2 * P.walk_interval
        self.walk_severity = abi.SEV_HANG if P.freed_table_walk == "hang" else abi.SEV_SILENT
        self.watchdog = P.cycles_from_ns(WATCHDOG_NS)
        self.tlb_sets = P.tlb_entries // P.tlb_ways
        self.tlb_ways = P.tlb_ways
        self.psc_n = P.psc_entries
        self.rng = Stream(seed, STREAM_MACHINE)
        self.seed = seed

        # --- per-CPU state (cpu_tlbstate and friends) ------------------------
        self.loaded_mm = [INIT_MM] * n
        self.loaded_asid = [INIT_ASID if P.pcid else 0] * n
        self.is_lazy = [0] * n
        self.ctx_id = [[-1] * NR_HW_ASIDS for _ in range(n)]
        self.ctx_gen = [[0] * NR_HW_ASIDS for _ in range(n)]
        self.next_asid = [0] * n
        self.cur = [-1] * n            # running task, -1: the idle task
        self.active_mm = [INIT_MM] * n  # current->active_mm
        self.lazy_ref = [0] * n        # active_mm is borrowed by a kthread / idle
        self.hazard = [INIT_MM] * n    # per-CPU hazard pointer (lazy_mm_ref="hazard_pointer")
        self.cstate = [-1] * n         # C-state index, -1: executing (C0)
        self.idle_since = [0] * n
        self.irqs_off_until = [0] * n
        self.irq_busy = [0] * n        # end of the interrupt handler running now
        self.step_token = [0] * n
        self.step_at = [-1] * n
        self.hung = [0] * n
        self.hung_at = [0] * n
        self.runq = [deque() for _ in range(n)]
        self.timers = [[] for _ in range(n)]  # wake-up times of tasks homed here
        self.pv_pending = [-1] * n     # KVM_VCPU_FLUSH_TLB: flush at this VM entry
        self.csdq = [[] for _ in range(n)]  # call_single_queue: cross-calls not yet taken
        self.vwin = [deque() for _ in range(n)] if self.virt else None
        self.vrng = [Stream(seed, STREAM_VCPU + x) for x in range(n)] if self.virt else None
        self.vlast = [None] * n
        # TLB: set-associative, round-robin victim per set; an entry is valid
        # while its epoch equals the ASID's epoch (a full flush bumps it).
        ways = self.tlb_ways
        self.tlb_map = [dict() for _ in range(n)]
        self.tlb_key = [[-1] * (self.tlb_sets * ways) for _ in range(n)]
        self.tlb_ver = [[0] * (self.tlb_sets * ways) for _ in range(n)]
        self.tlb_ep = [[0] * (self.tlb_sets * ways) for _ in range(n)]
        self.tlb_rr = [[0] * self.tlb_sets for _ in range(n)]
        self.tlb_epoch = [[0] * NR_HW_ASIDS for _ in range(n)]
        # paging-structure cache: (asid, 2 MiB region) -> page-table page
        self.psc_map = [dict() for _ in range(n)]
        self.psc_key = [[-1] * self.psc_n for _ in range(n)]
        self.psc_table = [[0] * self.psc_n for _ in range(n)]
        self.psc_gen = [[0] * self.psc_n for _ in range(n)]
        self.psc_ep = [[0] * self.psc_n for _ in range(n)]
        self.psc_serial = [[0] * self.psc_n for _ in range(n)]
        self.psc_mm = [[0] * self.psc_n for _ in range(n)]   # for traces: owner and
        self.psc_at = [[0] * self.psc_n for _ in range(n)]   # time of the fill
        self.psc_rr = [0] * n
        self.psc_epoch = [[0] * NR_HW_ASIDS for _ in range(n)]
        self.serial = 0
        self.rings = [[None] * RING for _ in range(n)]
        self.rpos = [0] * n

        # --- mm_structs (index 0 is init_mm) ------------------------------
        self.mm_ctx = [0]
        self.mm_gen = [1]
        self.mm_mask = [0]
        self.mm_count = [1]
        self.mm_users = [1]
        self.mm_present = [bytearray()]
        self.mm_ver = [[]]
        self.mm_ret = [[]]          # per page: newest version whose flush has returned
        self.mm_ret_at = [[]]       # ... when, and on which initiator (for traces)
        self.mm_tables = [[]]
        self.line_owner = [-1, -1, -1]  # three contended lines per mm:
        self.line_free = [0, 0, 0]      # mm_count, mm_cpumask, tlb_gen
        self.next_ctx = 1
        # page-table pages: a pool shared by every mm, reused LIFO
        self.table_gen = []
        self.table_mm = []
        self.table_cachers = []     # bitmap of CPUs whose PSC may hold it
        self.table_frees = []       # per table, free number g: (time, cpu, mm) (traces)
        self.table_pool = []

        # --- tasks ------------------------------------------------------------
        self.program = program
        self.task_ops = [t.ops for t in program.tasks]
        self.task_tmpl = [t.mm for t in program.tasks]
        self.task_mm = [-1] * len(program.tasks)   # -1: not started yet
        self.task_pc = [0] * len(program.tasks)
        self.task_done = [-1] * len(program.tasks)
        self.task_marks = [[-1, 0, 0] for _ in program.tasks]  # first, last, count
        self.tmpl_mm = [-1] * len(program.mm_pages)
        # clone() takes a thread's mm_users reference before it first runs:
        # a process's mm lives until every one of its threads has exited
        self.tmpl_threads = [0] * len(program.mm_pages)
        for t in program.tasks:
            if t.mm >= 0:
                self.tmpl_threads[t.mm] += 1

        # --- counters and samples ------------------------------------------
        self.n_ipis = self.n_ipis_to_idle = self.n_ipis_to_lazy = 0
        self.n_cr3 = self.n_full_flushes = self.n_invlpg = self.n_tlb_misses = 0
        self.n_contention = self.n_idle_wakeups = self.n_ops = 0
        self.n_faults = self.n_spec_walks = self.n_switch_mb = 0
        self.ipis_received = [0] * n
        self.flush_lat = []
        self.violation_counts = [0] * len(abi.VIOLATION_KINDS)
        self.violations = []
        self.seen = set()

        self.calls = {}
        self.next_call = 0
        self.heap = []
        self.seq = 0
        self.now = 0
        for i, task in enumerate(program.tasks):
            insort(self.timers[task.cpu], task.start)
            self.push(task.start, task.cpu, EV_WAKE, i, 1)

    # ------------------------------------------------------------------ loop
    def push(self, t, cpu, ev, a=0, b=0):
        self.seq += 1
        heapq.heappush(self.heap, (t, cpu, self.seq, ev, a, b))

    def run(self):
        heap = self.heap
        pop = heapq.heappop
        while heap:
            t, cpu, _, ev, a, b = pop(heap)
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

    def ring(self, c, code, a=0, b=0):
        self.rings[c][self.rpos[c]] = (self.now, c, code, a, b)
        self.rpos[c] = (self.rpos[c] + 1) % RING

    def history(self, c):
        r, p = self.rings[c], self.rpos[c]
        return [rec for rec in r[p:] + r[:p] if rec is not None]

    def report(self, kind, severity, c, extra=()):
        """The oracle's single exit: count every violation, keep the first per
        (kind, cpu) with the events that led to it."""
        self.violation_counts[kind] += 1
        key = (kind, c)
        if key in self.seen or len(self.violations) >= MAX_VIOLATIONS:
            return
        self.seen.add(key)
        # stable by time: same-time records keep the order they happened in
        trace = sorted(dict.fromkeys(self.history(c) + list(extra)), key=lambda rec: rec[0])
        self.violations.append((kind, severity, c, self.now, tuple(trace)))

    # ------------------------------------------------------------ hardware
    def dist(self, a, b):
        if self.core[a] == self.core[b]:
            return 0
        return 1 if self.socket[a] == self.socket[b] else 2

    def atomic(self, c, line, t):
        """A LOCK-prefixed RMW by CPU c on a contended cache line."""
        start = max(t, self.line_free[line])
        owner = self.line_owner[line]
        xfer = 0 if owner == c else self.xfer[1 if owner < 0 else self.dist(owner, c)]
        end = start + xfer + self.c_atomic
        self.n_contention += end - t - self.c_atomic
        self.line_owner[line] = c
        self.line_free[line] = end
        return end

    def read_line(self, c, line, t):
        owner = self.line_owner[line]
        return t if owner < 0 or owner == c else t + self.xfer[self.dist(owner, c)]

    def flush_asid(self, c, asid):
        self.tlb_epoch[c][asid] += 1
        self.psc_epoch[c][asid] += 1

    def flush_everything(self, c):
        for asid in range(NR_HW_ASIDS):
            self.flush_asid(c, asid)

    def tlb_fill(self, c, key, ver, epoch):
        m = self.tlb_map[c]
        slot = m.get(key)
        if slot is None:
            s = ((key >> 32) * 131 + (key & 0xFFFFFFFF)) % self.tlb_sets
            rr = self.tlb_rr[c]
            slot = s * self.tlb_ways + rr[s]
            rr[s] = (rr[s] + 1) % self.tlb_ways
            old = self.tlb_key[c][slot]
            if old >= 0:
                del m[old]
            m[key] = slot
            self.tlb_key[c][slot] = key
        self.tlb_ver[c][slot] = ver
        self.tlb_ep[c][slot] = epoch

    def invlpg(self, c, asid, page):
        slot = self.tlb_map[c].pop((asid << 32) | page, None)
        if slot is not None:
            self.tlb_key[c][slot] = -1

    def psc_fill(self, c, key, table):
        m = self.psc_map[c]
        slot = m.get(key)
        if slot is None:
            slot = self.psc_rr[c]
            self.psc_rr[c] = (slot + 1) % self.psc_n
            old = self.psc_key[c][slot]
            if old >= 0:
                del m[old]
            m[key] = slot
            self.psc_key[c][slot] = key
        self.psc_table[c][slot] = table
        self.psc_gen[c][slot] = self.table_gen[table]
        self.psc_ep[c][slot] = self.psc_epoch[c][key >> 32]
        self.serial += 1
        self.psc_serial[c][slot] = self.serial
        self.psc_mm[c][slot] = self.table_mm[table]
        self.psc_at[c][slot] = self.now
        self.table_cachers[table] |= 1 << c
        self.ring(c, abi.TR_PSC_FILL, table, self.table_mm[table])

    def psc_stale(self, c, slot):
        """Does this PSC entry, in the ASID CR3 holds now, point at a freed table?"""
        key = self.psc_key[c][slot]
        if key < 0:
            return False
        asid = key >> 32
        return (asid == self.loaded_asid[c] and self.psc_ep[c][slot] == self.psc_epoch[c][asid]
                and self.psc_gen[c][slot] != self.table_gen[self.psc_table[c][slot]])

    def arm_walk(self, c, slot):
        delay = 1 + self.rng.below(self.walk_span)
        self.push(self.now + delay, c, EV_SPEC_WALK, slot, self.psc_serial[c][slot])

    def arm_walks(self, c):
        """CPU c executes with CR3 on its loaded ASID: every stale PSC entry of
        that ASID is a speculative walk waiting to happen."""
        for slot in range(self.psc_n):
            if self.psc_stale(c, slot):
                self.arm_walk(c, slot)

    # -- vCPU preemption (KVM guests) ------------------------------------
    def vcpu_windows_until(self, c, t):
        """c's preemption windows, generated up to time t; those that ended
        before now are dropped. The windows are a function of (seed, cpu)
        only, never of the order of the queries."""
        win = self.vwin[c]
        while win and win[0][1] <= self.now:
            win.popleft()
        v = self.virt
        dur = v["preempt"]
        gap = dur * (100 - v["preempt_percent"]) // max(v["preempt_percent"], 1)
        rng = self.vrng[c]
        if self.vlast[c] is None:
            # Start in a random phase, so the share of preempted vCPUs is
            # stationary from time zero: a vCPU may begin preempted.
            start = rng.below(gap + dur) - dur
            win.append((start, start + dur))
            self.vlast[c] = start + dur
        while self.vlast[c] <= t:
            start = self.vlast[c] + rng.between(gap // 2, gap + gap // 2)
            end = start + rng.between(dur // 2, dur + dur // 2)
            win.append((start, end))
            self.vlast[c] = end
        return win

    def preempted_until(self, c, t):
        """If vCPU c is descheduled by the host at time t, when it runs again."""
        if not self.virt or self.virt["preempt_percent"] == 0:
            return 0
        for start, end in self.vcpu_windows_until(c, t):
            if start > t:
                break
            if t < end:
                return end
        return 0

    def stretch(self, c, start, end):
        """Work from start to end on vCPU c finishes later by every preemption
        window that falls inside it."""
        if self.virt["preempt_percent"] == 0:
            return end
        win = self.vcpu_windows_until(c, end)
        i = 0
        while i < len(win):
            ws, we = win[i]
            if ws >= end:
                break
            if we > start:
                end += we - max(ws, start)
                self.vcpu_windows_until(c, end)   # appends only: nothing ended since
            i += 1
        return end

    def vcpu_sync(self, c):
        """VM entry after a PV-deferred flush: the host flushes first."""
        if self.pv_pending[c] >= 0 and self.now >= self.pv_pending[c]:
            self.pv_pending[c] = -1
            self.flush_everything(c)
            self.n_full_flushes += 1

    # ------------------------------------------------------------ mm_struct
    def mm_line(self, mm, which):
        """0: mm_count, 1: mm_cpumask, 2: context.tlb_gen."""
        return 3 * mm + which

    def exec_mm(self, tmpl):
        npages = self.program.mm_pages[tmpl]
        mm = len(self.mm_ctx)
        self.mm_ctx.append(self.next_ctx)
        self.next_ctx += 1
        self.mm_gen.append(1)
        self.mm_mask.append(0)
        self.mm_count.append(1)     # one reference held on behalf of all users
        self.mm_users.append(self.tmpl_threads[tmpl])
        self.mm_present.append(bytearray(npages))
        self.mm_ver.append([0] * npages)
        self.mm_ret.append([0] * npages)
        self.mm_ret_at.append([None] * npages)
        self.mm_tables.append([-1] * ((npages + PAGES_PER_TABLE - 1) // PAGES_PER_TABLE))
        self.line_owner += [-1, -1, -1]
        self.line_free += [0, 0, 0]
        self.tmpl_mm[tmpl] = mm
        return mm

    def alloc_table(self, mm, region):
        if self.table_pool:
            table = self.table_pool.pop()
        else:
            table = len(self.table_gen)
            self.table_gen.append(0)
            self.table_mm.append(0)
            self.table_cachers.append(0)
            self.table_frees.append([])
        self.table_mm[table] = mm
        self.mm_tables[mm][region] = table
        return table

    def free_table(self, c, table):
        """The flush returned: the page-table page goes back to the pool, and
        any PSC still pointing at it now points at garbage."""
        self.table_gen[table] += 1
        self.table_pool.append(table)
        self.table_frees[table].append((self.now, c, self.table_mm[table]))
        self.ring(c, abi.TR_TABLE_FREE, table, self.table_mm[table])
        mask = self.table_cachers[table]
        self.table_cachers[table] = 0
        while mask:
            low = mask & -mask
            x = low.bit_length() - 1
            mask ^= low
            if self.hung[x] or self.cstate[x] >= 0:
                continue
            for slot in range(self.psc_n):
                if self.psc_table[x][slot] == table and self.psc_stale(x, slot):
                    self.arm_walk(x, slot)

    def cpumask_set_cpu(self, c, mm, t):
        t = self.atomic(c, self.mm_line(mm, 1), t)
        self.mm_mask[mm] |= 1 << c
        return t

    def cpumask_clear_cpu(self, c, mm, t):
        t = self.atomic(c, self.mm_line(mm, 1), t)
        self.mm_mask[mm] &= ~(1 << c)
        self.ring(c, abi.TR_CPUMASK_CLEAR, mm)
        return t

    def mmgrab(self, c, mm, t):
        self.mm_count[mm] += 1
        return self.atomic(c, self.mm_line(mm, 0), t)

    def mmdrop(self, c, mm, t):
        """Drop one mm_count reference; returns (t, reached zero)."""
        self.mm_count[mm] -= 1
        return self.atomic(c, self.mm_line(mm, 0), t), self.mm_count[mm] == 0

    def free_mm(self, c, mm):
        """__mmdrop() freeing the mm_struct. The oracle's lazy_mm_use_after_free
        check: no CPU may still reference it, lazily or through CR3."""
        rec = (self.now, c, abi.TR_MM_FREE, mm, 0)
        for x in range(self.ncpu):
            if (self.active_mm[x] == mm and self.lazy_ref[x]) or self.loaded_mm[x] == mm:
                self.report(abi.V_LAZY_MM_UAF, abi.SEV_ERROR, x, (rec,))
                # The real CPU now runs on freed memory; the model drops the
                # dangling reference so the rest of the run stays meaningful.
                self.active_mm[x] = INIT_MM
                self.lazy_ref[x] = 0
                if self.loaded_mm[x] == mm:
                    self.loaded_mm[x] = INIT_MM
                    self.loaded_asid[x] = INIT_ASID if self.profile.pcid else 0
                    self.is_lazy[x] = 0
        self.ring(c, abi.TR_MM_FREE, mm)

    # --------------------------------------------------- arch/x86/mm/tlb.c
    def choose_new_asid(self, c, mm, next_tlb_gen):
        if not self.profile.pcid:
            return 0, True
        if mm == INIT_MM:
            return INIT_ASID, False
        ids = self.ctx_id[c]
        ctx = self.mm_ctx[mm]
        for asid in range(TLB_NR_DYN_ASIDS):
            if ids[asid] == ctx:
                return asid, self.ctx_gen[c][asid] < next_tlb_gen
        asid = self.next_asid[c]
        self.next_asid[c] += 1
        if asid >= TLB_NR_DYN_ASIDS:
            asid = 0
            self.next_asid[c] = 1
        return asid, True

    def switch_mm_irqs_off(self, c, nxt, t):
        prev = self.loaded_mm[c]
        was_lazy = self.is_lazy[c]
        self.is_lazy[c] = 0
        if prev == nxt:
            if was_lazy and nxt != INIT_MM:
                # Leaving lazy mode on the same mm: catch up through tlb_gen.
                # (v4.14-rc1 had taken this CPU out of mm_cpumask; re-add it
                # before reading tlb_gen so no flush can be missed.)
                if not (self.mm_mask[nxt] >> c) & 1:
                    t = self.cpumask_set_cpu(c, nxt, t)
                t = self.read_line(c, self.mm_line(nxt, 2), t + self.c_mb)
                asid = self.loaded_asid[c]
                if self.ctx_gen[c][asid] < self.mm_gen[nxt]:
                    self.flush_asid(c, asid)
                    self.ctx_gen[c][asid] = self.mm_gen[nxt]
                    self.n_full_flushes += 1
                    self.n_cr3 += 1
                    t += self.c_full_flush
            return t
        # Stop remote flushes for the previous mm, start them for the next.
        if prev != INIT_MM and (self.mm_mask[prev] >> c) & 1:
            t = self.cpumask_clear_cpu(c, prev, t)
        if nxt != INIT_MM and not (self.mm_mask[nxt] >> c) & 1:
            t = self.cpumask_set_cpu(c, nxt, t)
        t = self.read_line(c, self.mm_line(nxt, 2), t)
        gen = self.mm_gen[nxt]
        asid, need_flush = self.choose_new_asid(c, nxt, gen)
        self.n_cr3 += 1
        if need_flush:
            self.flush_asid(c, asid)
            self.ctx_id[c][asid] = self.mm_ctx[nxt]
            self.ctx_gen[c][asid] = gen
            self.n_full_flushes += 1
            t += self.c_full_flush
        else:
            t += self.c_cr3
        self.loaded_mm[c] = nxt
        self.loaded_asid[c] = asid
        self.ring(c, abi.TR_SWITCH_MM, prev, nxt)
        if not need_flush:
            self.arm_walks(c)
        return t

    def leave_mm(self, c, t):
        if self.loaded_mm[c] == INIT_MM:
            return t
        self.ring(c, abi.TR_LEAVE_MM, self.loaded_mm[c])
        return self.switch_mm_irqs_off(c, INIT_MM, t)

    def enter_lazy_tlb(self, c, t):
        mm = self.loaded_mm[c]
        if mm == INIT_MM:
            return t
        if self.k_lazy_tlb == abi.LAZY_SWITCH_TO_INIT:
            # seed 001: with PCID, switch to init_mm (own ASID, no flush) and
            # leave mm_cpumask: no lazy mode, no IPIs to lazy CPUs.
            return self.switch_mm_irqs_off(c, INIT_MM, t)
        self.is_lazy[c] = 1
        self.ring(c, abi.TR_LAZY, mm)
        if self.k_lazy_cpumask == abi.CPUMASK_CLEAR:
            t = self.cpumask_clear_cpu(c, mm, t)    # v4.14-rc1 (94b1b03b519b)
        return t

    def flush_tlb_func(self, c, call, t):
        """Bring this CPU's TLB up to date with call.mm's tlb_gen."""
        mm = self.loaded_mm[c]
        if mm == INIT_MM:
            return t + self.c_flush_func
        if self.is_lazy[c]:
            # "We need to at least flush our paging-structure cache ... just
            # switch to init_mm."
            self.ring(c, abi.TR_LEAVE_MM, mm)
            return self.switch_mm_irqs_off(c, INIT_MM, t + self.c_flush_func)
        if call.mm != mm:
            return t + self.c_flush_func        # we switched away since
        asid = self.loaded_asid[c]
        local_gen = self.ctx_gen[c][asid]
        mm_gen = self.mm_gen[mm]
        t += self.c_flush_func
        if local_gen >= mm_gen:
            return t                             # a concurrent flush caught us up
        if (call.npages != TLB_FLUSH_ALL and call.new_gen == local_gen + 1
                and call.new_gen == mm_gen):
            for page in range(call.start, call.start + call.npages):
                self.invlpg(c, asid, page)
            # INVLPG also drops every paging-structure-cache entry of the
            # current PCID (Intel SDM Vol. 3, 4.10.4.1).
            self.psc_epoch[c][asid] += 1
            self.n_invlpg += call.npages
            self.ctx_gen[c][asid] = call.new_gen
            return t + self.c_invlpg * call.npages
        self.flush_asid(c, asid)
        self.n_full_flushes += 1
        self.ctx_gen[c][asid] = mm_gen
        return t + self.c_full_flush

    def flush_tlb_mm_range(self, c, mm, start, npages, freed, snap, tables, task, cont, t):
        t0 = t
        t = self.atomic(c, self.mm_line(mm, 2), t)       # inc_mm_tlb_gen()
        self.mm_gen[mm] += 1
        cid = self.next_call
        self.next_call += 1
        call = self.calls[cid] = Call(CALL_FLUSH, c, mm, task, cont, t0)
        call.start = start
        call.npages = TLB_FLUSH_ALL if npages == TLB_FLUSH_ALL or npages > self.k_ceiling \
            else npages
        call.new_gen = self.mm_gen[mm]
        call.freed = freed
        call.snap = snap
        call.tables = tables
        # async flush is only safe when no page table is freed (seed 002, rule 1)
        call.wait_ack = self.k_flush_wait == abi.WAIT_ACK and not freed
        # Which CPUs in mm_cpumask get an IPI: lazy ones only when the knobs
        # say so (v4.20: only when tables are freed).
        t = self.read_line(c, self.mm_line(mm, 1), t)
        # native_flush_tlb_multi: on_each_cpu_mask() when every CPU in the
        # mask is flushed anyway, else on_each_cpu_cond_mask(), which reads
        # each CPU's cpu_tlbstate_shared.is_lazy line
        flush_all = (self.k_flush_lazy == abi.FLUSH_LAZY_ALWAYS
                     or (freed and self.k_flush_lazy == abi.FLUSH_LAZY_FREED))
        targets = []
        mask = self.mm_mask[mm] & ~(1 << c)
        while mask:
            low = mask & -mask
            x = low.bit_length() - 1
            mask ^= low
            if not flush_all or self.hook is not None:
                t += self.xfer[self.dist(c, x)]
            lazy = self.is_lazy[x]
            send = (not lazy or self.k_flush_lazy == abi.FLUSH_LAZY_ALWAYS
                    or (freed and self.k_flush_lazy == abi.FLUSH_LAZY_FREED))
            if self.hook is not None:
                info = FlushInfo(mm, start, None if call.npages == TLB_FLUSH_ALL else npages,
                                 call.new_gen, freed, c, bool(lazy), send)
                send = bool(self.hook(x, info))
            if send:
                targets.append(x)
            else:
                self.ring(c, abi.TR_SKIP, x, mm)
        local = self.loaded_mm[c] == mm
        if local and self.k_flush_local == abi.LOCAL_BEFORE_REMOTE:
            t = self.flush_tlb_func(c, call, t)
        t = self.native_flush_tlb_multi(c, cid, call, targets, t)
        if local and self.k_flush_local == abi.LOCAL_CONCURRENT:
            t = self.flush_tlb_func(c, call, t)
        self.ring(c, abi.TR_FLUSH, mm, call.pending)
        self.finish_sending(c, cid, call, t)

    def native_flush_tlb_multi(self, c, cid, call, targets, t):
        """Send the IPIs. With KVM's PV flush (kvm_flush_tlb_multi), a
        preempted vCPU gets no IPI: the host flushes it at its next VM entry."""
        for x in targets:
            if self.pv:
                resume = self.preempted_until(x, t)
                if resume:
                    self.pv_pending[x] = max(self.pv_pending[x], resume)
                    self.ring(c, abi.TR_PV_DEFER, x, call.mm)
                    continue
            t = self.send_ipi(c, x, cid, call, t)
        return t

    def send_ipi(self, c, x, cid, call, t):
        """__smp_call_function_many(): llist_add() the request to x's
        call_single_queue; only if the queue was empty is an IPI sent -- an
        IPI already on its way drains every request queued behind it."""
        call.pending += 1
        call.targets |= 1 << x
        if self.hung[x]:
            self.arm_watchdog(cid, call)
        queue = self.csdq[x]
        queue.append(cid)
        t += self.c_atomic + self.xfer[self.dist(c, x)]      # llist_add's cmpxchg
        if len(queue) > 1:
            return t
        t += self.c_ipi_send
        self.n_ipis += 1
        arrival = t + self.ipi_lat[self.dist(c, x)]
        if self.ipi_jitter:
            arrival += self.rng.below(self.ipi_jitter)
        self.push(arrival, x, EV_IPI, 0, 0)
        return t

    def finish_sending(self, c, cid, call, t):
        call.local_done = t
        if call.pending == 0:
            self.push(t, c, EV_CALL_DONE, cid)

    # -------------------------------------------------------- IPI delivery
    def ev_ipi(self, x, _, delivered):
        if self.hung[x]:
            return      # the watchdog was armed when the request was queued
        now = self.now
        start = now
        if not delivered:
            self.vcpu_sync(x)
            if self.cstate[x] >= 0:
                # The IPI wakes an idle CPU: it pays the C-state's exit latency.
                self.n_ipis_to_idle += 1
                start += self.wake_from_idle(x, 1)
            if self.virt:
                start = max(start, self.preempted_until(x, now))
        start = max(start, self.irqs_off_until[x], self.irq_busy[x])
        if start > now:
            self.irq_busy[x] = max(self.irq_busy[x], start)
            self.push(start, x, EV_IPI, 0, 1)
            return
        self.vcpu_sync(x)
        self.ipis_received[x] += 1
        if self.is_lazy[x]:
            self.n_ipis_to_lazy += 1
        # flush_smp_call_function_queue(): take every queued request at once
        taken = self.csdq[x]
        self.csdq[x] = []
        t = now + self.c_irq
        for cid in taken:
            t = self.run_call(x, cid, self.calls[cid], t)
        self.interrupted(x, now, t)

    def run_call(self, x, cid, call, t):
        """One queued cross-call in the IPI handler on x; returns when done."""
        self.ring(x, abi.TR_IPI, call.kind, call.initiator)
        if call.kind == CALL_FLUSH:
            if call.wait_ack:
                ack = t + self.c_csd      # copy the request, unlock the csd, then flush
                t = self.flush_tlb_func(x, call, ack)
            else:
                t = self.flush_tlb_func(x, call, t) + self.c_csd
                ack = t
        elif call.kind == CALL_UNLAZY:
            t = self.unlazy(x, call.mm, t) + self.c_csd
            ack = t
        else:  # CALL_MEMBARRIER: ipi_mb()
            t += self.c_mb + self.c_csd
            ack = t
        arrival = ack + self.xfer[self.dist(x, call.initiator)]
        call.done_at = max(call.done_at, arrival)
        call.pending -= 1
        if call.pending == 0:
            self.push(max(call.done_at, call.local_done), call.initiator, EV_CALL_DONE, cid)
        return t

    def arm_watchdog(self, cid, call):
        if not call.watchdog:
            call.watchdog = True
            self.push(call.t0 + self.watchdog, call.initiator, EV_WATCHDOG, cid)

    def ev_watchdog(self, c, cid):
        call = self.calls.get(cid)
        if call is None:
            return
        extra = [(self.hung_at[x], x, abi.TR_HUNG, x, 0) for x in range(self.ncpu)
                 if self.hung[x] and (call.targets >> x) & 1]
        self.report(abi.V_HANG, abi.SEV_HANG, c, extra)

    def ev_call_done(self, c, cid):
        call = self.calls.pop(cid)
        now = self.now
        mm = call.mm
        if call.kind == CALL_FLUSH:
            self.flush_lat.append(now - call.t0)
            ret, ret_at = self.mm_ret[mm], self.mm_ret_at[mm]
            for page, ver in call.snap:
                if ver > ret[page]:
                    ret[page] = ver
                    ret_at[page] = (now, c)
            for table in call.tables:
                self.free_table(c, table)
        if call.cont == CONT_STEP:
            self.schedule_step(c, now)
        elif call.cont == CONT_EXIT_MMAP:
            self.exit_mmap_done(c, call.task, mm, now)
        else:  # CONT_EXIT_FREE
            self.free_mm(c, mm)
            self.exit_done(c, call.task, now)

    # -------------------------------------------------------------- idle
    def wake_from_idle(self, c, by_ipi):
        """Leave the C-state; returns the exit latency paid. Entering a state
        is taken to last as long as leaving it: an interrupt that arrives
        during entry aborts it and pays only the time spent so far (MWAIT
        does not sleep on a pending interrupt)."""
        state = self.cstate[c]
        self.cstate[c] = -1
        self.n_idle_wakeups += 1
        self.ring(c, abi.TR_WAKE, by_ipi, state)
        self.arm_walks(c)
        return min(self.cs_exit[state], self.now - self.idle_since[c])

    def idle_loop(self, c):
        if self.runq[c]:
            self.schedule(c, self.now)
            return
        timers = self.timers[c]
        predicted = timers[0] - self.now if timers else None
        state = -1
        for i, residency in enumerate(self.cs_residency):
            if predicted is None or residency <= predicted:
                state = i
        if state < 0:
            return          # poll in C0 until the next wake-up
        self.cstate[c] = state
        self.idle_since[c] = self.now
        self.ring(c, abi.TR_IDLE, state)
        if self.cs_flushed[state]:
            self.flush_everything(c)     # the core loses its TLB and PSC
            if self.k_idle_leave == abi.IDLE_LEAVE_FLUSHED:
                self.leave_mm(c, self.now)

    # ---------------------------------------------------------- scheduler
    def schedule(self, c, t):
        nxt = self.runq[c].popleft() if self.runq[c] else -1
        t = self.context_switch(c, nxt, t)
        self.schedule_step(c, t)

    def context_switch(self, c, nxt, t):
        """kernel/sched/core.c context_switch(): the mm half."""
        t += self.c_ctxsw
        self.cur[c] = nxt
        mm = self.task_mm[nxt] if nxt >= 0 else INIT_MM
        if mm != INIT_MM:
            t = self.switch_mm_irqs_off(c, mm, t)
            if self.k_barrier == abi.BARRIER_EXPLICIT:
                t += self.c_mb        # seed 003: make the post-switch-mm barrier explicit
                self.n_switch_mb += 1
            if self.lazy_ref[c]:
                t = self.drop_lazy_ref(c, t)   # finish_task_switch(): mmdrop(prev->active_mm)
            self.active_mm[c] = mm
        elif self.active_mm[c] != INIT_MM and not self.lazy_ref[c]:
            # user -> kernel thread: borrow the mm lazily
            t = self.take_lazy_ref(c, self.active_mm[c], t)
            t = self.enter_lazy_tlb(c, t)
        self.ring(c, abi.TR_SWITCH, nxt, mm)
        self.irqs_off_until[c] = t
        return t

    def take_lazy_ref(self, c, mm, t):
        self.active_mm[c] = mm
        self.lazy_ref[c] = 1
        if self.k_lazy_ref == abi.REF_REFCOUNT:
            return self.mmgrab(c, mm, t)
        if self.k_lazy_ref == abi.REF_HAZARD:
            self.hazard[c] = mm                 # a per-CPU store, no shared line
        return t

    def drop_lazy_ref(self, c, t):
        mm = self.active_mm[c]
        self.lazy_ref[c] = 0
        if self.k_lazy_ref == abi.REF_REFCOUNT:
            t, last = self.mmdrop(c, mm, t)
            if last:
                self.free_mm(c, mm)
        elif self.k_lazy_ref == abi.REF_HAZARD:
            self.hazard[c] = INIT_MM
        return t

    def unlazy(self, x, mm, t):
        """Shootdown / hazard-pointer handler: stop using a dying mm lazily."""
        if self.active_mm[x] == mm and self.lazy_ref[x]:
            if self.loaded_mm[x] == mm:
                self.ring(x, abi.TR_LEAVE_MM, mm)
                t = self.switch_mm_irqs_off(x, INIT_MM, t)
            self.active_mm[x] = INIT_MM
            self.lazy_ref[x] = 0
            self.hazard[x] = INIT_MM
        return t

    # ----------------------------------------------------------- events
    def ev_wake(self, c, task, timed):
        if timed:
            timers = self.timers[c]
            del timers[bisect_left(timers, self.now)]
        if self.task_mm[task] < 0:                      # fork+exec / clone
            tmpl = self.task_tmpl[task]
            if tmpl < 0:
                self.task_mm[task] = INIT_MM            # a kernel thread
            elif self.tmpl_mm[tmpl] < 0:
                self.task_mm[task] = self.exec_mm(tmpl)
            else:
                self.task_mm[task] = self.tmpl_mm[tmpl]     # a thread of a live process
        self.runq[c].append(task)
        if self.cur[c] < 0 and self.step_at[c] < 0 and not self.hung[c]:
            t = self.now
            if self.cstate[c] >= 0:
                self.vcpu_sync(c)
                t += self.wake_from_idle(c, 0)
            self.schedule_step(c, t)

    def ev_spec_walk(self, c, slot, serial):
        if self.hung[c] or self.psc_serial[c][slot] != serial:
            return
        self.vcpu_sync(c)
        if self.cstate[c] >= 0:
            return                  # halted: walks resume (re-armed) at wake-up
        if self.virt:
            resume = self.preempted_until(c, self.now)
            if resume:
                self.push(resume + 1 + self.rng.below(self.walk_span), c, EV_SPEC_WALK,
                          slot, serial)
                return
        if not self.psc_stale(c, slot):
            return
        self.n_spec_walks += 1
        table = self.psc_table[c][slot]
        self.freed_table_walk(c, slot, table)

    def freed_table_walk(self, c, slot, table):
        mm = self.psc_mm[c][slot]
        self.ring(c, abi.TR_WALK, table, mm)
        # the free that invalidated this entry: the first one after its fill
        freed_at, freed_by, _ = self.table_frees[table][self.psc_gen[c][slot]]
        self.report(abi.V_FREED_TABLE_WALK, self.walk_severity, c,
                    ((self.psc_at[c][slot], c, abi.TR_PSC_FILL, table, mm),
                     (freed_at, freed_by, abi.TR_TABLE_FREE, table, mm)))
        # the walk replaced the entry with whatever the reused page held
        key = self.psc_key[c][slot]
        del self.psc_map[c][key]
        self.psc_key[c][slot] = -1
        if self.walk_severity == abi.SEV_HANG:
            self.hung[c] = 1          # the 2017 AMD hang: this CPU stops answering
            self.hung_at[c] = self.now
            self.step_token[c] += 1
            for cid in self.csdq[c]:  # requests it will never take: their initiators hang
                self.arm_watchdog(cid, self.calls[cid])
            self.ring(c, abi.TR_HUNG, c)

    def ev_step(self, c):
        if self.hung[c]:
            return
        self.vcpu_sync(c)
        task = self.cur[c]
        if task < 0:
            self.idle_loop(c)
            return
        ops = self.task_ops[task]
        pc = self.task_pc[task]
        now = self.now
        if pc >= len(ops):
            self.do_exit(c, task, now)
            return
        code, a, b, d = ops[pc], ops[pc + 1], ops[pc + 2], ops[pc + 3]
        self.task_pc[task] = pc + 4
        self.n_ops += 1
        mm = self.task_mm[task]
        if code == abi.OP_ACCESS:
            self.schedule_step(c, self.access(c, mm, a, b, now))
        elif code == abi.OP_COMPUTE:
            self.schedule_step(c, now + a)
        elif code == abi.OP_MADVISE or code == abi.OP_MUNMAP or code == abi.OP_MPROTECT:
            self.change_ptes(c, task, mm, code, a, b, d, now)
        elif code == abi.OP_SLEEP:
            wake = now + self.c_syscall + a
            insort(self.timers[c], wake)
            self.push(wake, c, EV_WAKE, task, 1)
            self.schedule(c, now + self.c_syscall)
        elif code == abi.OP_YIELD:
            if self.runq[c]:
                self.runq[c].append(task)
                self.schedule(c, now + self.c_syscall)
            else:
                self.schedule_step(c, now + self.c_syscall)
        elif code == abi.OP_MIGRATE:
            if a == c or not 0 <= a < self.ncpu:
                self.schedule_step(c, now)
            else:
                self.push(now + self.c_ctxsw, a, EV_WAKE, task, 0)
                self.schedule(c, now)
        elif code == abi.OP_MARK:
            marks = self.task_marks[task]
            if marks[0] < 0:
                marks[0] = now
            marks[1] = now
            marks[2] += 1
            self.schedule_step(c, now)
        elif code == abi.OP_MEMBARRIER:
            self.membarrier(c, task, mm, now)
        elif code == abi.OP_EXIT:
            self.task_pc[task] = len(ops)
            self.do_exit(c, task, now)
        else:
            raise RuntimeError(f"unknown op {code} in task {task}")

    # ------------------------------------------------------------ user ops
    def access(self, c, mm, first, npages, t):
        if mm == INIT_MM:
            return t
        asid = self.loaded_asid[c]
        epoch = self.tlb_epoch[c][asid]
        tmap, tver, tep = self.tlb_map[c], self.tlb_ver[c], self.tlb_ep[c]
        ret = self.mm_ret[mm]
        for page in range(first, first + npages):
            key = (asid << 32) | page
            slot = tmap.get(key)
            if slot is not None and tep[slot] == epoch:
                if tver[slot] < ret[page]:
                    self.stale_tlb(c, mm, page)
                t += self.c_access
                continue
            self.n_tlb_misses += 1
            t = self.page_walk(c, mm, asid, page, t)
        return t

    def stale_tlb(self, c, mm, page):
        """The oracle: this access used a translation older than one whose
        flush already returned to its initiator."""
        self.ring(c, abi.TR_ACCESS_STALE, page, mm)
        at, by = self.mm_ret_at[mm][page]
        self.report(abi.V_STALE_TLB, abi.SEV_ERROR, c, ((at, by, abi.TR_FLUSH, mm, -1),))

    def page_walk(self, c, mm, asid, page, t):
        region = page // PAGES_PER_TABLE
        pkey = (asid << 32) | region
        slot = self.psc_map[c].get(pkey)
        hit = slot is not None and self.psc_ep[c][slot] == self.psc_epoch[c][asid]
        if hit and self.psc_gen[c][slot] != self.table_gen[self.psc_table[c][slot]]:
            self.freed_table_walk(c, slot, self.psc_table[c][slot])
            hit = False
            if self.hung[c]:
                return t
        if hit:
            t += self.c_walk_psc
        else:
            t += self.c_walk
            table = self.mm_tables[mm][region]
            if table < 0:
                table = self.alloc_table(mm, region)
            self.psc_fill(c, pkey, table)
        present = self.mm_present[mm]
        if not present[page]:
            present[page] = 1
            self.mm_ver[mm][page] += 1
            self.n_faults += 1
            t += self.c_fault
        self.tlb_fill(c, (asid << 32) | page, self.mm_ver[mm][page], self.tlb_epoch[c][asid])
        return t

    def change_ptes(self, c, task, mm, code, first, npages, free_tables, t):
        """madvise(DONTNEED) / munmap / mprotect: change PTEs, then one
        flush_tlb_mm_range for the range (mmu_gather)."""
        t += self.c_syscall
        present, ver = self.mm_present[mm], self.mm_ver[mm]
        snap = []
        last = min(first + npages, len(present))
        for page in range(first, last):
            if present[page]:
                if code != abi.OP_MPROTECT:
                    present[page] = 0
                ver[page] += 1
                snap.append((page, ver[page]))
        t += (self.c_pte if code == abi.OP_MPROTECT else self.c_zap) * len(snap)
        tables = []
        if code == abi.OP_MUNMAP and free_tables:
            # free_pgtables(): only page-table pages whose whole 2 MiB is unmapped
            mm_tables = self.mm_tables[mm]
            for region in range(-(-first // PAGES_PER_TABLE), last // PAGES_PER_TABLE):
                if mm_tables[region] >= 0:
                    tables.append(mm_tables[region])
                    mm_tables[region] = -1
        if not snap and not tables:
            self.schedule_step(c, t)
            return
        self.flush_tlb_mm_range(c, mm, first, last - first, bool(tables), snap, tables, task,
                                CONT_STEP, t)

    def membarrier(self, c, task, mm, t):
        """MEMBARRIER_CMD_PRIVATE_EXPEDITED: IPI every CPU whose rq->curr runs
        this mm (smp_mb() before and after)."""
        t += self.c_syscall + 2 * self.c_mb
        cid = self.next_call
        self.next_call += 1
        call = self.calls[cid] = Call(CALL_MEMBARRIER, c, mm, task, CONT_STEP, self.now)
        for x in range(self.ncpu):
            if x != c and self.cur[x] >= 0 and self.task_mm[self.cur[x]] == mm:
                t = self.send_ipi(c, x, cid, call, t)
        self.finish_sending(c, cid, call, t)

    # ------------------------------------------------------------- exit
    def do_exit(self, c, task, t):
        mm = self.task_mm[task]
        if mm == INIT_MM:
            self.exit_done(c, task, t)
            return
        self.ring(c, abi.TR_EXIT, task, mm)
        # exit_mm(): the task keeps mm as its active_mm, borrowed lazily,
        # until it schedules away for the last time.
        t = self.take_lazy_ref(c, mm, t)
        t = self.enter_lazy_tlb(c, t)
        self.task_mm[task] = INIT_MM
        self.mm_users[mm] -= 1
        if self.mm_users[mm]:
            self.exit_done(c, task, t)
            return
        self.exit_mmap(c, task, mm, t)

    def exit_mmap(self, c, task, mm, t):
        """The last user is gone: unmap everything and free every page table,
        with one flush (tlb_finish_mmu with freed_tables)."""
        present, ver = self.mm_present[mm], self.mm_ver[mm]
        zapped = 0
        for page in range(len(present)):
            if present[page]:
                present[page] = 0
                ver[page] += 1
                zapped += 1
        t += self.c_zap * zapped
        tables = [table for table in self.mm_tables[mm] if table >= 0]
        self.mm_tables[mm] = [-1] * len(self.mm_tables[mm])
        # no snapshot: nothing can access a dead mm's pages any more
        self.flush_tlb_mm_range(c, mm, 0, TLB_FLUSH_ALL, True, (), tables, task,
                                CONT_EXIT_MMAP, t)

    def exit_mmap_done(self, c, task, mm, t):
        # mmput() -> mmdrop() of the reference all users shared
        t, last = self.mmdrop(c, mm, t)
        if not last:
            self.exit_done(c, task, t)
            return
        # __mmdrop(): lazy users that hold no reference must be told first
        if self.k_lazy_ref in (abi.REF_SHOOTDOWN, abi.REF_HAZARD):
            cid = self.next_call
            self.next_call += 1
            call = self.calls[cid] = Call(CALL_UNLAZY, c, mm, task, CONT_EXIT_FREE, self.now)
            # x86 clears a CPU from mm_cpumask when it leaves the mm, so the
            # CPUs that may still borrow it are all of them.
            for x in range(self.ncpu):
                if self.k_lazy_ref == abi.REF_HAZARD:
                    t += self.xfer[self.dist(c, x)]           # read x's hazard pointer
                    if self.hazard[x] != mm:
                        continue
                if x == c:
                    t = self.unlazy(c, mm, t)
                else:
                    t = self.send_ipi(c, x, cid, call, t)
            self.finish_sending(c, cid, call, t)
            return
        self.free_mm(c, mm)
        self.exit_done(c, task, t)

    def exit_done(self, c, task, t):
        self.task_done[task] = t
        self.schedule(c, t)

    # ----------------------------------------------------------- result
    def raw_result(self):
        done = [t for t in self.task_done if t >= 0]
        finished = len(done) == len(self.task_done)
        end = max(done) if finished and done else self.now
        return {
            "end": end,
            "finished": finished,
            "counters": {
                "ipis": self.n_ipis, "ipis_to_idle": self.n_ipis_to_idle,
                "ipis_to_lazy": self.n_ipis_to_lazy, "cr3_writes": self.n_cr3,
                "full_flushes": self.n_full_flushes, "invlpg": self.n_invlpg,
                "tlb_misses": self.n_tlb_misses, "atomic_contention": self.n_contention,
                "idle_wakeups": self.n_idle_wakeups, "ops": self.n_ops,
                "page_faults": self.n_faults, "spec_walks": self.n_spec_walks,
                "switch_mm_barriers": self.n_switch_mb,
            },
            "flush_latency": list(self.flush_lat),
            "ipis_received": list(self.ipis_received),
            "marks": [tuple(m) for m in self.task_marks],
            "task_pc": list(self.task_pc),
            "violation_counts": list(self.violation_counts),
            "violations": list(self.violations),
        }

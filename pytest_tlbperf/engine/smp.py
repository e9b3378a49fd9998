"""kernel/smp.c: cross-calls. A request is queued on the target's
call_single_queue with llist_add(); only the request that finds the queue
empty sends an IPI, and one interrupt drains every request queued behind
it (flush_smp_call_function_queue). The initiator waits for every target's
ack (csd unlock), or -- with async flushing -- for every target to have
copied the request; an initiator that waits too long is the oracle's
`hang`.

IPIs are events: send cost, delivery latency by distance, the target's
C-state exit when it idles, a preempted vCPU's wait for the host, and
IRQs-off sections on the target delay the handler.
"""

from __future__ import annotations

from . import abi
from .abi import (
    CALL_FLUSH,
    CALL_UNLAZY,
    CONT_EXIT_MMAP,
    CONT_STEP,
    EV_CALL_DONE,
    EV_IPI,
    EV_WATCHDOG,
)
from .core import TLB_FLUSH_ALL


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


class Smp:
    """call_single_queue and IPI delivery; mixed into Machine."""

    def init_smp(self):
        n = self.ncpu
        self.csdq = [[] for _ in range(n)]  # call_single_queue: requests not yet taken
        self.csq_line = [-1] * n            # ... and the cache line of its llist head
        self.info_line = [-1] * n           # each CPU's per-CPU flush_tlb_info
        self.calls = {}
        self.next_call = 0

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
        t = self.atomic(c, self.cpu_line(self.csq_line, x), t)   # llist_add's cmpxchg
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
            else:
                self.idle_exit(x, now)
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
        # (llist_del_all: an xchg on the queue head the senders fight over)
        taken = self.csdq[x]
        self.csdq[x] = []
        t = self.atomic(x, self.cpu_line(self.csq_line, x), now + self.c_irq)
        for cid in taken:
            t = self.run_call(x, cid, self.calls[cid], t)
        self.interrupted(x, now, t)

    def run_call(self, x, cid, call, t):
        """One queued cross-call in the IPI handler on x; returns when done."""
        self.ring(x, abi.TR_IPI, call.kind, call.initiator)
        if call.kind == CALL_FLUSH:
            # the initiator's per-CPU flush_tlb_info, written for this flush
            t = self.read_line(x, self.cpu_line(self.info_line, call.initiator), t)
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

    def ev_call_done(self, c, cid):
        call = self.calls.pop(cid)
        now = self.now
        mm = call.mm
        if call.kind == CALL_FLUSH:
            if self.measuring and call.t0 >= self.program.warmup:
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

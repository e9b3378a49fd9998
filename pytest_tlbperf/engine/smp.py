"""kernel/smp.c: cross-calls. A request is queued on the target's
call_single_queue with llist_add(); only the request that finds the queue
empty sends an IPI, and one interrupt drains every request queued behind
it (flush_smp_call_function_queue). Each request lands on its queue when
the sender's loop reaches that target, and the handler takes the queue
after the interrupt entry, as the kernel does; so a storm's requests meet
in batches whose size the timing decides. The initiator waits for every
target's ack (csd unlock), or -- with async flushing -- for every target to
have copied the request; an initiator that waits too long is the oracle's
`hang`.

IPIs are events: send cost, delivery latency by distance, the target's
C-state exit when it idles, a preempted vCPU's wait for the host, and
IRQs-off sections on the target delay the handler.
"""

from __future__ import annotations

from collections import deque

from . import abi
from .abi import (CALL_CHECK, CALL_FLUSH, CALL_MEMBARRIER, CALL_UNLAZY, CONT_EXIT_MMAP,
                  CONT_HAZPTR, CONT_STEP, CONT_TABLE_SYNC, EV_CALL_DONE, EV_CSD, EV_IPI,
                  EV_QUEUE, EV_SEND, EV_WATCHDOG)
from .core import INIT_MM, TLB_FLUSH_ALL

APIC_CLUSTER, APIC_PHYSICAL, APIC_KVM_PV = range(3)
APIC_MODES = ("cluster", "physical", "kvm_pv")      # profiles.APIC_MODES, in this order


class Call:
    """One cross-call in flight: a flush_tlb_info plus its call_single_data
    bookkeeping (who waits, how many acks are missing, what happens next)."""

    __slots__ = ("kind", "initiator", "mm", "start", "npages", "new_gen", "freed", "snap",
                 "tables", "cont", "task", "t0", "pending", "done_at", "local_done",
                 "wait_ack", "watchdog", "targets", "rest", "then", "any_mm", "consider",
                 "unlock", "irq0")

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
        self.rest = ()             # hazptr teardown: the CPUs still to retire
        self.then = 0              # CONT_TABLE_SYNC: the continuation after it
        self.any_mm = False        # a batched flush (reclaim): info->mm is NULL
        self.consider = False      # consider_global_asid() once the IPIs are done
        self.unlock = False        # mmap_read_unlock() once the flush returned
        self.irq0 = 0              # the initiator's interrupt time when it began


class Smp:
    """call_single_queue and IPI delivery; mixed into Machine."""

    def init_smp(self):
        n = self.ncpu
        self.csdq = [[] for _ in range(n)]  # call_single_queue: requests not yet taken
        self.handling = [None] * n          # requests an IPI handler took and runs
        self.in_handler = [0] * n
        self.ipi_pending = [0] * n          # an IPI arrived while the handler ran
        self.csq_line = [-1] * n            # ... and the cache line of its llist head
        self.info_line = [-1] * n           # each CPU's per-CPU flush_tlb_info
        # per sender, per target: when the target unlocked the sender's csd
        # (made at a sender's first cross-call)
        self.csd_unlock = [None] * n
        self.irq_cycles = [0] * n           # interrupt time each CPU has spent
        P = self.profile
        self.apic_mode = APIC_MODES.index(P.apic)
        self.apicid = [P.apicid(x) for x in range(n)]
        self.calls = {}
        self.next_call = 0
        self.ipi_need = {}                  # call -> targets whose queue it found empty
        self.irq_start = [0] * n            # when the interrupt being handled began

    def smp_call_function_many(self, c, cid, call, targets, t):
        """smp_call_function_many_cond(): for each target, csd_lock() the
        per-(sender, target) csd -- waiting until the target has unlocked our
        previous request to it -- and llist_add() it to the target's
        call_single_queue; only a queue that was empty needs an IPI (one
        already on its way drains everything queued behind it). Then one
        send_call_function_ipi_mask() for all of those.

        Each llist_add() lands when the loop gets to its target (EV_QUEUE),
        not when the loop starts: a target whose handler drains its queue
        before a slow sender reaches it gets this request in a later batch,
        with an IPI of its own. Which targets need an IPI is known only when
        the loop has passed them all, so the ICR writes happen then (EV_SEND);
        the sender is charged one write per APIC group of all its targets (a
        target whose queue was not empty still shares its cluster's write
        with the others in that cluster, mostly)."""
        unlock = self.csd_unlock[c]
        if unlock is None:
            unlock = self.csd_unlock[c] = [0] * self.ncpu
        self.ipi_need[cid] = []
        for x in targets:
            # csd_lock(): wait until x unlocked our previous request, then own
            # the csd line x wrote last, and fill it in
            t = max(t, unlock[x]) + self.xfer[self.dist(c, x)] + self.c_csd_setup
            call.pending += 1
            call.targets |= 1 << x
            if self.hung[x]:
                self.arm_watchdog(cid, call)
            t = self.atomic(c, self.cpu_line(self.csq_line, x), t)   # llist_add's cmpxchg
            self.push(t, x, EV_QUEUE, cid)
        groups = len(self.apic_groups(targets))
        if groups:
            self.push(t + max(self.c_ipi_send, 1), c, EV_SEND, cid, t)
        else:
            del self.ipi_need[cid]
        return t + groups * self.c_ipi_send

    def ev_queue(self, x, cid):
        """llist_add() of request cid to x's call_single_queue: the request
        that finds it empty is the one that needs an IPI."""
        queue = self.csdq[x]
        queue.append(cid)
        if len(queue) == 1:
            self.ipi_need[cid].append(x)

    def ev_send(self, c, cid, t):
        """send_call_function_ipi_mask() once the queueing loop that began
        the ICR writes at t is over."""
        self.send_call_function_ipi_mask(c, self.ipi_need.pop(cid), t)

    def send_call_function_ipi_mask(self, c, targets, t):
        """The IPIs, as the APIC driver sends them: x2APIC cluster mode writes
        the ICR once per cluster of 16 APIC IDs (x2apic_send_IPI_mask), physical
        mode once per target, and a KVM guest with PV send-IPI makes one
        KVM_HC_SEND_IPI hypercall per window of 128 APIC IDs (kvm_send_ipi_mask).
        Every target of one write sees its IPI after the write, plus the
        delivery latency by distance."""
        self.n_ipis += len(targets)
        return self.send_ipi_mask(c, targets, t, EV_IPI)

    def send_ipi_mask(self, c, targets, t, ev, a=0):
        """The ICR writes of one vector to `targets` (`apic_groups`), each
        target's event `ev` (with `a`) at its IPI's arrival; the time after
        the last write. The function-call IPI and the RAR RFC's action IPI
        both go this way."""
        for group in self.apic_groups(targets):
            t += self.c_ipi_send
            self.n_icr_writes += 1
            for x in group:
                arrival = t + self.ipi_lat[self.dist(c, x)]
                if self.ipi_jitter:
                    arrival += self.rng.below(self.ipi_jitter)
                self.push(arrival, x, ev, a, 0)
        return t

    def apic_groups(self, targets):
        """The targets by ICR write, in the order they are sent."""
        apic = self.apic_mode
        if apic == APIC_PHYSICAL:
            return [[x] for x in targets]
        span = 16 if apic == APIC_CLUSTER else 128
        groups, where = [], {}
        for x in targets:
            key = self.apicid[x] // span
            if key not in where:
                where[key] = len(groups)
                groups.append([])
            groups[where[key]].append(x)
        return groups

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
        if self.in_handler[x]:
            self.ipi_pending[x] = 1      # the APIC raises it again when the handler returns
            return
        start = max(start, self.irqs_off_until[x], self.irq_busy[x])
        if start > now:
            self.irq_busy[x] = max(self.irq_busy[x], start)
            self.push(start, x, EV_IPI, 0, 1)
            return
        self.vcpu_sync(x)
        self.ipis_received[x] += 1
        if self.is_lazy[x]:
            self.n_ipis_to_lazy += 1
        t = now + self.c_irq
        task = self.cur[x]
        if task >= 0 and self.task_mm[task] != INIT_MM:
            t += self.c_pti                      # the interrupt landed in user mode
        self.irq_cycles[x] += t - now
        self.irq_start[x] = now
        # the handler owns the CPU from here; flush_smp_call_function_queue()
        # takes the queue once the entry is done (EV_CSD with a=1), so
        # requests queued meanwhile ride on this interrupt
        self.in_handler[x] = 1
        self.push(t, x, EV_CSD, 1)
        self.interrupted(x, now, t)

    def ev_csd(self, x, drain=0):
        """The IPI handler on x: first (drain=1) flush_smp_call_function_queue()
        takes every queued request at once (llist_del_all: an xchg on the
        queue head the senders fight over); then each request runs as its
        own event, so what the others do to the lines it touches in the
        meantime is seen. Pushed before interrupted() resumes the idle loop,
        so an idle CPU runs its requests before it can enter a C-state again."""
        if self.hung[x]:
            return
        now = self.now
        if drain:
            taken = self.csdq[x]
            self.csdq[x] = []
            t = self.atomic(x, self.cpu_line(self.csq_line, x), now)
            self.irq_cycles[x] += t - now
            if taken and self.calls[taken[0]].kind == CALL_FLUSH:
                # the interrupt a flush was sent by, entry included
                self.n_flush_cycles += t - self.irq_start[x]
            if taken:
                self.handling[x] = deque(taken)
                self.push(t, x, EV_CSD)
            else:
                self.handler_done(x, t)
            self.interrupted(x, now, t)
            return
        queue = self.handling[x]
        cid = queue.popleft()
        call = self.calls[cid]
        t = self.run_call(x, cid, call, now)
        self.irq_cycles[x] += t - now
        if call.kind == CALL_FLUSH:
            self.n_flush_cycles += t - now
        # the next request, or the IPI that arrived meanwhile, before the
        # idle loop resumes (see ev_ipi)
        if queue:
            self.push(t, x, EV_CSD)
        else:
            self.handler_done(x, t)
        self.interrupted(x, now, t)

    def handler_done(self, x, t):
        self.in_handler[x] = 0
        if self.ipi_pending[x]:
            self.ipi_pending[x] = 0
            self.push(t, x, EV_IPI, 0, 1)

    def run_call(self, x, cid, call, t):
        """One queued cross-call in the IPI handler on x; returns when done."""
        self.ring(x, abi.TR_IPI, call.kind, call.initiator)
        t += self.xfer[self.dist(x, call.initiator)]    # load the csd the initiator wrote
        if call.kind == CALL_FLUSH:
            if self.k_flush_wait != abi.WAIT_ACK:
                # the initiator's per-CPU flush_tlb_info, written for this
                # flush (the async RFC sends it inline in the csd instead)
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
        elif call.kind == CALL_MEMBARRIER:           # ipi_mb()
            t += self.c_mb + self.c_csd
            ack = t
        else:    # CALL_CHECK, CALL_SYNC: a function that only has to have run
            t += self.c_csd
            ack = t
        # csd_unlock(): the store takes the line from the spinning initiator,
        # whose next load brings it back: two transfers until it sees it
        arrival = ack + 2 * self.xfer[self.dist(x, call.initiator)]
        self.csd_unlock[call.initiator][x] = arrival
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
            if call.consider:
                now = self.consider_global_asid(c, call.task, mm, now)
            # the initiator's time in the flush, less the interrupts it
            # handled meanwhile (counted where they ran)
            self.n_flush_cycles += now - call.t0 - (self.irq_cycles[c] - call.irq0)
            if call.unlock:
                now = self.mmap_lock(c, mm, now)
            if self.measuring and call.t0 >= self.program.warmup:
                self.flush_lat.append(now - call.t0)
            ret, ret_at = self.mm_ret[mm], self.mm_ret_at[mm]
            for page, ver in call.snap:
                if ver > ret[page]:
                    ret[page] = ver
                    ret_at[page] = (now, c)
            if call.tables and self.tlb_remove_tables(c, call, now):
                return                   # tlb_remove_table_sync_one() first
        self.call_continue(c, call, now)

    def call_continue(self, c, call, now):
        """What the initiator does once its cross-call has completed."""
        mm = call.mm
        if call.cont == CONT_STEP:
            self.schedule_step(c, now)
        elif call.cont == CONT_EXIT_MMAP:
            self.exit_mmap_done(c, call.task, mm, now)
        elif call.cont == CONT_HAZPTR:
            if call.kind == CALL_UNLAZY:         # then do_check_lazy_tlb, same CPU
                cid = self.next_call
                self.next_call += 1
                check = self.calls[cid] = Call(CALL_CHECK, c, mm, call.task, CONT_HAZPTR, now)
                check.rest = call.rest
                self.finish_sending(c, cid, check,
                                    self.smp_call_function_many(c, cid, check, call.rest[:1],
                                                                now))
            else:
                self.hazptr_retire(c, call.task, mm, call.rest[1:], now)
        elif call.cont == CONT_TABLE_SYNC:
            for table in call.tables:
                self.free_table(c, table)
            call.cont = call.then
            self.call_continue(c, call, now)
        else:  # CONT_EXIT_FREE
            self.free_mm(c, mm)
            self.exit_done(c, call.task, now)

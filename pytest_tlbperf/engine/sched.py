"""kernel/sched/: context switches (the mm half of context_switch(): a user
task switches mm; a kernel thread or the idle task borrows the previous mm
lazily), how a borrowed mm is kept alive (lazy_mm_ref: mmgrab/mmdrop, a
per-CPU hazard pointer, or shootdown IPIs at __mmdrop), sleeping on and
waking through pipes (try_to_wake_up with select_idle_sibling's placement),
exit (kernel/exit.c) and membarrier (kernel/sched/membarrier.c).

Scheduling is per-CPU FIFO: a task runs until it sleeps, blocks, yields,
migrates, blocks in a flush or exits, or -- when others wait on its run
queue -- until its slice (EEVDF's base slice) is used up at an op boundary.
A woken task is not placed ahead of the running one (no wake-up
preemption).

Waking a sleeper (try_to_wake_up):
- where it runs, in the spirit of select_task_rq_fair(): a sync wake-up
  (pipes wake with WF_SYNC) from a waker that is alone on its CPU targets
  the waker's CPU (wake_affine_idle), otherwise the sleeper's previous CPU;
  then select_idle_sibling(): the target if idle, else the previous CPU if
  idle and in the same LLC, else an idle SMT sibling, else the first idle
  CPU of the target's LLC scanning from target+1, else the target. Only
  CPUs in the task's affinity are considered. Left out: wake_wide(),
  wake_affine_weight()'s load arithmetic, recent_used_cpu, SIS_UTIL's scan
  budget, load balancing.
- how the target learns of it: an idle CPU polling its thread flags
  (TIF_POLLING_NRFLAG: the POLL loop and MWAIT C-states) sees the
  need_resched store and wakes without an IPI (set_nr_if_polling); any
  other idle CPU gets a reschedule IPI (`resched_ipis`). Either way it pays
  its C-state's exit. A busy target just gets the task on its run queue.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque

from . import abi
from .abi import CALL_MEMBARRIER, CONT_STEP, EV_WAKE
from .core import INIT_MM
from .smp import Call

# a CPU's hold on the mm it borrows (lazy_ref)
BORROWED, COUNTED = 1, 2

# how a task reaches a CPU's run queue (EV_WAKE's b)
WAKE_ENQUEUE, WAKE_TIMER, WAKE_POLLED, WAKE_IPI = 0, 1, 2, 3


class Sched:
    """Run queues, context switches, lazy mm references, exit; mixed into Machine."""

    def init_sched(self):
        n = self.ncpu
        self.cur = [-1] * n            # running task, -1: the idle task
        self.active_mm = [INIT_MM] * n  # current->active_mm
        self.lazy_ref = [0] * n        # active_mm is borrowed by a kthread / idle
        self.hazard = [INIT_MM] * n    # per-CPU hazard pointer (lazy_mm_ref="hazard_pointer")
        self.hazard_line = [-1] * n    # ... and its cache line, read by the teardown scan
        self.drop_mm = [INIT_MM] * n   # rq->drop_mm: a reference handed over by a teardown
        self.drop_line = [-1] * n      # ... and its cache line
        self.irqs_off_until = [0] * n
        self.irq_busy = [0] * n        # end of the interrupt handler running now
        self.step_token = [0] * n
        self.step_at = [-1] * n
        self.runq = [deque() for _ in range(n)]
        self.timers = [[] for _ in range(n)]  # wake-up times of tasks homed here
        self.run_since = [0] * n       # when the running task was switched in
        self.wakes_pending = [0] * n   # wake-ups on their way to this CPU
        self.rq_line = [-1] * n        # rq->__lock: the waker enqueues under it
        # pipes: bytes written and not read, sleeping readers, the pipe's lock
        nch = self.program.channels
        self.chan_tokens = [0] * nch
        self.chan_waiters = [deque() for _ in range(nch)]
        self.chan_line = [self.new_line() for _ in range(nch)]
        # EEVDF's base slice, 0.75 ms scaled by 1 + ilog2(min(CPUs, 8))
        self.slice = self.profile.cycles_from_ns(750_000 * (1 + min(n, 8).bit_length() - 1))

    def schedule(self, c, t):
        nxt = self.runq[c].popleft() if self.runq[c] else -1
        t = self.context_switch(c, nxt, t)
        self.schedule_step(c, t)

    def context_switch(self, c, nxt, t):
        """kernel/sched/core.c context_switch(): the mm half."""
        t += self.c_ctxsw
        if self.cur[c] < 0 and nxt >= 0:
            self.idle_exit(c, t)
        self.cur[c] = nxt
        self.run_since[c] = t
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
        if self.drop_mm[c] != INIT_MM:
            t = self.mmdrop_lazy(c, t)
        self.ring(c, abi.TR_SWITCH, nxt, mm)
        self.irqs_off_until[c] = t
        return t

    def mmdrop_lazy(self, c, t):
        """finish_task_switch(): drop the reference a hazard-pointer teardown
        handed this CPU (2021 shape)."""
        mm = self.drop_mm[c]
        self.drop_mm[c] = INIT_MM
        t = self.atomic(c, self.cpu_line(self.drop_line, c), t)     # xchg(&rq->drop_mm, NULL)
        t, last = self.mmdrop(c, mm, t)
        if last:
            self.free_mm(c, mm)
        return t

    def take_lazy_ref(self, c, mm, t, counted=False):
        """Borrow mm as active_mm (lazy_ref: 1 by the policy's scheme, 2 a
        counted mmgrab() reference)."""
        self.active_mm[c] = mm
        if counted or self.k_lazy_ref == abi.REF_REFCOUNT:
            self.lazy_ref[c] = COUNTED
            return self.mmgrab(c, mm, t)
        self.lazy_ref[c] = BORROWED
        if self.k_lazy_ref == abi.REF_HAZARD:
            self.hazard[c] = mm                 # a per-CPU store, no shared refcount
            t = self.atomic(c, self.cpu_line(self.hazard_line, c), t, 0)
        return t

    def drop_lazy_ref(self, c, t):
        mm = self.active_mm[c]
        counted = self.lazy_ref[c] == COUNTED
        self.lazy_ref[c] = 0
        if counted:
            t, last = self.mmdrop(c, mm, t)
            if last:
                self.free_mm(c, mm)
        elif self.k_lazy_ref == abi.REF_HAZARD:
            self.hazard[c] = INIT_MM
            t = self.atomic(c, self.cpu_line(self.hazard_line, c), t, 0)
        return t

    def unlazy(self, x, mm, t):
        """Shootdown / hazard-pointer handler: stop using a dying mm lazily."""
        if self.active_mm[x] == mm and self.lazy_ref[x]:
            if self.loaded_mm[x] == mm:
                self.ring(x, abi.TR_LEAVE_MM, mm)
                t = self.switch_mm_irqs_off(x, INIT_MM, t)
            t = self.drop_lazy_ref(x, t)
            self.active_mm[x] = INIT_MM
        return t

    def ev_wake(self, c, task, how):
        if how == WAKE_TIMER:
            timers = self.timers[c]
            del timers[bisect_left(timers, self.now)]
        elif how != WAKE_ENQUEUE:
            self.wakes_pending[c] -= 1
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
                t += self.wake_from_idle(c, how == WAKE_IPI)
            else:
                self.idle_exit(c, t)
            if how == WAKE_IPI:
                t += self.c_irq            # the reschedule interrupt
            self.schedule_step(c, t)

    # -- pipes and wake-ups ------------------------------------------------
    def pipe_read(self, c, task, ch, t):
        """read(2) of one byte: take it if one is there, else sleep on the
        pipe's wait queue (the byte is handed over by the writer)."""
        t = self.atomic(c, self.chan_line[ch], t + self.c_syscall + self.c_pipe)
        if self.chan_tokens[ch]:
            self.chan_tokens[ch] -= 1
            self.schedule_step(c, t)
            return
        self.chan_waiters[ch].append(task)
        self.ring(c, abi.TR_BLOCK, task, ch)
        self.schedule(c, t)

    def pipe_write(self, c, ch, t):
        """write(2) of one byte: wake the first sleeping reader (WF_SYNC),
        or leave the byte in the pipe."""
        t = self.atomic(c, self.chan_line[ch], t + self.c_syscall + self.c_pipe)
        if self.chan_waiters[ch]:
            t = self.try_to_wake_up(c, self.chan_waiters[ch].popleft(), t, True)
        else:
            self.chan_tokens[ch] += 1
        self.schedule_step(c, t)

    def available_idle_cpu(self, x):
        return (self.cur[x] < 0 and not self.runq[x] and not self.wakes_pending[x]
                and not self.hung[x])

    def select_task_rq(self, c, task, sync):
        """Where a woken task runs (see the module docstring)."""
        allowed = self.task_allowed[task]
        prev = self.task_cpu[task]
        if allowed and not allowed & (allowed - 1):
            return prev                        # pinned to one CPU
        ok = (lambda x: (allowed >> x) & 1) if allowed else (lambda x: True)
        idle = self.available_idle_cpu
        target = prev
        if c != prev and ok(c) and self.llc[c] == self.llc[prev]:
            # wake_affine_idle()
            if idle(c):
                target = prev if idle(prev) else c
            elif sync and not self.runq[c]:
                target = c
        # select_idle_sibling()
        if idle(target):
            return target
        if prev != target and self.llc[prev] == self.llc[target] and idle(prev):
            return prev
        for x in self.profile.siblings(target):
            if ok(x) and idle(x):
                return x
        llc_cpus = self.llc_cpus[self.llc[target]]
        i = llc_cpus.index(target)
        for x in llc_cpus[i + 1:] + llc_cpus[:i]:
            if ok(x) and idle(x):
                return x
        return target

    def try_to_wake_up(self, c, task, t, sync):
        """Put a sleeping task on a run queue; returns when the waker is done."""
        t += self.c_wakeup
        x = self.select_task_rq(c, task, sync)
        self.task_cpu[task] = x
        t = self.atomic(c, self.cpu_line(self.rq_line, x), t)   # rq_lock(target)
        self.ring(c, abi.TR_WAKEUP, task, x)
        if x == c:
            self.runq[c].append(task)          # runs when the waker gives up the CPU
            return t
        self.wakes_pending[x] += 1
        if not (self.cur[x] < 0 and self.step_at[x] < 0):
            self.push(t, x, EV_WAKE, task, WAKE_POLLED)       # a busy CPU: just enqueue
        elif self.polling(x):
            # set_nr_if_polling(): the need_resched store is all it takes
            self.push(t + self.xfer[self.dist(c, x)], x, EV_WAKE, task, WAKE_POLLED)
        else:
            t += self.c_ipi_send
            self.n_resched_ipis += 1
            self.ring(c, abi.TR_RESCHED, x)
            arrival = t + self.ipi_lat[self.dist(c, x)]
            if self.ipi_jitter:
                arrival += self.rng.below(self.ipi_jitter)
            self.push(arrival, x, EV_WAKE, task, WAKE_IPI)
        return t

    def preempt_tick(self, c, task):
        """At an op boundary: has the running task used its slice while
        others wait? Then it goes to the back of the run queue."""
        if self.runq[c] and self.now - self.run_since[c] >= self.slice:
            self.runq[c].append(task)
            self.schedule(c, self.now)
            return True
        return False

    def membarrier(self, c, task, mm, t):
        """MEMBARRIER_CMD_PRIVATE_EXPEDITED: IPI every CPU whose rq->curr runs
        this mm (smp_mb() before and after)."""
        t += self.c_syscall + 2 * self.c_mb
        cid = self.next_call
        self.next_call += 1
        call = self.calls[cid] = Call(CALL_MEMBARRIER, c, mm, task, CONT_STEP, self.now)
        targets = [x for x in range(self.ncpu)
                   if x != c and self.cur[x] >= 0 and self.task_mm[self.cur[x]] == mm]
        t = self.smp_call_function_many(c, cid, call, targets, t)
        self.finish_sending(c, cid, call, t)

    def do_exit(self, c, task, t):
        mm = self.task_mm[task]
        if mm == INIT_MM:
            self.exit_done(c, task, t)
            return
        self.ring(c, abi.TR_EXIT, task, mm)
        # exit_mm(): the task keeps mm as its active_mm, borrowed lazily,
        # until it schedules away for the last time (mmgrab_lazy_tlb(); the
        # 2021 hazard-pointer patch changed only context_switch(), so there
        # it is a counted mmgrab())
        t = self.take_lazy_ref(c, mm, t, counted=self.k_lazy_ref == abi.REF_HAZARD
                               and self.k_release == abi.RELEASE_HANDOFF)
        t = self.enter_lazy_tlb(c, t)
        self.task_mm[task] = INIT_MM
        self.mm_users[mm] -= 1
        if self.mm_users[mm]:
            self.exit_done(c, task, t)
            return
        self.exit_mmap(c, task, mm, t)

    def exit_done(self, c, task, t):
        self.task_done[task] = t
        self.schedule(c, t)

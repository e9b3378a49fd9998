"""kernel/sched/: context switches (the mm half of context_switch(): a user
task switches mm; a kernel thread or the idle task borrows the previous mm
lazily), how a borrowed mm is kept alive (lazy_mm_ref: mmgrab/mmdrop, a
per-CPU hazard pointer, or shootdown IPIs at __mmdrop), wake-ups, exit
(kernel/exit.c) and membarrier (kernel/sched/membarrier.c).

Scheduling is per-CPU FIFO and non-preemptive: a task runs until it
sleeps, yields, migrates, blocks in a flush or exits.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque

from . import abi
from .abi import CALL_MEMBARRIER, CONT_STEP
from .core import INIT_MM
from .smp import Call


class Sched:
    """Run queues, context switches, lazy mm references, exit; mixed into Machine."""

    def init_sched(self):
        n = self.ncpu
        self.cur = [-1] * n            # running task, -1: the idle task
        self.active_mm = [INIT_MM] * n  # current->active_mm
        self.lazy_ref = [0] * n        # active_mm is borrowed by a kthread / idle
        self.hazard = [INIT_MM] * n    # per-CPU hazard pointer (lazy_mm_ref="hazard_pointer")
        self.irqs_off_until = [0] * n
        self.irq_busy = [0] * n        # end of the interrupt handler running now
        self.step_token = [0] * n
        self.step_at = [-1] * n
        self.runq = [deque() for _ in range(n)]
        self.timers = [[] for _ in range(n)]  # wake-up times of tasks homed here

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

    def exit_done(self, c, task, t):
        self.task_done[task] = t
        self.schedule(c, t)

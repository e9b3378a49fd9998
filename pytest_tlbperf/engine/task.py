"""User space: each task runs its compiled op program (workloads.py) one op
per step -- memory accesses through the TLB, compute, syscalls that change
PTEs, sleep/yield/migrate, membarrier, exit. An op's state effects apply
when it starts; its cost delays the next op.
"""

from __future__ import annotations

from bisect import insort

from . import abi
from .abi import EV_WAKE
from .core import INIT_MM
from .sched import WAKE_ENQUEUE, WAKE_TIMER


class Task:
    """The op interpreter and user accesses; mixed into Machine."""

    def init_task(self):
        program = self.program
        self.task_ops = [t.ops for t in program.tasks]
        self.task_tmpl = [t.mm for t in program.tasks]
        self.task_mm = [-1] * len(program.tasks)   # -1: not started yet
        self.task_pc = [0] * len(program.tasks)
        self.task_done = [-1] * len(program.tasks)
        self.task_marks = [[-1, 0, 0] for _ in program.tasks]  # first, last, count
        self.task_cpu = [t.cpu for t in program.tasks]          # where it last ran
        self.task_allowed = [sum(1 << x for x in t.affinity) for t in program.tasks]  # 0: any
        self.window_marks = 0          # iterations inside the measured window

    def ev_step(self, c):
        if self.hung[c]:
            return
        self.vcpu_sync(c)
        if self.rcu_pending:
            self.rcu_quiescent(c)
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
        if self.runq[c] and self.preempt_tick(c, task):
            return
        code, a, b, d = ops[pc], ops[pc + 1], ops[pc + 2], ops[pc + 3]
        self.task_pc[task] = pc + 4
        self.n_ops += 1
        mm = self.task_mm[task]
        if code == abi.OP_ACCESS:
            self.schedule_step(c, self.access(c, mm, a, b, d, now))
        elif code == abi.OP_COMPUTE:
            self.schedule_step(c, now + a)
        elif code == abi.OP_MADVISE or code == abi.OP_MUNMAP or code == abi.OP_MPROTECT:
            self.change_ptes(c, task, mm, code, a, b, d, now)
        elif code == abi.OP_SLEEP:
            wake = now + self.c_syscall + a
            insort(self.timers[c], wake)
            self.push(wake, c, EV_WAKE, task, WAKE_TIMER)
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
                self.task_cpu[task] = a
                self.push(now + self.c_ctxsw, a, EV_WAKE, task, WAKE_ENQUEUE)
                self.schedule(c, now)
        elif code == abi.OP_MARK:
            marks = self.task_marks[task]
            if marks[0] < 0:
                marks[0] = now
            marks[1] = now
            marks[2] += 1
            if self.measuring:
                self.window_marks += 1
            self.schedule_step(c, now)
        elif code == abi.OP_BLOCK:
            self.pipe_read(c, task, a, now)
        elif code == abi.OP_WAKE:
            self.pipe_write(c, a, now)
        elif code == abi.OP_LOOP:
            self.task_pc[task] = 4 * a
            self.schedule_step(c, now)
        elif code == abi.OP_MEMBARRIER:
            self.membarrier(c, task, mm, now)
        elif code == abi.OP_RECLAIM:
            self.reclaim(c, task, a, b, d, now)
        elif code == abi.OP_EXIT:
            self.task_pc[task] = len(ops)
            self.do_exit(c, task, now)
        else:
            raise RuntimeError(f"unknown op {code} in task {task}")

    def access(self, c, mm, first, npages, flags, t):
        """User loads/stores of pages (flags: 1 write, 2 file-backed mapping,
        4 shared mapping)."""
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
            t = self.page_walk(c, mm, asid, page, flags, t)
        return t

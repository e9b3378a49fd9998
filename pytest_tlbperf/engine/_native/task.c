/*
 * task.c -- the workload: the interpreter of a task's ops (engine/abi.py
 * OP_*), one op per step (a step is also RCU's quiescent point, and where a
 * task whose slice is used up is preempted), and the user-space accesses
 * that hit the TLB or walk the page tables. Models no kernel file: this is
 * user space and the syscalls it makes.
 */

#include "machine.h"

static i64 access_pages(struct machine *m, int c, int mm, i64 first, i64 npages, i64 flags,
                        i64 t);

void ev_step(struct machine *m, int c)
{
    int task, mm;
    i64 pc, now, code, a, b, d;
    const i64 *op;
    if (m->hung[c])
        return;
    vcpu_sync(m, c);
    if (m->rcu_pending.n)
        rcu_quiescent(m, c);
    task = m->cur[c];
    if (task < 0) {
        idle_loop(m, c);
        return;
    }
    pc = m->task_pc[task];
    now = m->now;
    if (pc >= m->task_len[task]) {
        do_exit(m, c, task, now);
        return;
    }
    if (m->runq[c].n && preempt_tick(m, c, task))
        return;
    op = &m->ops[m->task_off[task] + pc];
    code = op[0], a = op[1], b = op[2], d = op[3];
    m->task_pc[task] = pc + 4;
    m->n_ops += 1;
    mm = (int)m->task_mm[task];
    switch (code) {     /* every code was checked by parse_tasks() */
    case OP_ACCESS:
        schedule_step(m, c, access_pages(m, c, mm, a, b, d, now));
        break;
    case OP_COMPUTE:
        schedule_step(m, c, now + a);
        break;
    case OP_MADVISE:
    case OP_MUNMAP:
    case OP_MPROTECT:
        change_ptes(m, c, task, mm, code, a, b, d, now);
        break;
    case OP_SLEEP: {
        i64 wake = now + m->c_syscall + a;
        insort(m, &m->timers[c], wake);
        push(m, wake, c, EV_WAKE, task, WAKE_TIMER);
        schedule(m, c, now + m->c_syscall);
        break;
    }
    case OP_YIELD:
        if (m->runq[c].n) {
            DEQUE_APPEND(m, m->runq[c], task);
            schedule(m, c, now + m->c_syscall);
        } else {
            schedule_step(m, c, now + m->c_syscall);
        }
        break;
    case OP_MIGRATE:
        if (a == c || a < 0 || a >= m->ncpu) {
            schedule_step(m, c, now);
        } else {
            m->task_cpu[task] = a;
            push(m, now + m->c_ctxsw, (int)a, EV_WAKE, task, WAKE_ENQUEUE);
            schedule(m, c, now);
        }
        break;
    case OP_MARK: {
        i64 *marks = &m->task_marks[3 * task];
        if (marks[0] < 0)
            marks[0] = now;
        marks[1] = now;
        marks[2] += 1;
        if (m->measuring)
            m->window_marks += 1;
        schedule_step(m, c, now);
        break;
    }
    case OP_BLOCK:
        pipe_read(m, c, task, (int)a, now);
        break;
    case OP_WAKE:
        pipe_write(m, c, (int)a, now);
        break;
    case OP_LOOP:
        m->task_pc[task] = 4 * a;
        schedule_step(m, c, now);
        break;
    case OP_MEMBARRIER:
        membarrier(m, c, task, mm, now);
        break;
    case OP_RECLAIM:
        reclaim(m, c, task, a, b, d, now);
        break;
    case OP_EXIT:
        m->task_pc[task] = m->task_len[task];
        do_exit(m, c, task, now);
        break;
    }
}

/* task.py access() (renamed: unistd.h declares access()): user loads and
 * stores of pages (flags: 1 write, 2 file-backed mapping, 4 shared mapping) */
static i64 access_pages(struct machine *m, int c, int mm, i64 first, i64 npages, i64 flags,
                        i64 t)
{
    int asid;
    i64 epoch, page;
    if (mm == INIT_MM)
        return t;
    asid = m->loaded_asid[c];
    epoch = m->tlb_epoch[EPOCH(m, c, asid)];
    for (page = first; page < first + npages; page++) {
        i64 key = ((i64)asid << 32) | page, slot = tlb_lookup(m, c, key);
        if (slot >= 0 && m->hw[c]->tlb_ep[slot] == epoch) {
            /* a TLB entry means a walk, so the page's block exists */
            if (m->hw[c]->tlb_ver[slot] < page_of(m, &m->mms.v[mm], page)->ret)
                stale_tlb(m, c, mm, page);
            t += m->c_access;
            continue;
        }
        m->n_tlb_misses += 1;
        t = page_walk(m, c, mm, asid, page, flags, t);
    }
    return t;
}

/*
 * sched.c -- kernel/sched/core.c (schedule, context_switch, slice
 * preemption, try_to_wake_up with select_task_rq's placement, polling and
 * reschedule IPIs), pipes (fs/pipe.c: a read sleeps until a byte is
 * there), the lazy mm references a kernel thread takes on its borrowed
 * active_mm (mmgrab / hazard pointer / shootdown, rq->drop_mm, and
 * unlazy), kernel/exit.c (do_exit) and kernel/sched/membarrier.c
 * (MEMBARRIER_CMD_PRIVATE_EXPEDITED). See engine/sched.py's docstring for
 * the placement rule.
 */

#include "machine.h"

static i64 context_switch(struct machine *m, int c, int nxt, i64 t);
static i64 drop_lazy_ref(struct machine *m, int c, i64 t);

void schedule(struct machine *m, int c, i64 t)
{
    struct i32deque *q = &m->runq[c];
    int nxt = -1;
    if (q->n) {
        nxt = q->v[q->head++];
        if (--q->n == 0)
            q->head = 0;
    }
    t = context_switch(m, c, nxt, t);
    schedule_step(m, c, t);
}

/* kernel/sched/core.c context_switch(): the mm half. */
static i64 context_switch(struct machine *m, int c, int nxt, i64 t)
{
    int mm = nxt >= 0 ? (int)m->task_mm[nxt] : INIT_MM;
    t += m->c_ctxsw;
    if (m->cur[c] < 0 && nxt >= 0)
        idle_exit(m, c, t);
    m->cur[c] = nxt;
    m->run_since[c] = t;
    if (nxt >= 0)
        set_bit(m->ran, c);
    if (mm != INIT_MM) {
        t = switch_mm_irqs_off(m, c, mm, t);
        if (m->k_barrier == BARRIER_EXPLICIT) {
            t += m->c_mb;       /* seed 003: make the post-switch-mm barrier explicit */
            m->n_switch_mb += 1;
        }
        if (m->lazy_ref[c])
            t = drop_lazy_ref(m, c, t);     /* finish_task_switch(): mmdrop(prev->active_mm) */
        m->active_mm[c] = mm;
    } else if (m->active_mm[c] != INIT_MM && !m->lazy_ref[c]) {
        /* user -> kernel thread: borrow the mm lazily */
        t = take_lazy_ref(m, c, m->active_mm[c], t, 0);
        t = enter_lazy_tlb(m, c, t);
    }
    if (m->drop_mm[c] != INIT_MM)
        t = mmdrop_lazy(m, c, t);
    ring(m, c, TR_SWITCH, nxt, mm);
    m->irqs_off_until[c] = t;
    return t;
}

/* finish_task_switch(): drop the reference a hazard-pointer teardown handed
 * this CPU (2021 shape). */
i64 mmdrop_lazy(struct machine *m, int c, i64 t)
{
    int mm = m->drop_mm[c], last;
    m->drop_mm[c] = INIT_MM;
    t = atomic(m, c, cpu_line(m, m->drop_line, c), t, m->c_atomic);  /* xchg(&rq->drop_mm) */
    t = mmdrop(m, c, mm, t, &last);
    if (last)
        free_mm(m, c, mm);
    return t;
}

/* Borrow mm as active_mm (lazy_ref: BORROWED by the policy's scheme, COUNTED
 * a counted mmgrab() reference). */
i64 take_lazy_ref(struct machine *m, int c, int mm, i64 t, int counted)
{
    m->active_mm[c] = mm;
    if (counted || m->k_lazy_ref == REF_REFCOUNT) {
        m->lazy_ref[c] = COUNTED;
        return mmgrab(m, c, mm, t);
    }
    m->lazy_ref[c] = BORROWED;
    if (m->k_lazy_ref == REF_HAZARD) {
        m->hazard[c] = mm;          /* a per-CPU store, no shared refcount */
        t = atomic(m, c, cpu_line(m, m->hazard_line, c), t, 0);
    }
    return t;
}

static i64 drop_lazy_ref(struct machine *m, int c, i64 t)
{
    int mm = m->active_mm[c], counted = m->lazy_ref[c] == COUNTED, last;
    m->lazy_ref[c] = 0;
    if (counted) {
        t = mmdrop(m, c, mm, t, &last);
        if (last)
            free_mm(m, c, mm);
    } else if (m->k_lazy_ref == REF_HAZARD) {
        m->hazard[c] = INIT_MM;
        t = atomic(m, c, cpu_line(m, m->hazard_line, c), t, 0);
    }
    return t;
}

/* Shootdown / hazard-pointer handler: stop using a dying mm lazily. */
i64 unlazy(struct machine *m, int x, int mm, i64 t)
{
    if (m->active_mm[x] == mm && m->lazy_ref[x]) {
        if (m->loaded_mm[x] == mm) {
            ring(m, x, TR_LEAVE_MM, mm, 0);
            t = switch_mm_irqs_off(m, x, INIT_MM, t);
        }
        t = drop_lazy_ref(m, x, t);
        m->active_mm[x] = INIT_MM;
    }
    return t;
}

/* bisect.bisect_left / bisect.insort (bisect_right) on a CPU's sorted timers */
static size_t bisect_left(const struct i64vec *v, i64 x)
{
    size_t lo = 0, hi = v->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v->v[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void insort(struct machine *m, struct i64vec *v, i64 x)
{
    size_t lo = 0, hi = v->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (x < v->v[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    PUSH(m, *v, x);
    memmove(v->v + lo + 1, v->v + lo, (v->n - 1 - lo) * sizeof *v->v);
    v->v[lo] = x;
}

void ev_wake(struct machine *m, int c, i64 task, i64 how)
{
    if (how == WAKE_TIMER) {
        /* del timers[bisect_left(timers, now)]: this wake-up's time is there */
        struct i64vec *timers = &m->timers[c];
        size_t i = bisect_left(timers, m->now);
        memmove(timers->v + i, timers->v + i + 1, (timers->n - 1 - i) * sizeof *timers->v);
        timers->n--;
    } else if (how != WAKE_ENQUEUE) {
        m->wakes_pending[c] -= 1;
    }
    if (m->task_mm[task] < 0) {                      /* fork+exec / clone */
        i64 tmpl = m->task_tmpl[task];
        if (tmpl < 0)
            m->task_mm[task] = INIT_MM;              /* a kernel thread */
        else if (m->tmpl_mm[tmpl] < 0)
            m->task_mm[task] = exec_mm(m, tmpl);
        else
            m->task_mm[task] = m->tmpl_mm[tmpl];     /* a thread of a live process */
    }
    DEQUE_APPEND(m, m->runq[c], (int32_t)task);
    if (m->cur[c] < 0 && m->step_at[c] < 0 && !m->hung[c]) {
        i64 t = m->now;
        if (m->cstate[c] >= 0) {
            vcpu_sync(m, c);
            t += wake_from_idle(m, c, how == WAKE_IPI);
        } else {
            idle_exit(m, c, t);
        }
        if (how == WAKE_IPI)
            t += m->c_irq;              /* the reschedule interrupt */
        schedule_step(m, c, t);
    }
}

/* -- pipes and wake-ups ------------------------------------------------- */
static i64 try_to_wake_up(struct machine *m, int c, int task, i64 t, int sync);

/* read(2) of one byte: take it if one is there, else sleep on the pipe's
 * wait queue (the byte is handed over by the writer). */
void pipe_read(struct machine *m, int c, int task, int ch, i64 t)
{
    t = atomic(m, c, m->chan_line[ch], t + m->c_syscall + m->c_pipe, m->c_atomic);
    if (m->chan_tokens[ch]) {
        m->chan_tokens[ch] -= 1;
        schedule_step(m, c, t);
        return;
    }
    DEQUE_APPEND(m, m->chan_waiters[ch], task);
    ring(m, c, TR_BLOCK, task, ch);
    schedule(m, c, t);
}

/* write(2) of one byte: wake the first sleeping reader (WF_SYNC), or leave
 * the byte in the pipe. */
void pipe_write(struct machine *m, int c, int ch, i64 t)
{
    struct i32deque *waiters = &m->chan_waiters[ch];
    t = atomic(m, c, m->chan_line[ch], t + m->c_syscall + m->c_pipe, m->c_atomic);
    if (waiters->n) {
        int task = waiters->v[waiters->head++];
        if (--waiters->n == 0)
            waiters->head = 0;
        t = try_to_wake_up(m, c, task, t, 1);
    } else {
        m->chan_tokens[ch] += 1;
    }
    schedule_step(m, c, t);
}

static inline int available_idle_cpu(const struct machine *m, int x)
{
    return m->cur[x] < 0 && !m->runq[x].n && !m->wakes_pending[x] && !m->hung[x];
}

static inline int allowed(const struct machine *m, int task, int x)
{
    return !m->task_allowed[task] || test_bit(m->task_allowed[task], x);
}

/* Where a woken task runs (see engine/sched.py's docstring). */
static int select_task_rq(struct machine *m, int c, int task, int sync)
{
    int prev = (int)m->task_cpu[task], target = prev, x;
    i64 j, k, size, pos, l, first;
    if (m->task_nallowed[task] == 1)
        return prev;                            /* pinned to one CPU */
    if (c != prev && allowed(m, task, c) && m->llc[c] == m->llc[prev]) {
        /* wake_affine_idle() */
        if (available_idle_cpu(m, c))
            target = available_idle_cpu(m, prev) ? prev : c;
        else if (sync && !m->runq[c].n)
            target = c;
    }
    /* select_idle_sibling() */
    if (available_idle_cpu(m, target))
        return target;
    if (prev != target && m->llc[prev] == m->llc[target] && available_idle_cpu(m, prev))
        return prev;
    for (j = 0; j < m->smt; j++) {              /* Profile.siblings(target) */
        x = (int)(j * m->cores + m->core[target]);
        if (x != target && allowed(m, task, x) && available_idle_cpu(m, x))
            return x;
    }
    /* the target's LLC domain, from target + 1 round to target - 1: its CPUs
     * in ascending order are thread j of its k-th core at position
     * j * cores_per_llc + k */
    l = m->llc[target];
    first = l * m->cores_per_llc;
    size = m->smt * m->cores_per_llc;
    pos = (target / m->cores) * m->cores_per_llc + (m->core[target] - first);
    for (k = 1; k < size; k++) {
        i64 p = (pos + k) % size;
        x = (int)((p / m->cores_per_llc) * m->cores + first + p % m->cores_per_llc);
        if (allowed(m, task, x) && available_idle_cpu(m, x))
            return x;
    }
    return target;
}

/* Put a sleeping task on a run queue; returns when the waker is done. */
static i64 try_to_wake_up(struct machine *m, int c, int task, i64 t, int sync)
{
    int x;
    t += m->c_wakeup;
    x = select_task_rq(m, c, task, sync);
    m->task_cpu[task] = x;
    t = atomic(m, c, cpu_line(m, m->rq_line, x), t, m->c_atomic);   /* rq_lock(target) */
    ring(m, c, TR_WAKEUP, task, x);
    if (x == c) {
        DEQUE_APPEND(m, m->runq[c], task);     /* runs when the waker gives up the CPU */
        return t;
    }
    m->wakes_pending[x] += 1;
    if (!(m->cur[x] < 0 && m->step_at[x] < 0)) {
        push(m, t, x, EV_WAKE, task, WAKE_POLLED);     /* a busy CPU: just enqueue */
    } else if (polling(m, x)) {
        /* set_nr_if_polling(): the need_resched store is all it takes */
        push(m, t + m->xfer[dist(m, c, x)], x, EV_WAKE, task, WAKE_POLLED);
    } else {
        i64 arrival;
        t += m->c_ipi_send;
        m->n_resched_ipis += 1;
        ring(m, c, TR_RESCHED, x, 0);
        arrival = t + m->ipi_lat[dist(m, c, x)];
        if (m->ipi_jitter)
            arrival += below(&m->rng, m->ipi_jitter);
        push(m, arrival, x, EV_WAKE, task, WAKE_IPI);
    }
    return t;
}

/* At an op boundary: has the running task used its slice while others
 * wait? Then it goes to the back of the run queue. */
int preempt_tick(struct machine *m, int c, int task)
{
    if (m->runq[c].n && m->now - m->run_since[c] >= m->slice) {
        DEQUE_APPEND(m, m->runq[c], task);
        schedule(m, c, m->now);
        return 1;
    }
    return 0;
}

/* MEMBARRIER_CMD_PRIVATE_EXPEDITED: IPI every CPU whose rq->curr runs this
 * mm (smp_mb() before and after). */
void membarrier(struct machine *m, int c, int task, int mm, i64 t)
{
    uint64_t w;
    size_t n = 0;
    int slot, i, x;
    t += m->c_syscall + 2 * m->c_mb;
    slot = new_call(m, CALL_MEMBARRIER, c, mm, task, CONT_STEP, m->now);
    for_each_cpu(x, i, w, m->ran, m->nwords)
        if (x != c && m->cur[x] >= 0 && m->task_mm[m->cur[x]] == mm)
            m->targets[n++] = x;
    t = smp_call_function_many(m, c, slot, m->targets, n, t);
    finish_sending(m, c, slot, t);
}

void do_exit(struct machine *m, int c, int task, i64 t)
{
    int mm = (int)m->task_mm[task];
    if (mm == INIT_MM) {
        exit_done(m, c, task, t);
        return;
    }
    ring(m, c, TR_EXIT, task, mm);
    /* exit_mm(): the task keeps mm as its active_mm, borrowed lazily, until
     * it schedules away for the last time (mmgrab_lazy_tlb(); the 2021
     * hazard-pointer patch changed only context_switch(), so there it is a
     * counted mmgrab()) */
    t = take_lazy_ref(m, c, mm, t, m->k_lazy_ref == REF_HAZARD
                      && m->k_release == RELEASE_HANDOFF);
    t = enter_lazy_tlb(m, c, t);
    m->task_mm[task] = INIT_MM;
    m->mms.v[mm].users -= 1;
    if (m->mms.v[mm].users) {
        exit_done(m, c, task, t);
        return;
    }
    exit_mmap(m, c, task, mm, t);
}

void exit_done(struct machine *m, int c, int task, i64 t)
{
    m->task_done[task] = t;
    schedule(m, c, t);
}

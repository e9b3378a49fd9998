/*
 * sched.c -- kernel/sched/core.c (schedule, context_switch, wake-ups),
 * the lazy mm references a kernel thread takes on its borrowed active_mm
 * (mmgrab / hazard pointer / shootdown, and unlazy), kernel/exit.c (do_exit)
 * and kernel/sched/membarrier.c (MEMBARRIER_CMD_PRIVATE_EXPEDITED).
 */

#include "machine.h"

static i64 context_switch(struct machine *m, int c, int nxt, i64 t);
static i64 take_lazy_ref(struct machine *m, int c, int mm, i64 t);
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
    m->cur[c] = nxt;
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
        t = take_lazy_ref(m, c, m->active_mm[c], t);
        t = enter_lazy_tlb(m, c, t);
    }
    ring(m, c, TR_SWITCH, nxt, mm);
    m->irqs_off_until[c] = t;
    return t;
}

static i64 take_lazy_ref(struct machine *m, int c, int mm, i64 t)
{
    m->active_mm[c] = mm;
    m->lazy_ref[c] = 1;
    if (m->k_lazy_ref == REF_REFCOUNT)
        return mmgrab(m, c, mm, t);
    if (m->k_lazy_ref == REF_HAZARD)
        m->hazard[c] = mm;          /* a per-CPU store, no shared line */
    return t;
}

static i64 drop_lazy_ref(struct machine *m, int c, i64 t)
{
    int mm = m->active_mm[c], last;
    m->lazy_ref[c] = 0;
    if (m->k_lazy_ref == REF_REFCOUNT) {
        t = mmdrop(m, c, mm, t, &last);
        if (last)
            free_mm(m, c, mm);
    } else if (m->k_lazy_ref == REF_HAZARD) {
        m->hazard[c] = INIT_MM;
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
        m->active_mm[x] = INIT_MM;
        m->lazy_ref[x] = 0;
        m->hazard[x] = INIT_MM;
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

void ev_wake(struct machine *m, int c, i64 task, i64 timed)
{
    if (timed) {
        /* del timers[bisect_left(timers, now)]: this wake-up's time is there */
        struct i64vec *timers = &m->timers[c];
        size_t i = bisect_left(timers, m->now);
        memmove(timers->v + i, timers->v + i + 1, (timers->n - 1 - i) * sizeof *timers->v);
        timers->n--;
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
            t += wake_from_idle(m, c, 0);
        }
        schedule_step(m, c, t);
    }
}

/* MEMBARRIER_CMD_PRIVATE_EXPEDITED: IPI every CPU whose rq->curr runs this
 * mm (smp_mb() before and after). */
void membarrier(struct machine *m, int c, int task, int mm, i64 t)
{
    uint64_t w;
    int slot, i, x;
    t += m->c_syscall + 2 * m->c_mb;
    slot = new_call(m, CALL_MEMBARRIER, c, mm, task, CONT_STEP, m->now);
    for_each_cpu(x, i, w, m->ran, m->nwords)
        if (x != c && m->cur[x] >= 0 && m->task_mm[m->cur[x]] == mm)
            t = send_ipi(m, c, x, slot, t);
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
     * it schedules away for the last time. */
    t = take_lazy_ref(m, c, mm, t);
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

/*
 * core.c -- the event core (engine/core.py): growable containers, the event
 * heap ordered as heapq orders (t, cpu, seq), the loop that dispatches each
 * event to its handler and stops at the end of a measured window, when a
 * CPU takes its next step, and the counters. Models no kernel file;
 * everything else hangs off it.
 */

#include "machine.h"

void *grow(struct machine *m, void *v, size_t *cap, size_t size)
{
    size_t ncap = *cap ? 2 * *cap : 8;
    void *p = ncap <= SIZE_MAX / size ? realloc(v, ncap * size) : NULL;
    if (!p)
        longjmp(m->oom, 1);
    *cap = ncap;
    return p;
}

void *xcalloc(struct machine *m, size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        longjmp(m->oom, 1);
    return p;
}

static inline int event_before(const struct event *x, const struct event *y)
{
    if (x->t != y->t)
        return x->t < y->t;
    if (x->cpu != y->cpu)
        return x->cpu < y->cpu;
    return x->seq < y->seq;
}

/* heapq.heappush of (t, cpu, seq, ev, a, b). The event is written in place
 * at the end: built on the stack and copied, its narrow stores would stall
 * the wide loads of the copy (store forwarding). */
void push(struct machine *m, i64 t, int cpu, int ev, i64 a, i64 b)
{
    uint64_t seq = ++m->seq;
    struct event *v, *e;
    size_t i;
    if (m->heap.n == m->heap.cap)
        m->heap.v = grow(m, m->heap.v, &m->heap.cap, sizeof *m->heap.v);
    v = m->heap.v;
    for (i = m->heap.n++; i > 0; ) {
        size_t parent = (i - 1) / 2;
        const struct event *p = &v[parent];
        if (t > p->t || (t == p->t && (cpu > p->cpu || (cpu == p->cpu && seq > p->seq))))
            break;
        v[i] = *p;
        i = parent;
    }
    e = &v[i];
    e->t = t, e->seq = seq, e->a = a, e->b = b, e->cpu = cpu, e->ev = ev;
}

static struct event pop(struct machine *m)
{
    struct event top = m->heap.v[0], last = m->heap.v[--m->heap.n];
    size_t i = 0, n = m->heap.n;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && event_before(&m->heap.v[child + 1], &m->heap.v[child]))
            child++;
        if (!event_before(&m->heap.v[child], &last))
            break;
        m->heap.v[i] = m->heap.v[child];
        i = child;
    }
    if (n)
        m->heap.v[i] = last;
    return top;
}

/* Run every event in order, up to the end of the measured window if there is
 * one; 0 when done, -1 when the binding asked to stop (Ctrl-C) */
int run_loop(struct machine *m)
{
    uint64_t events = 0;
    while (m->heap.n) {
        struct event e;
        if (++events % POLL_EVERY == 0 && stop_requested(m))
            return -1;
        e = pop(m);
        if (m->stop >= 0 && e.t >= m->stop) {
            m->stopped = 1;
            break;
        }
        m->now = e.t;
        switch (e.ev) {
        case EV_STEP:
            if (e.a == m->step_token[e.cpu]) {
                m->step_at[e.cpu] = -1;
                ev_step(m, e.cpu);
            }
            break;
        case EV_IPI:
            ev_ipi(m, e.cpu, e.b);
            break;
        case EV_CALL_DONE:
            ev_call_done(m, e.cpu, e.a);
            break;
        case EV_WAKE:
            ev_wake(m, e.cpu, e.a, e.b);
            break;
        case EV_SPEC_WALK:
            ev_spec_walk(m, e.cpu, e.a, e.b);
            break;
        case EV_WATCHDOG:
            ev_watchdog(m, e.cpu, e.a, e.b);
            break;
        case EV_CSD:
            ev_csd(m, e.cpu, (int)e.a);
            break;
        case EV_QUEUE:
            ev_queue(m, e.cpu, (int)e.a);
            break;
        case EV_SEND:
            ev_send(m, e.cpu, (int)e.a, e.b);
            break;
        case EV_BROADCAST:
            ev_broadcast(m, e.cpu, e.a, e.b);
            break;
        case EV_WINDOW:
            /* the measured window opens: counters are taken from here on */
            counters(m, m->snap_counters);
            memcpy(m->snap_received, m->ipis_received, (size_t)m->ncpu * sizeof(i64));
            m->snapshot = 1;
            m->measuring = 1;
            break;
        }
    }
    return 0;
}

void schedule_step(struct machine *m, int c, i64 t)
{
    if (m->hung[c])
        return;
    if (t < m->irq_busy[c])
        t = m->irq_busy[c];
    if (m->virt)
        t = stretch(m, c, m->now, t);
    m->step_token[c] += 1;
    m->step_at[c] = t;
    push(m, t, c, EV_STEP, m->step_token[c], 0);
}

/* CPU c ran an interrupt handler from start to end: whatever it was doing
 * finishes that much later. */
void interrupted(struct machine *m, int c, i64 start, i64 end)
{
    m->irq_busy[c] = end;
    if (m->step_at[c] >= start) {
        m->step_token[c] += 1;
        m->step_at[c] += end - start;
        push(m, m->step_at[c], c, EV_STEP, m->step_token[c], 0);
    } else if (m->cur[c] < 0 && m->step_at[c] < 0) {
        schedule_step(m, c, end);   /* back to the idle loop */
    }
}

/* core.py counters(), as an array in its order (the C_* enum) */
void counters(const struct machine *m, i64 *out)
{
    out[C_IPIS] = m->n_ipis;
    out[C_IPIS_TO_IDLE] = m->n_ipis_to_idle;
    out[C_IPIS_TO_LAZY] = m->n_ipis_to_lazy;
    out[C_CR3_WRITES] = m->n_cr3;
    out[C_FULL_FLUSHES] = m->n_full_flushes;
    out[C_INVLPG] = m->n_invlpg;
    out[C_TLB_MISSES] = m->n_tlb_misses;
    out[C_ATOMIC_CONTENTION] = m->n_contention;
    out[C_IDLE_WAKEUPS] = m->n_idle_wakeups;
    out[C_OPS] = m->n_ops;
    out[C_PAGE_FAULTS] = m->n_faults;
    out[C_SPEC_WALKS] = m->n_spec_walks;
    out[C_SWITCH_MM_BARRIERS] = m->n_switch_mb;
    out[C_RESCHED_IPIS] = m->n_resched_ipis;
    out[C_ICR_WRITES] = m->n_icr_writes;
    out[C_INVPCID] = m->n_invpcid;
    out[C_INVLPGB] = m->n_invlpgb;
    out[C_RAR_REQUESTS] = m->n_rar;
    out[C_FLUSH_CYCLES] = m->n_flush_cycles;
    out[C_LRU_LOCKS] = m->n_lru_locks;
}

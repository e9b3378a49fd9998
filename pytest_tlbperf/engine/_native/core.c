/*
 * core.c -- the event core (machine.py's run loop): growable containers,
 * the event heap ordered as heapq orders (t, cpu, seq), the loop that
 * dispatches each event to its handler, and when a CPU takes its next step.
 * Models no kernel file; everything else hangs off it.
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

/* heapq.heappush of (t, cpu, seq, ev, a, b) */
void push(struct machine *m, i64 t, int cpu, int ev, i64 a, i64 b)
{
    struct event e = { t, ++m->seq, a, b, cpu, ev };
    size_t i;
    PUSH(m, m->heap, e);
    for (i = m->heap.n - 1; i > 0; ) {
        size_t parent = (i - 1) / 2;
        if (!event_before(&e, &m->heap.v[parent]))
            break;
        m->heap.v[i] = m->heap.v[parent];
        i = parent;
    }
    m->heap.v[i] = e;
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

/* Run every event in order; 0 when none is left, -1 when the binding asked
 * to stop (Ctrl-C) */
int run_loop(struct machine *m)
{
    uint64_t events = 0;
    while (m->heap.n) {
        struct event e;
        if (++events % POLL_EVERY == 0 && stop_requested(m))
            return -1;
        e = pop(m);
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

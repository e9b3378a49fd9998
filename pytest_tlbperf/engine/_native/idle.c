/*
 * idle.c -- kernel/sched/idle.c and cpuidle: the idle loop picks a C-state
 * from the next timer (the governor), a deep state loses the TLB and PSC,
 * and leaving a state costs its exit latency.
 */

#include "machine.h"

/* Leave the C-state; returns the exit latency paid (entering is taken to
 * last as long as leaving: an interrupt during entry pays the time spent). */
i64 wake_from_idle(struct machine *m, int c, int by_ipi)
{
    int state = m->cstate[c];
    i64 spent = m->now - m->idle_since[c];
    m->cstate[c] = -1;
    m->n_idle_wakeups += 1;
    ring(m, c, TR_WAKE, by_ipi, state);
    arm_walks(m, c);
    return m->cs_exit[state] < spent ? m->cs_exit[state] : spent;
}

void idle_loop(struct machine *m, int c)
{
    const struct i64vec *timers = &m->timers[c];
    i64 predicted = 0;
    int state = -1, i;
    if (m->runq[c].n) {
        schedule(m, c, m->now);
        return;
    }
    if (timers->n)
        predicted = timers->v[0] - m->now;
    for (i = 0; i < m->ncstates; i++)
        if (!timers->n || m->cs_residency[i] <= predicted)
            state = i;
    if (state < 0)
        return;         /* poll in C0 until the next wake-up */
    m->cstate[c] = state;
    m->idle_since[c] = m->now;
    ring(m, c, TR_IDLE, state, 0);
    if (m->cs_flushed[state]) {
        flush_everything(m, c);     /* the core loses its TLB and PSC */
        if (m->k_idle_leave == IDLE_LEAVE_FLUSHED)
            leave_mm(m, c, m->now);
    }
}

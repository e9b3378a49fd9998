/*
 * idle.c -- kernel/sched/idle.c and cpuidle: the idle loop, a menu-like
 * governor (drivers/cpuidle/governors/menu.c get_typical_interval(), over
 * the last INTERVALS idle periods of each CPU, in microseconds) that picks
 * the deepest state whose target residency fits, polling states
 * (TIF_POLLING_NRFLAG), a deep state that loses the TLB and PSC, and the
 * exit latency drawn (machine stream) from the state's wake-up range. See
 * engine/idle.py's docstring.
 */

#include "machine.h"

/* Is idle CPU x watching its thread flags (no IPI needed to wake it)? */
int polling(const struct machine *m, int x)
{
    return m->cstate[x] < 0 || m->cs_polling[m->cstate[x]];
}

/* A stay in an idle state ends (a wake-up or an interrupt): the governor
 * remembers how long it was. */
void idle_exit(struct machine *m, int c, i64 t)
{
    if (m->in_idle[c]) {
        m->in_idle[c] = 0;
        /* t >= idle_since: Python's floor division is C's */
        m->idle_hist[c * INTERVALS + m->idle_pos[c]] = (t - m->idle_since[c]) / m->us;
        m->idle_pos[c] = (uint8_t)((m->idle_pos[c] + 1) % INTERVALS);
    }
}

/* Leave the C-state; returns the exit latency paid (entering is taken to
 * last as long as leaving: an interrupt during entry pays the time spent). */
i64 wake_from_idle(struct machine *m, int c, int by_ipi)
{
    int state = m->cstate[c];
    m->cstate[c] = -1;
    idle_exit(m, c, m->now);
    m->n_idle_wakeups += 1;
    ring(m, c, TR_WAKE, by_ipi, state);
    arm_walks(m, c);
    return min64(between(&m->rng, m->cs_wake_min[state], m->cs_wake_max[state]),
                 m->now - m->idle_since[c]);
}

/* menu.c get_typical_interval(), in microseconds; -1: no pattern. The
 * periods are non-negative, so Python's floor divisions are C's; the sums
 * of squares are unsigned 128-bit, as Python's ints do not overflow. */
static i64 typical_interval(const struct machine *m, int c)
{
    const i64 *data = &m->idle_hist[c * INTERVALS];
    i64 thresh = 0, avg, kept_max;
    int i, n;
    for (i = 0; i < INTERVALS; i++) {
        if (data[i] < 0)
            return -1;                  /* fewer than 8 periods seen yet */
        thresh = max64(thresh, data[i]);
    }
    for (;;) {
        u128 sum = 0, variance = 0;
        n = 0;
        kept_max = 0;
        for (i = 0; i < INTERVALS; i++) {
            if (data[i] <= thresh) {
                sum += (u128)data[i];
                n++;
                kept_max = max64(kept_max, data[i]);
            }
        }
        avg = (i64)(sum / (u128)n);
        for (i = 0; i < INTERVALS; i++) {
            if (data[i] <= thresh) {
                u128 d = (u128)(data[i] > avg ? data[i] - avg : avg - data[i]);
                variance += d * d;
            }
        }
        variance /= (u128)n;
        /* avg * avg > variance * 36, without overflowing 128 bits: avg^2 < 2^126 */
        if ((variance <= ~(u128)0 / 36 && (u128)avg * (u128)avg > variance * 36
             && n * 4 >= INTERVALS * 3) || variance <= 400)
            return avg;
        if (n * 4 <= INTERVALS * 3)
            return -1;
        thresh = kept_max - 1;
    }
}

void idle_loop(struct machine *m, int c)
{
    const struct i64vec *timers = &m->timers[c];
    i64 predicted = 0, typical;
    int known = 0, state = -1, i;
    if (m->runq[c].n) {
        schedule(m, c, m->now);
        return;
    }
    m->in_idle[c] = 1;
    m->idle_since[c] = m->now;
    if (timers->n) {
        predicted = timers->v[0] - m->now;
        known = 1;
    }
    typical = typical_interval(m, c);
    if (typical >= 0) {
        typical *= m->us;
        predicted = known ? min64(predicted, typical) : typical;
        known = 1;
    }
    for (i = 0; i < m->ncstates; i++)
        if (!known || m->cs_residency[i] <= predicted)
            state = i;
    if (state < 0)
        return;         /* poll in C0 until the next wake-up */
    m->cstate[c] = state;
    ring(m, c, TR_IDLE, state, 0);
    if (m->cs_flushed[state]) {
        flush_everything(m, c);     /* the core loses its TLB and PSC */
        if (m->k_idle_leave == IDLE_LEAVE_FLUSHED)
            leave_mm(m, c, m->now);
    }
}

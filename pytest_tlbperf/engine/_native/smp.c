/*
 * smp.c -- kernel/smp.c: cross-calls. A request is queued on the target's
 * call_single_queue (an IPI only if the queue was empty), the IPI handler
 * (flush_smp_call_function_queue) runs every queued request, the initiator
 * waits for the last ack (csd lock). A request queued on a hung CPU arms
 * the CSD-lock watchdog, which oracle.c's ev_watchdog() answers.
 */

#include "machine.h"

static i64 run_call(struct machine *m, int x, int slot, i64 t);

/* calls[cid] = Call(...) in a free slot; the slot's vectors keep their
 * buffers from its previous call, so a flush allocates nothing */
int new_call(struct machine *m, int kind, int initiator, int mm, int task, int cont,
             i64 t0)
{
    struct call *call;
    int slot;
    if (m->free_calls.n) {
        slot = m->free_calls.v[--m->free_calls.n];
    } else {
        struct call zero = { 0 };
        slot = (int)m->calls.n;
        PUSH(m, m->calls, zero);
    }
    call = &m->calls.v[slot];
    call->id = m->next_call++;
    call->live = 1;
    call->kind = kind, call->initiator = initiator, call->mm = mm;
    call->task = task, call->cont = cont, call->t0 = t0;
    call->start = 0, call->npages = TLB_FLUSH_ALL, call->new_gen = 0;
    call->freed = call->wait_ack = call->watchdog = 0;
    call->snap.n = call->tables.n = call->targets.n = 0;
    call->pending = call->done_at = call->local_done = 0;
    return slot;
}

/* calls.pop(cid) */
static void release_call(struct machine *m, int slot)
{
    m->calls.v[slot].live = 0;
    PUSH(m, m->free_calls, slot);
}

/* __smp_call_function_many(): llist_add() the request to x's
 * call_single_queue; only if the queue was empty is an IPI sent.
 * Every caller sends in ascending CPU order, so call->targets stays sorted
 * like machine.py's bitmap. */
i64 send_ipi(struct machine *m, int c, int x, int slot, i64 t)
{
    i64 arrival;
    m->calls.v[slot].pending += 1;
    PUSH(m, m->calls.v[slot].targets, x);
    if (m->hung[x])
        arm_watchdog(m, slot);
    PUSH(m, m->csdq[x], slot);
    t += m->c_atomic + m->xfer[dist(m, c, x)];      /* llist_add's cmpxchg */
    if (m->csdq[x].n > 1)
        return t;
    t += m->c_ipi_send;
    m->n_ipis += 1;
    arrival = t + m->ipi_lat[dist(m, c, x)];
    if (m->ipi_jitter)
        arrival += below(&m->rng, m->ipi_jitter);
    push(m, arrival, x, EV_IPI, 0, 0);
    return t;
}

void finish_sending(struct machine *m, int c, int slot, i64 t)
{
    struct call *call = &m->calls.v[slot];
    call->local_done = t;
    if (call->pending == 0)
        push(m, t, c, EV_CALL_DONE, slot, 0);
}

void ev_ipi(struct machine *m, int x, i64 delivered)
{
    i64 now = m->now, start = now, t;
    struct i32vec queue;
    size_t i;
    if (m->hung[x])
        return;     /* the watchdog was armed when the request was queued */
    if (!delivered) {
        vcpu_sync(m, x);
        if (m->cstate[x] >= 0) {
            /* The IPI wakes an idle CPU: it pays the C-state's exit latency. */
            m->n_ipis_to_idle += 1;
            start += wake_from_idle(m, x, 1);
        }
        if (m->virt)
            start = max64(start, preempted_until(m, x, now));
    }
    start = max64(start, max64(m->irqs_off_until[x], m->irq_busy[x]));
    if (start > now) {
        m->irq_busy[x] = max64(m->irq_busy[x], start);
        push(m, start, x, EV_IPI, 0, 1);
        return;
    }
    vcpu_sync(m, x);
    m->ipis_received[x] += 1;
    if (m->is_lazy[x])
        m->n_ipis_to_lazy += 1;
    /* flush_smp_call_function_queue(): take every queued request at once
     * (swapped with the empty m->taken, whose buffer x's queue reuses) */
    queue = m->csdq[x], m->csdq[x] = m->taken, m->taken = queue;
    t = now + m->c_irq;
    for (i = 0; i < m->taken.n; i++)
        t = run_call(m, x, m->taken.v[i], t);
    m->taken.n = 0;
    interrupted(m, x, now, t);
}

/* One queued cross-call in the IPI handler on x; returns when done. */
static i64 run_call(struct machine *m, int x, int slot, i64 t)
{
    struct call *call = &m->calls.v[slot];
    i64 ack, arrival;
    ring(m, x, TR_IPI, call->kind, call->initiator);
    if (call->kind == CALL_FLUSH) {
        if (call->wait_ack) {
            ack = t + m->c_csd;     /* copy the request, unlock the csd, then flush */
            t = flush_tlb_func(m, x, call, ack);
        } else {
            t = flush_tlb_func(m, x, call, t) + m->c_csd;
            ack = t;
        }
    } else if (call->kind == CALL_UNLAZY) {
        t = unlazy(m, x, call->mm, t) + m->c_csd;
        ack = t;
    } else {    /* CALL_MEMBARRIER: ipi_mb() */
        t += m->c_mb + m->c_csd;
        ack = t;
    }
    arrival = ack + m->xfer[dist(m, x, call->initiator)];
    call->done_at = max64(call->done_at, arrival);
    call->pending -= 1;
    if (call->pending == 0)
        push(m, max64(call->done_at, call->local_done), call->initiator, EV_CALL_DONE, slot, 0);
    return t;
}

void arm_watchdog(struct machine *m, int slot)
{
    struct call *call = &m->calls.v[slot];
    if (!call->watchdog) {
        call->watchdog = 1;
        push(m, call->t0 + m->watchdog, call->initiator, EV_WATCHDOG, slot, call->id);
    }
}

void ev_call_done(struct machine *m, int c, i64 slot)
{
    struct call *call = &m->calls.v[slot];
    i64 now = m->now;
    int mm = call->mm, task = call->task, cont = call->cont;
    size_t i;
    if (call->kind == CALL_FLUSH) {
        struct mm *M = &m->mms.v[mm];
        struct flush_return ret_at = { now, c };
        PUSH(m, m->flush_lat, now - call->t0);
        PUSH(m, m->returns, ret_at);
        for (i = 0; i < call->snap.n; i++) {
            struct page *pg = page_of(m, M, call->snap.v[i].page);
            if (call->snap.v[i].ver > pg->ret) {
                pg->ret = (int32_t)call->snap.v[i].ver;
                pg->ret_at = (int32_t)(m->returns.n - 1);
            }
        }
        for (i = 0; i < call->tables.n; i++)
            free_table(m, c, call->tables.v[i]);
    }
    release_call(m, (int)slot);
    if (cont == CONT_STEP) {
        schedule_step(m, c, now);
    } else if (cont == CONT_EXIT_MMAP) {
        exit_mmap_done(m, c, task, mm, now);
    } else {    /* CONT_EXIT_FREE */
        free_mm(m, c, mm);
        exit_done(m, c, task, now);
    }
}

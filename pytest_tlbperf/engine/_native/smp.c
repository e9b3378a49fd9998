/*
 * smp.c -- kernel/smp.c: cross-calls. smp_call_function_many_cond() takes
 * each target's per-(sender, target) csd (csd_lock: waiting for the target
 * to unlock our previous request), llist_add()s it to the target's
 * call_single_queue as its loop reaches that target (EV_QUEUE), and when
 * the loop is over sends one send_call_function_ipi_mask() for the queues
 * that were empty (EV_SEND), as the APIC driver writes the ICR (x2APIC
 * cluster, physical, KVM PV send-IPI). The IPI handler, once the interrupt
 * entry is done, takes every queued request
 * (flush_smp_call_function_queue) and runs each as its own event (EV_CSD),
 * so a storm's requests meet in batches whose size the timing decides; the
 * initiator waits for the last csd unlock. A
 * request queued on a hung CPU arms the CSD-lock watchdog, which oracle.c's
 * ev_watchdog() answers.
 */

#include "machine.h"

static i64 run_call(struct machine *m, int x, int slot, i64 t);
static void call_continue(struct machine *m, int c, int slot, i64 now);

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
    call->then = 0;
    call->start = 0, call->npages = TLB_FLUSH_ALL, call->new_gen = 0;
    call->freed = call->wait_ack = call->watchdog = 0;
    call->any_mm = call->consider = call->unlock = 0;
    call->irq0 = 0;
    call->snap.n = call->tables.n = call->targets.n = call->rest.n = call->need.n = 0;
    call->send_t = 0;
    call->pending = call->done_at = call->local_done = 0;
    return slot;
}

/* calls.pop(cid) */
static void release_call(struct machine *m, int slot)
{
    m->calls.v[slot].live = 0;
    PUSH(m, m->free_calls, slot);
}

/* smp_call_function_many_cond(): for each target, csd_lock() the
 * per-(sender, target) csd -- waiting until the target has unlocked our
 * previous request to it -- and llist_add() it to the target's
 * call_single_queue; only a queue that was empty needs an IPI. Then one
 * send_call_function_ipi_mask() for all of those. Every caller gives its
 * targets in ascending CPU order, so call->targets stays sorted like
 * smp.py's bitmap.
 *
 * Each llist_add() lands when the loop gets to its target (EV_QUEUE), not
 * when the loop starts, and the ICR writes happen once the loop is over
 * (EV_SEND), when it is known which queues were empty. The sender is
 * charged one write per APIC group of all its targets (smp.py). */
i64 smp_call_function_many(struct machine *m, int c, int slot, const int32_t *targets,
                           size_t ntargets, i64 t)
{
    i64 *unlock = m->csd_unlock[c];
    size_t i, groups;
    if (!unlock)
        unlock = m->csd_unlock[c] = xcalloc(m, (size_t)m->ncpu, sizeof(i64));
    m->calls.v[slot].need.n = 0;
    for (i = 0; i < ntargets; i++) {
        int x = targets[i];
        struct call *call = &m->calls.v[slot];
        /* csd_lock(): wait until x unlocked our previous request, then own the
         * csd line x wrote last, and fill it in */
        t = max64(t, unlock[x]) + m->xfer[dist(m, c, x)] + m->c_csd_setup;
        call->pending += 1;
        PUSH(m, call->targets, x);
        if (m->hung[x])
            arm_watchdog(m, slot);
        t = atomic(m, c, cpu_line(m, m->csq_line, x), t, m->c_atomic);   /* llist_add */
        push(m, t, x, EV_QUEUE, slot, 0);
    }
    groups = apic_groups(m, targets, ntargets);
    if (groups) {
        m->calls.v[slot].send_t = t;
        push(m, t + max64(m->c_ipi_send, 1), c, EV_SEND, slot, m->calls.v[slot].id);
    }
    return t + (i64)groups * m->c_ipi_send;
}

/* llist_add() of the request in `slot` to x's call_single_queue: the
 * request that finds it empty is the one that needs an IPI. */
void ev_queue(struct machine *m, int x, int slot)
{
    PUSH(m, m->csdq[x], slot);
    if (m->csdq[x].n == 1)
        PUSH(m, m->calls.v[slot].need, x);
}

static void send_call_function_ipi_mask(struct machine *m, int c, size_t n, i64 *tp);

/* send_call_function_ipi_mask() once the queueing loop is over. A call that
 * has already completed found every queue busy (a target it had to IPI
 * cannot have acked before this), so its slot, maybe reused, is left alone. */
void ev_send(struct machine *m, int c, int slot, i64 id)
{
    struct call *call = &m->calls.v[slot];
    i64 t;
    size_t n;
    if (!call->live || call->id != id)
        return;
    n = call->need.n;
    memcpy(m->newly, call->need.v, n * sizeof(int32_t));
    call->need.n = 0;
    t = call->send_t;
    send_call_function_ipi_mask(m, c, n, &t);
}

/* The targets by ICR write, in the order they are sent (smp.py
 * apic_groups()): x2APIC cluster mode writes the ICR once per cluster of 16
 * APIC IDs, physical mode once per target, KVM's PV send-IPI once per window
 * of 128 APIC IDs; groups in the order their first target comes, each
 * keeping its targets' order. The groups are m->group_order[group_start[g]
 * .. group_start[g + 1]); returns how many. */
size_t apic_groups(struct machine *m, const int32_t *targets, size_t n)
{
    i64 span = m->apic_mode == APIC_CLUSTER ? 16 : 128;
    int32_t *count = m->group_count, *first = m->group_start;
    size_t i, g, ngroups = 0, at;
    if (m->apic_mode == APIC_PHYSICAL || n <= 1) {     /* one target: one write anyway */
        for (i = 0; i < n; i++) {
            m->group_order[i] = targets[i];
            first[i] = (int32_t)i;
        }
        ngroups = n;
    } else {
        /* a counting sort by group */
        for (i = 0; i < n; i++) {
            i64 key = m->apicid[targets[i]] / span;
            if (m->group_of[key] < 0) {
                m->group_of[key] = (int32_t)ngroups;
                count[ngroups++] = 0;
            }
            m->group[i] = m->group_of[key];
            count[m->group[i]] += 1;
        }
        for (g = 0, at = 0; g < ngroups; g++) {
            first[g] = (int32_t)at;
            at += (size_t)count[g];
            count[g] = 0;
        }
        for (i = 0; i < n; i++) {
            g = (size_t)m->group[i];
            m->group_order[first[g] + count[g]++] = targets[i];
            m->group_of[m->apicid[targets[i]] / span] = -1;
        }
    }
    first[ngroups] = (int32_t)n;
    return ngroups;
}

/* The IPIs to m->newly[0..n), as the APIC driver sends them. */
static void send_call_function_ipi_mask(struct machine *m, int c, size_t n, i64 *tp)
{
    if (!n)
        return;
    m->n_ipis += (i64)n;
    *tp = send_ipi_mask(m, c, m->newly, n, *tp, EV_IPI, 0);
}

/* The ICR writes of one vector to targets[0..n) (apic_groups()), each
 * target's event `ev` (with `a`) at its IPI's arrival: every target of one
 * write sees it after the write plus the delivery latency. Returns the time
 * after the last write. The function-call IPI and the RAR RFC's action IPI
 * both go this way. */
i64 send_ipi_mask(struct machine *m, int c, const int32_t *targets, size_t n, i64 t, int ev,
                  i64 a)
{
    size_t g, at, ngroups = apic_groups(m, targets, n);
    for (g = 0; g < ngroups; g++) {
        t += m->c_ipi_send;
        m->n_icr_writes += 1;
        for (at = (size_t)m->group_start[g]; at < (size_t)m->group_start[g + 1]; at++) {
            int x = m->group_order[at];
            i64 arrival = t + m->ipi_lat[dist(m, c, x)];
            if (m->ipi_jitter)
                arrival += below(&m->rng, m->ipi_jitter);
            push(m, arrival, x, ev, a, 0);
        }
    }
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
    int task;
    if (m->hung[x])
        return;     /* the watchdog was armed when the request was queued */
    if (!delivered) {
        vcpu_sync(m, x);
        if (m->cstate[x] >= 0) {
            /* The IPI wakes an idle CPU: it pays the C-state's exit latency. */
            m->n_ipis_to_idle += 1;
            start += wake_from_idle(m, x, 1);
        } else {
            idle_exit(m, x, now);
        }
        if (m->virt)
            start = max64(start, preempted_until(m, x, now));
    }
    if (m->in_handler[x]) {
        m->ipi_pending[x] = 1;      /* the APIC raises it again when the handler returns */
        return;
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
    t = now + m->c_irq;
    task = m->cur[x];
    if (task >= 0 && m->task_mm[task] != INIT_MM)
        t += m->c_pti;                      /* the interrupt landed in user mode */
    m->irq_cycles[x] += t - now;
    m->irq_start[x] = now;
    /* the handler owns the CPU from here; flush_smp_call_function_queue()
     * takes the queue once the entry is done (EV_CSD with a=1), so requests
     * queued meanwhile ride on this interrupt */
    m->in_handler[x] = 1;
    push(m, t, x, EV_CSD, 1, 0);
    interrupted(m, x, now, t);
}

static void handler_done(struct machine *m, int x, i64 t)
{
    m->in_handler[x] = 0;
    if (m->ipi_pending[x]) {
        m->ipi_pending[x] = 0;
        push(m, t, x, EV_IPI, 0, 1);
    }
}

/* The IPI handler on x: first (drain) flush_smp_call_function_queue()
 * takes every queued request at once (llist_del_all: an xchg on the queue
 * head the senders fight over); then each request runs as its own event,
 * so what the others do to the lines it touches in the meantime is seen.
 * Pushed before interrupted() resumes the idle loop, so an idle CPU runs its
 * requests before it can enter a C-state again. */
void ev_csd(struct machine *m, int x, int drain)
{
    struct i32deque *queue = &m->handling[x];
    i64 now = m->now, t;
    int slot;
    if (m->hung[x])
        return;
    if (drain) {
        /* The handler's queue is empty here: it swaps with the
         * call_single_queue, whose buffer it reuses. */
        struct i32deque taken;
        t = atomic(m, x, cpu_line(m, m->csq_line, x), now, m->c_atomic);
        m->irq_cycles[x] += t - now;
        taken.v = m->csdq[x].v, taken.cap = m->csdq[x].cap, taken.n = m->csdq[x].n;
        taken.head = 0;
        m->csdq[x].v = queue->v, m->csdq[x].cap = queue->cap, m->csdq[x].n = 0;
        *queue = taken;
        if (taken.n) {
            if (m->calls.v[taken.v[0]].kind == CALL_FLUSH)
                m->n_flush_cycles += t - m->irq_start[x];  /* the interrupt, entry included */
            push(m, t, x, EV_CSD, 0, 0);
        } else {
            handler_done(m, x, t);
        }
        interrupted(m, x, now, t);
        return;
    }
    slot = queue->v[queue->head++];
    queue->n--;
    t = run_call(m, x, slot, now);
    m->irq_cycles[x] += t - now;
    if (m->calls.v[slot].kind == CALL_FLUSH)
        m->n_flush_cycles += t - now;
    /* the next request, or the IPI that arrived meanwhile, before the idle
     * loop resumes (see ev_ipi) */
    if (queue->n) {
        push(m, t, x, EV_CSD, 0, 0);
    } else {
        queue->head = 0;
        handler_done(m, x, t);
    }
    interrupted(m, x, now, t);
}

/* One queued cross-call in the IPI handler on x; returns when done. */
static i64 run_call(struct machine *m, int x, int slot, i64 t)
{
    struct call *call = &m->calls.v[slot];
    int initiator = call->initiator;
    i64 ack, arrival;
    ring(m, x, TR_IPI, call->kind, initiator);
    t += m->xfer[dist(m, x, initiator)];         /* load the csd the initiator wrote */
    if (call->kind == CALL_FLUSH) {
        /* the initiator's per-CPU flush_tlb_info, written for this flush (the
         * async RFC sends it inline in the csd instead) */
        if (m->k_flush_wait != WAIT_ACK)
            t = read_line(m, x, cpu_line(m, m->info_line, initiator), t);
        call = &m->calls.v[slot];
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
    } else if (call->kind == CALL_MEMBARRIER) {     /* ipi_mb() */
        t += m->c_mb + m->c_csd;
        ack = t;
    } else {    /* CALL_CHECK, CALL_SYNC: a function that only has to have run */
        t += m->c_csd;
        ack = t;
    }
    /* csd_unlock(): the store takes the line from the spinning initiator,
     * whose next load brings it back: two transfers until it sees it */
    call = &m->calls.v[slot];
    arrival = ack + 2 * m->xfer[dist(m, x, initiator)];
    m->csd_unlock[initiator][x] = arrival;
    call->done_at = max64(call->done_at, arrival);
    call->pending -= 1;
    if (call->pending == 0)
        push(m, max64(call->done_at, call->local_done), initiator, EV_CALL_DONE, slot, 0);
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

/* The initiator has every ack. The slot is released after the continuation
 * (smp.py pops the call first): nothing in between looks a call up by id,
 * and the lists it hands on stay where they are until then. */
void ev_call_done(struct machine *m, int c, i64 islot)
{
    int slot = (int)islot;
    struct call *call = &m->calls.v[slot];
    i64 now = m->now;
    size_t i;
    if (call->kind == CALL_FLUSH) {
        struct mm *M = &m->mms.v[call->mm];
        if (call->consider)
            now = consider_global_asid(m, c, call->task, call->mm, now);
        /* the initiator's time in the flush, less the interrupts it handled
         * meanwhile (counted where they ran) */
        m->n_flush_cycles += now - call->t0 - (m->irq_cycles[c] - call->irq0);
        if (call->unlock)
            now = mmap_lock(m, c, call->mm, now);   /* mmap_read_unlock() */
        if (m->measuring && call->t0 >= m->warmup)
            PUSH(m, m->flush_lat, now - call->t0);
        for (i = 0; i < call->snap.n; i++) {
            struct page *pg = page_of(m, M, call->snap.v[i].page);
            if (call->snap.v[i].ver > pg->ret) {
                pg->ret = call->snap.v[i].ver;
                pg->ret_t = now;
                pg->ret_cpu = c;
            }
        }
        if (call->tables.n && tlb_remove_tables(m, c, slot, now)) {
            release_call(m, slot);      /* tlb_remove_table_sync_one() first */
            return;
        }
    }
    call_continue(m, c, slot, now);
    release_call(m, slot);
}

/* What the initiator does once its cross-call has completed. */
static void call_continue(struct machine *m, int c, int slot, i64 now)
{
    struct call *call = &m->calls.v[slot];
    int mm = call->mm, task = call->task;
    size_t i;
    switch (call->cont) {
    case CONT_STEP:
        schedule_step(m, c, now);
        break;
    case CONT_EXIT_MMAP:
        exit_mmap_done(m, c, task, mm, now);
        break;
    case CONT_HAZPTR:
        if (call->kind == CALL_UNLAZY) {        /* then do_check_lazy_tlb, same CPU */
            int check = new_call(m, CALL_CHECK, c, mm, task, CONT_HAZPTR, now);
            struct i32vec rest = m->calls.v[check].rest;
            i64 t;
            m->calls.v[check].rest = m->calls.v[slot].rest;
            m->calls.v[slot].rest = rest;
            t = smp_call_function_many(m, c, check, m->calls.v[check].rest.v, 1, now);
            finish_sending(m, c, check, t);
        } else {
            /* the rest stays in this slot's vector until ev_call_done releases it */
            hazptr_retire(m, c, task, mm, call->rest.v + 1, call->rest.n - 1, now);
        }
        break;
    case CONT_TABLE_SYNC:
        for (i = 0; i < call->tables.n; i++)
            free_table(m, c, m->calls.v[slot].tables.v[i]);
        m->calls.v[slot].cont = m->calls.v[slot].then;
        call_continue(m, c, slot, now);
        break;
    default:    /* CONT_EXIT_FREE */
        free_mm(m, c, mm);
        exit_done(m, c, task, now);
        break;
    }
}

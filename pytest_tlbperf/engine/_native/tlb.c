/*
 * tlb.c -- arch/x86/mm/tlb.c: ASID allocation (init_mm dynamic or
 * dedicated), switch_mm_irqs_off(), lazy TLB mode and its is_lazy line,
 * flush_tlb_func() (v5.13..v6.6 order, read_mm_tlb_gen, PTI's user-ASID
 * flush) and the shootdown flush_tlb_mm_range() -> native_flush_tlb_multi();
 * plus mm_cpumask updates (cpumask_set_cpu / cpumask_clear_cpu on the
 * shared mm_cpumask line).
 */

#include "machine.h"

static i64 native_flush_tlb_multi(struct machine *m, int c, int slot, size_t ntargets, i64 t);

static i64 cpumask_set_cpu(struct machine *m, int c, int mm, i64 t)
{
    t = atomic(m, c, mm_line(m, mm, 1), t, m->c_atomic);
    set_bit(m->mms.v[mm].mask, c);
    return t;
}

static i64 cpumask_clear_cpu(struct machine *m, int c, int mm, i64 t)
{
    t = atomic(m, c, mm_line(m, mm, 1), t, m->c_atomic);
    clear_bit(m->mms.v[mm].mask, c);
    ring(m, c, TR_CPUMASK_CLEAR, mm, 0);
    return t;
}

static int choose_new_asid(struct machine *m, int c, int mm, i64 next_tlb_gen, int *need_flush)
{
    i64 *ids = &m->ctx_id[c * NR_HW_ASIDS], ctx;
    int asid;
    if (!m->pcid) {
        *need_flush = 1;
        return 0;
    }
    if (mm == INIT_MM && m->dedicated) {
        *need_flush = 0;
        return INIT_ASID;       /* seed 001: "give init_mm its own dedicated ASID" */
    }
    ctx = m->mms.v[mm].ctx;
    for (asid = 0; asid < TLB_NR_DYN_ASIDS; asid++) {
        if (ids[asid] == ctx) {
            *need_flush = m->ctx_gen[c * NR_HW_ASIDS + asid] < next_tlb_gen;
            return asid;
        }
    }
    asid = m->next_asid[c]++;
    if (asid >= TLB_NR_DYN_ASIDS) {
        asid = 0;
        m->next_asid[c] = 1;
    }
    *need_flush = 1;
    return asid;
}

i64 switch_mm_irqs_off(struct machine *m, int c, int nxt, i64 t)
{
    int prev = m->loaded_mm[c], was_lazy = m->is_lazy[c], asid, need_flush;
    i64 gen;
    if (was_lazy) {
        /* cpu_tlbstate_shared.is_lazy is written only when it changes
         * (v5.13: "Do not make is_lazy dirty for no reason") */
        m->is_lazy[c] = 0;
        t = atomic(m, c, cpu_line(m, m->lazy_line, c), t, 0);
    }
    if (prev == nxt) {
        if (was_lazy && nxt != INIT_MM) {
            /* Leaving lazy mode on the same mm: catch up through tlb_gen
             * (re-entering mm_cpumask first if v4.14-rc1 took us out). */
            if (!test_bit(m->mms.v[nxt].mask, c))
                t = cpumask_set_cpu(m, c, nxt, t);
            t = read_line(m, c, mm_line(m, nxt, 2), t + m->c_mb);
            asid = m->loaded_asid[c];
            if (m->ctx_gen[c * NR_HW_ASIDS + asid] < m->mms.v[nxt].gen) {
                flush_asid(m, c, asid);
                m->ctx_gen[c * NR_HW_ASIDS + asid] = m->mms.v[nxt].gen;
                m->n_full_flushes += 1;
                m->n_cr3 += 1;
                t += m->c_full_flush;
            }
        }
        return t;
    }
    /* Stop remote flushes for the previous mm, start them for the next. */
    if (prev != INIT_MM && test_bit(m->mms.v[prev].mask, c))
        t = cpumask_clear_cpu(m, c, prev, t);
    if (nxt != INIT_MM && !test_bit(m->mms.v[nxt].mask, c))
        t = cpumask_set_cpu(m, c, nxt, t);
    t = read_line(m, c, mm_line(m, nxt, 2), t);
    gen = m->mms.v[nxt].gen;
    asid = choose_new_asid(m, c, nxt, gen, &need_flush);
    m->n_cr3 += 1;
    if (need_flush) {
        flush_asid(m, c, asid);
        m->ctx_id[c * NR_HW_ASIDS + asid] = m->mms.v[nxt].ctx;
        m->ctx_gen[c * NR_HW_ASIDS + asid] = gen;
        m->n_full_flushes += 1;
        t += m->c_full_flush;
    } else {
        t += m->c_cr3;
    }
    m->loaded_mm[c] = nxt;
    m->loaded_asid[c] = asid;
    ring(m, c, TR_SWITCH_MM, prev, nxt);
    if (!need_flush)
        arm_walks(m, c);
    return t;
}

/* Put CPU x on init_mm at no cost (the oracle's recovery after a
 * use-after-free, so the rest of the run stays meaningful). */
void force_init_mm(struct machine *m, int x)
{
    int asid, need_flush;
    m->loaded_mm[x] = INIT_MM;
    m->is_lazy[x] = 0;
    asid = choose_new_asid(m, x, INIT_MM, m->mms.v[INIT_MM].gen, &need_flush);
    if (need_flush) {
        flush_asid(m, x, asid);
        m->ctx_id[x * NR_HW_ASIDS + asid] = m->mms.v[INIT_MM].ctx;
        m->ctx_gen[x * NR_HW_ASIDS + asid] = m->mms.v[INIT_MM].gen;
    }
    m->loaded_asid[x] = asid;
}

i64 leave_mm(struct machine *m, int c, i64 t)
{
    if (m->loaded_mm[c] == INIT_MM)
        return t;
    ring(m, c, TR_LEAVE_MM, m->loaded_mm[c], 0);
    return switch_mm_irqs_off(m, c, INIT_MM, t);
}

i64 enter_lazy_tlb(struct machine *m, int c, i64 t)
{
    int mm = m->loaded_mm[c];
    if (mm == INIT_MM)
        return t;
    if (m->k_lazy_tlb == LAZY_SWITCH_TO_INIT)
        return switch_mm_irqs_off(m, c, INIT_MM, t);   /* seed 001 */
    m->is_lazy[c] = 1;
    t = atomic(m, c, cpu_line(m, m->lazy_line, c), t, 0);
    ring(m, c, TR_LAZY, mm, 0);
    if (m->k_lazy_cpumask == CPUMASK_CLEAR)
        t = cpumask_clear_cpu(m, c, mm, t);             /* v4.14-rc1 (94b1b03b519b) */
    return t;
}

/* PTI: INVLPG flushed the kernel PCID; the user PCID holds the same pages
 * (native_flush_tlb_one_user()). With INVPCID each page is flushed there
 * too; without it, invalidate_user_asid() drops the whole user PCID at the
 * next return to user (charged here). */
static i64 flush_user_asid(struct machine *m, int c, int asid, i64 npages, i64 t)
{
    if (m->invpcid) {
        m->n_invpcid += npages;
        return t + m->c_invpcid * npages;
    }
    flush_asid(m, c, asid);
    m->n_full_flushes += 1;
    return t + m->c_full_flush;
}

/* Bring this CPU's TLB up to date with call->mm's tlb_gen, in the order of
 * v5.13..v6.6: a remote CPU that switched to another mm returns first, then
 * init_mm, then lazy mode, then the generations. */
i64 flush_tlb_func(struct machine *m, int c, const struct call *call, i64 t)
{
    int mm = m->loaded_mm[c], asid;
    i64 local_gen, mm_gen, page;
    t += m->c_flush_func;
    if (m->k_read_gen == READ_GEN_ALWAYS)
        /* before v6.0 the read sat in the declarations: every call pulls the
         * (contended) tlb_gen line of whatever mm is loaded */
        t = read_line(m, c, mm_line(m, mm, 2), t);
    if (c != call->initiator && call->mm != mm)
        return t;                       /* we switched away since */
    if (mm == INIT_MM)
        return t;
    if (m->is_lazy[c]) {
        /* "We need to at least flush our paging-structure cache ... just
         * switch to init_mm." */
        ring(m, c, TR_LEAVE_MM, mm, 0);
        return switch_mm_irqs_off(m, c, INIT_MM, t);
    }
    asid = m->loaded_asid[c];
    local_gen = m->ctx_gen[c * NR_HW_ASIDS + asid];
    if (m->k_read_gen == READ_GEN_WHEN_NEEDED) {
        /* aa44284960d5: "checking mm_tlb_gen unnecessarily would have
         * negative caching effects so avoid it" */
        if (call->new_gen <= local_gen)
            return t;
        t = read_line(m, c, mm_line(m, mm, 2), t);
    }
    mm_gen = m->mms.v[mm].gen;
    if (local_gen >= mm_gen)
        return t;                       /* a concurrent flush caught us up */
    if (call->npages != TLB_FLUSH_ALL && call->new_gen == local_gen + 1
            && call->new_gen == mm_gen) {
        for (page = call->start; page < call->start + call->npages; page++)
            invlpg(m, c, asid, page);
        /* INVLPG also drops every paging-structure-cache entry of the
         * current PCID (Intel SDM Vol. 3, 4.10.4.1). */
        m->psc_epoch[c * NR_HW_ASIDS + asid] += 1;
        m->n_invlpg += call->npages;
        m->ctx_gen[c * NR_HW_ASIDS + asid] = call->new_gen;
        t += m->c_invlpg * call->npages;
        if (m->pti)
            t = flush_user_asid(m, c, asid, call->npages, t);
        return t;
    }
    flush_asid(m, c, asid);
    m->n_full_flushes += 1;
    m->ctx_gen[c * NR_HW_ASIDS + asid] = mm_gen;
    return t + m->c_full_flush;
}

/* The page snapshot and the tables to free come in m->snap and
 * m->freed_tables (filled by change_ptes / exit_mmap): the call swaps them
 * with its own empty vectors. */
void flush_tlb_mm_range(struct machine *m, int c, int mm, i64 start, i64 npages,
                        int freed, int task, int cont, i64 t)
{
    struct snapvec snap;
    struct i32vec tables;
    struct call *call;
    i64 t0 = t;
    size_t ntargets = 0;
    uint64_t w;
    int slot, flush_all, local, i, x;
    t = atomic(m, c, mm_line(m, mm, 2), t, m->c_atomic);     /* inc_mm_tlb_gen() */
    m->mms.v[mm].gen += 1;
    /* get_flush_tlb_info(): fill this CPU's flush_tlb_info for the targets
     * (the async RFC's "inline messages" copy it into each csd instead) */
    if (m->k_flush_wait != WAIT_ACK)
        t = atomic(m, c, cpu_line(m, m->info_line, c), t, 0);
    slot = new_call(m, CALL_FLUSH, c, mm, task, cont, t0);
    call = &m->calls.v[slot];
    call->start = start;
    call->npages = npages == TLB_FLUSH_ALL || npages > m->k_ceiling ? TLB_FLUSH_ALL : npages;
    call->new_gen = m->mms.v[mm].gen;
    call->freed = freed;
    snap = call->snap, call->snap = m->snap, m->snap = snap;
    tables = call->tables, call->tables = m->freed_tables, m->freed_tables = tables;
    /* async flush is only safe when no page table is freed (seed 002, rule 1) */
    call->wait_ack = m->k_flush_wait == WAIT_ACK && !freed;
    /* Which CPUs in mm_cpumask get an IPI: lazy ones only when the knobs say
     * so. on_each_cpu_mask() when every CPU in the mask is flushed anyway,
     * else on_each_cpu_cond_mask(), which reads each CPU's is_lazy line. */
    t = read_line(m, c, mm_line(m, mm, 1), t);
    flush_all = m->k_flush_lazy == FLUSH_LAZY_ALWAYS
        || (freed && m->k_flush_lazy == FLUSH_LAZY_FREED);
    for_each_cpu(x, i, w, m->mms.v[mm].mask, m->nwords) {
        if (x == c)
            continue;
        if (!flush_all)
            t = read_line(m, c, cpu_line(m, m->lazy_line, x), t);
        if (!m->is_lazy[x] || flush_all)
            m->targets[ntargets++] = x;
        else
            ring(m, c, TR_SKIP, x, mm);
    }
    local = m->loaded_mm[c] == mm;
    if (local && m->k_flush_local == LOCAL_BEFORE_REMOTE)
        t = flush_tlb_func(m, c, &m->calls.v[slot], t);
    t = native_flush_tlb_multi(m, c, slot, ntargets, t);
    if (local && m->k_flush_local == LOCAL_CONCURRENT)
        t = flush_tlb_func(m, c, &m->calls.v[slot], t);
    ring(m, c, TR_FLUSH, mm, m->calls.v[slot].pending);
    finish_sending(m, c, slot, t);
}

/* Send the flush to every target; a KVM guest with the PV flush goes through
 * kvm_flush_tlb_multi() instead (pv_ops.mmu.flush_tlb_multi). */
static i64 native_flush_tlb_multi(struct machine *m, int c, int slot, size_t ntargets, i64 t)
{
    if (m->pv)
        return kvm_flush_tlb_multi(m, c, slot, ntargets, t);
    return smp_call_function_many(m, c, slot, m->targets, ntargets, t);
}

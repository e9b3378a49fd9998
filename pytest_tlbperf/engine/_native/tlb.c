/*
 * tlb.c -- arch/x86/mm/tlb.c: ASID allocation (init_mm dynamic or
 * dedicated, global ASIDs), switch_mm_irqs_off() with the eager or lazy
 * mm_cpumask (v6.14), lazy TLB mode and its is_lazy line, flush_tlb_func()
 * (v6.15 order, read_mm_tlb_gen, PTI's user-ASID flush), flush_tlb_mm_range()
 * in v6.15's dispatch -> flush_tlb_multi() / native_flush_tlb_multi() with
 * should_flush_tlb() and the once-a-second trim, consider_global_asid(),
 * broadcast_tlb_flush() by INVLPGB + TLBSYNC (EV_BROADCAST) or the RAR RFC's
 * rar_tlb_flush(), and finish_asid_transition(); plus mm_cpumask updates
 * (cpumask_set_cpu / cpumask_clear_cpu on the shared mm_cpumask line).
 */

#include "machine.h"

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

/* (asid, need_flush). A global ASID (broadcast_flush) is the same on every
 * CPU and kept up to date by the broadcasts, so it never needs a flush --
 * except with RAR on a CPU that was not in mm_cpumask, which the RAR flushes
 * did not cover (the RAR RFC's `new_cpu`). */
static int choose_new_asid(struct machine *m, int c, int mm, i64 next_tlb_gen, int new_cpu,
                           int *need_flush)
{
    i64 *ids = &m->ctx_id[c * NR_HW_ASIDS], ctx, gasid;
    int asid;
    if (!m->pcid) {
        *need_flush = 1;
        return 0;
    }
    gasid = m->mms.v[mm].gasid;
    if (gasid) {
        *need_flush = new_cpu && m->k_broadcast == BROADCAST_RAR;
        return (int)gasid;
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

static i64 load_new_mm(struct machine *m, int c, int prev, int nxt, i64 gen, i64 t,
                       int new_cpu);

i64 switch_mm_irqs_off(struct machine *m, int c, int nxt, i64 t)
{
    int prev = m->loaded_mm[c], was_lazy = m->is_lazy[c], asid, new_cpu = 0;
    if (was_lazy) {
        /* cpu_tlbstate_shared.is_lazy is written only when it changes
         * (v5.13: "Do not make is_lazy dirty for no reason") */
        m->is_lazy[c] = 0;
        t = atomic(m, c, cpu_line(m, m->lazy_line, c), t, 0);
    }
    if (prev == nxt) {
        i64 gasid = m->mms.v[nxt].gasid;
        asid = m->loaded_asid[c];
        if (gasid && asid != gasid) {
            /* the mm moved to a global ASID while this CPU ran it */
            t = read_line(m, c, mm_line(m, nxt, 2), t);
            return load_new_mm(m, c, prev, nxt, m->mms.v[nxt].gen, t, 0);
        }
        if (asid >= NR_HW_ASIDS)
            return t;       /* "Broadcast TLB invalidation keeps this ASID up to date" */
        if (was_lazy && nxt != INIT_MM) {
            /* Leaving lazy mode on the same mm: catch up through tlb_gen
             * (re-entering mm_cpumask first if v4.14-rc1 took us out). */
            if (!test_bit(m->mms.v[nxt].mask, c))
                t = cpumask_set_cpu(m, c, nxt, t);
            t = read_line(m, c, mm_line(m, nxt, 2), t + m->c_mb);
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
    /* Stop remote flushes for the previous mm (eager: before v6.14), start
     * them for the next (lazy: only if the bit is not already set). */
    if (m->k_cpumask == MASK_EAGER && prev != INIT_MM && test_bit(m->mms.v[prev].mask, c))
        t = cpumask_clear_cpu(m, c, prev, t);
    if (nxt != INIT_MM && !test_bit(m->mms.v[nxt].mask, c)) {
        t = cpumask_set_cpu(m, c, nxt, t);
        new_cpu = 1;
    }
    t = read_line(m, c, mm_line(m, nxt, 2), t);
    return load_new_mm(m, c, prev, nxt, m->mms.v[nxt].gen, t, new_cpu);
}

/* choose_new_asid() and the CR3 write (load_new_mm_cr3) */
static i64 load_new_mm(struct machine *m, int c, int prev, int nxt, i64 gen, i64 t,
                       int new_cpu)
{
    int need_flush, asid = choose_new_asid(m, c, nxt, gen, new_cpu, &need_flush);
    m->n_cr3 += 1;
    if (need_flush) {
        flush_asid(m, c, asid);
        if (asid < NR_HW_ASIDS) {
            m->ctx_id[c * NR_HW_ASIDS + asid] = m->mms.v[nxt].ctx;
            m->ctx_gen[c * NR_HW_ASIDS + asid] = gen;
        }
        m->n_full_flushes += 1;
        t += m->c_full_flush;
    } else {
        t += m->c_cr3;
    }
    m->loaded_mm[c] = nxt;
    m->loaded_asid[c] = asid;
    /* cpu_tlbstate.loaded_mm, which should_flush_tlb() reads remotely */
    t = atomic(m, c, cpu_line(m, m->tlbstate_line, c), t, 0);
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
    asid = choose_new_asid(m, x, INIT_MM, m->mms.v[INIT_MM].gen, 0, &need_flush);
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
 * v6.15 (v5.13..v6.6 had the same order, without the lazy mask and global
 * ASIDs): a CPU that no longer runs call->mm returns first -- with the lazy
 * mask it leaves mm_cpumask there, the initiator included (953753db887f) --
 * then init_mm; then a CPU still on a dynamic ASID of an mm that moved to a
 * global one reloads; a global ASID is kept up to date by INVLPGB; then lazy
 * mode; then the generations. A batched flush (reclaim) has no mm: it
 * flushes whatever is loaded. */
i64 flush_tlb_func(struct machine *m, int c, const struct call *call, i64 t)
{
    int mm = m->loaded_mm[c], asid;
    i64 local_gen, mm_gen, page, gasid;
    t += m->c_flush_func;
    if (m->k_read_gen == READ_GEN_ALWAYS)
        /* before v6.0 the read sat in the declarations: every call pulls the
         * (contended) tlb_gen line of whatever mm is loaded */
        t = read_line(m, c, mm_line(m, mm, 2), t);
    if (!call->any_mm && call->mm != mm) {
        if (m->k_cpumask != MASK_EAGER)
            /* "The CPU was left in the mm_cpumask of the target mm. Clear it." */
            return cpumask_clear_cpu(m, c, call->mm, t);
        if (c != call->initiator)
            return t;                   /* we switched away since */
    }
    if (mm == INIT_MM)
        return t;
    asid = m->loaded_asid[c];
    gasid = m->mms.v[mm].gasid;
    if (gasid && asid != gasid)
        /* "Reload the ASID if transitioning into or out of a global ASID"
         * -- before the lazy check, so a lazy CPU leaves lazy mode here */
        return switch_mm_irqs_off(m, c, mm, t);
    if (asid >= NR_HW_ASIDS && m->k_broadcast == BROADCAST_INVLPGB)
        return t;           /* "Broadcast ASIDs are always kept up to date with INVLPGB" */
    if (m->is_lazy[c]) {
        /* "We need to at least flush our paging-structure cache ... just
         * switch to init_mm." */
        ring(m, c, TR_LEAVE_MM, mm, 0);
        return switch_mm_irqs_off(m, c, INIT_MM, t);
    }
    if (asid >= NR_HW_ASIDS) {
        /* RAR with a global ASID: flushes that get here (the trim IPIs) are
         * processed as a full flush of the PCID */
        flush_asid(m, c, asid);
        m->n_full_flushes += 1;
        return t + m->c_full_flush;
    }
    local_gen = m->ctx_gen[c * NR_HW_ASIDS + asid];
    if (m->k_read_gen == READ_GEN_WHEN_NEEDED) {
        /* aa44284960d5: "checking mm_tlb_gen unnecessarily would have
         * negative caching effects so avoid it" */
        if (!call->any_mm && call->new_gen <= local_gen)
            return t;
        t = read_line(m, c, mm_line(m, mm, 2), t);
    }
    mm_gen = m->mms.v[mm].gen;
    if (local_gen >= mm_gen)
        return t;                       /* a concurrent flush caught us up */
    if (!call->any_mm && call->npages != TLB_FLUSH_ALL && call->new_gen == local_gen + 1
            && call->new_gen == mm_gen) {
        for (page = call->start; page < call->start + call->npages; page++)
            invlpg(m, c, asid, page);
        /* INVLPG also drops every paging-structure-cache entry of the
         * current PCID (Intel SDM Vol. 3, 4.10.4.1). */
        m->psc_epoch[EPOCH(m, c, asid)] += 1;
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

static int should_trim_cpumask(struct machine *m, int mm, i64 t);
static i64 flush_tlb_multi(struct machine *m, int c, int slot, int trim, i64 t);
static void broadcast_tlb_flush(struct machine *m, int c, int slot, i64 t);

/* Is a CPU other than c in the bitmap? */
static int has_other(const struct machine *m, const uint64_t *mask, int c)
{
    int i;
    for (i = 0; i < m->nwords; i++)
        if (mask[i] & (i == c >> 6 ? ~((uint64_t)1 << (c & 63)) : ~(uint64_t)0))
            return 1;
    return 0;
}

/* v6.15's dispatch: an mm with a global ASID is flushed by broadcast
 * (INVLPGB / RAR); otherwise other CPUs in mm_cpumask get IPIs, after which
 * the mm may be given a global ASID; otherwise only this CPU flushes, if it
 * runs the mm. The page snapshot and the tables to free come in m->snap and
 * m->freed_tables (filled by change_ptes / exit_mmap): the call swaps them
 * with its own empty vectors. Returns the call's slot. */
int flush_tlb_mm_range(struct machine *m, int c, int mm, i64 start, i64 npages,
                       int freed, int task, int cont, i64 t)
{
    struct snapvec snap;
    struct i32vec tables;
    struct call *call;
    i64 t0 = t;
    int slot, trim = 0;
    t = atomic(m, c, mm_line(m, mm, 2), t, m->c_atomic);     /* inc_mm_tlb_gen() */
    m->mms.v[mm].gen += 1;
    /* get_flush_tlb_info(): fill this CPU's flush_tlb_info for the targets
     * (the async RFC's "inline messages" copy it into each csd instead) */
    if (m->k_flush_wait != WAIT_ACK)
        t = atomic(m, c, cpu_line(m, m->info_line, c), t, 0);
    slot = new_call(m, CALL_FLUSH, c, mm, task, cont, t0);
    call = &m->calls.v[slot];
    call->irq0 = m->irq_cycles[c];
    call->start = start;
    call->npages = npages == TLB_FLUSH_ALL || npages > m->k_ceiling ? TLB_FLUSH_ALL : npages;
    call->new_gen = m->mms.v[mm].gen;
    call->freed = freed;
    snap = call->snap, call->snap = m->snap, m->snap = snap;
    tables = call->tables, call->tables = m->freed_tables, m->freed_tables = tables;
    /* async flush is only safe when no page table is freed (seed 002, rule 1) */
    call->wait_ack = m->k_flush_wait == WAIT_ACK && !freed;
    if (m->mms.v[mm].gasid) {
        /* the RAR RFC (v3) trims mm_cpumask of global-ASID mms too, with IPIs */
        if (m->k_broadcast == BROADCAST_RAR && m->k_cpumask == MASK_LAZY)
            trim = should_trim_cpumask(m, mm, t);
        if (!trim) {
            broadcast_tlb_flush(m, c, slot, t);
            return slot;
        }
    }
    t = read_line(m, c, mm_line(m, mm, 1), t);
    if (!has_other(m, m->mms.v[mm].mask, c)) {
        /* no other CPU in mm_cpumask: flush here if this CPU runs the mm */
        if (m->loaded_mm[c] == mm)
            t = flush_tlb_func(m, c, &m->calls.v[slot], t);
        ring(m, c, TR_FLUSH, mm, 0);
        finish_sending(m, c, slot, t);
        return slot;
    }
    if (m->k_cpumask == MASK_LAZY && !trim)
        trim = should_trim_cpumask(m, mm, t);
    t = flush_tlb_multi(m, c, slot, trim, t);
    /* consider_global_asid() runs once flush_tlb_multi() returned */
    m->calls.v[slot].consider = m->k_broadcast != BROADCAST_NONE;
    ring(m, c, TR_FLUSH, mm, m->calls.v[slot].pending);
    finish_sending(m, c, slot, t);
    return slot;
}

/* 6db2526c1d69: CPUs left in mm_cpumask that no longer run the mm are sent
 * one flush (which clears their bit) at most once a second. */
static int should_trim_cpumask(struct machine *m, int mm, i64 t)
{
    i64 jiffies = floordiv(t, m->jiffy);
    if (jiffies > m->mms.v[mm].next_trim) {
        m->mms.v[mm].next_trim = jiffies + HZ;
        return 1;
    }
    return 0;
}

/* The remote filter: "Lazy TLB will get flushed at the next context
 * switch"; with the lazy mask (v6.14) also a CPU that runs another mm is
 * skipped, unless this flush trims the mask. */
static inline int should_flush_tlb(const struct machine *m, int x, int mm, int trim)
{
    if (m->is_lazy[x])
        return 0;
    if (m->k_cpumask != MASK_LAZY)
        return 1;                       /* tlb_is_not_lazy() */
    return m->loaded_mm[x] == mm || trim;
}

/* native_flush_tlb_multi(): on_each_cpu_mask() -- every CPU in the mask,
 * the local one included -- when page tables are freed or the mm is moving
 * to a global ASID; else on_each_cpu_cond_mask() with the filter of the
 * knobs: tlb_is_not_lazy (v4.20) or should_flush_tlb (v6.14: not lazy, and
 * running the mm or trimming). The filter reads each CPU's
 * cpu_tlbstate_shared.is_lazy line, and should_flush_tlb its
 * cpu_tlbstate.loaded_mm line too. The local flush runs before the IPIs are
 * sent or while they fly (flush_local). */
static i64 flush_tlb_multi(struct machine *m, int c, int slot, int trim, i64 t)
{
    const struct call *call = &m->calls.v[slot];
    int mm = call->mm, freed = call->freed, local, i, x;
    int read_loaded = m->k_cpumask == MASK_LAZY;
    int flush_all = m->k_flush_lazy == FLUSH_LAZY_ALWAYS
        || (freed && m->k_flush_lazy == FLUSH_LAZY_FREED) || m->mms.v[mm].transition;
    size_t ntargets = 0;
    uint64_t w;
    for_each_cpu(x, i, w, m->mms.v[mm].mask, m->nwords) {
        if (x == c)
            continue;
        if (!flush_all) {
            t = read_line(m, c, cpu_line(m, m->lazy_line, x), t);
            if (read_loaded && !m->is_lazy[x])
                t = read_line(m, c, cpu_line(m, m->tlbstate_line, x), t);
        }
        if (flush_all || should_flush_tlb(m, x, mm, trim))
            m->targets[ntargets++] = x;
        else
            ring(m, c, TR_SKIP, x, mm);
    }
    if (m->k_cpumask != MASK_EAGER)
        /* the local CPU goes through the same test when it is in the mask */
        local = test_bit(m->mms.v[mm].mask, c) && (flush_all || should_flush_tlb(m, c, mm, trim));
    else
        local = m->loaded_mm[c] == mm;
    if (local && m->k_flush_local == LOCAL_BEFORE_REMOTE)
        t = flush_tlb_func(m, c, &m->calls.v[slot], t);
    t = native_flush_tlb_multi(m, c, slot, ntargets, t);
    if (local && m->k_flush_local == LOCAL_CONCURRENT)
        t = flush_tlb_func(m, c, &m->calls.v[slot], t);
    return t;
}

/* Send the flush to m->targets[0..ntargets); a KVM guest with the PV flush
 * goes through kvm_flush_tlb_multi() instead (pv_ops.mmu.flush_tlb_multi). */
i64 native_flush_tlb_multi(struct machine *m, int c, int slot, size_t ntargets, i64 t)
{
    if (m->pv)
        return kvm_flush_tlb_multi(m, c, slot, ntargets, t);
    return smp_call_function_many(m, c, slot, m->targets, ntargets, t);
}

/* -- global ASIDs and broadcast flushes (v6.15, the RAR RFC) ------------- */

static i64 use_global_asid(struct machine *m, int c, int mm, i64 t);

/* After an IPI flush: "Check every once in a while" -- when the flushing
 * thread's pid matches the jiffy (mod 32) -- whether more than 3 CPUs run the
 * mm and are not lazy; if so, use_global_asid(). */
i64 consider_global_asid(struct machine *m, int c, i64 task, int mm, i64 t)
{
    const uint64_t *mask = m->mms.v[mm].mask;
    size_t nlines = 0;
    int count = 0, bits = 0, i, x;
    uint64_t w;
    if ((task & 31) != (floordiv(t, m->jiffy) & 31) || m->mms.v[mm].gasid)
        return t;
    for (i = 0; i < m->nwords; i++)
        bits += __builtin_popcountll(mask[i]);
    if (bits <= GLOBAL_ASID_THRESHOLD)
        return t;
    for_each_cpu(x, i, w, mask, m->nwords) {
        m->line_ids[nlines++] = cpu_line(m, m->tlbstate_line, x);
        if (m->loaded_mm[x] != mm)
            continue;
        m->line_ids[nlines++] = cpu_line(m, m->lazy_line, x);
        if (!m->is_lazy[x] && ++count > GLOBAL_ASID_THRESHOLD)
            goto scanned;
    }
scanned:
    t = read_lines(m, c, m->line_ids, nlines, t);
    if (count <= GLOBAL_ASID_THRESHOLD)
        return t;
    return use_global_asid(m, c, mm, t);
}

/* Take global_asid_lock and give the mm the next global ASID; it is in
 * transition until every CPU that runs it has reloaded CR3. */
static i64 use_global_asid(struct machine *m, int c, int mm, i64 t)
{
    struct mm *M;
    i64 asid;
    t = atomic(m, c, m->gasid_lock, t, m->c_atomic);
    M = &m->mms.v[mm];
    if (M->gasid || !m->gasid_available || m->gasid_next >= m->gasid_end)
        return t;
    asid = m->gasid_next++;
    m->gasid_available -= 1;
    /* mm_assign_global_asid(): asid_transition is set before the ASID is
     * published */
    M->transition = 1;
    M->gasid = asid;
    t = atomic(m, c, mm_line(m, mm, 2), t, 0);
    ring(m, c, TR_GLOBAL_ASID, asid, mm);
    return t;
}

/* Process exit: the ASID goes back to the pool -- for reuse only after the
 * wrap-around flush, which the model never reaches. */
void mm_free_global_asid(struct machine *m, int mm)
{
    if (m->mms.v[mm].gasid)
        m->gasid_available += 1;
}

static i64 rar_tlb_flush(struct machine *m, int c, int slot, i64 asid, i64 t);
static i64 finish_asid_transition(struct machine *m, int c, int slot, i64 asid, i64 t);

/* Flush an mm with a global ASID without IPIs: INVLPGB per range of up to
 * invlpgb_max_pages pages or the whole PCID (4afeb0ed1753), or RAR to the
 * CPUs in mm_cpumask; then finish_asid_transition(); then TLBSYNC, which
 * waits until this CPU's INVLPGBs reached every TLB. */
static void broadcast_tlb_flush(struct machine *m, int c, int slot, i64 t)
{
    int mm = m->calls.v[slot].mm;
    i64 asid = m->mms.v[mm].gasid;
    if (m->k_broadcast == BROADCAST_RAR) {
        t = rar_tlb_flush(m, c, slot, asid, t);
    } else {
        const struct call *call = &m->calls.v[slot];
        i64 n = call->npages == TLB_FLUSH_ALL ? 1
            : -floordiv(-call->npages, m->invlpgb_max_pages);
        t = invlpgb(m, c, asid, call->start, call->npages, n, t);
    }
    t = finish_asid_transition(m, c, slot, asid, t);
    if (m->k_broadcast == BROADCAST_INVLPGB)
        t = tlbsync(m, c, mm, t);
    ring(m, c, TR_FLUSH, mm, m->calls.v[slot].pending);
    finish_sending(m, c, slot, t);
}

/* bcasts[bid] = ... in a free slot */
static int new_bcast(struct machine *m, i64 asid, i64 start, i64 npages, int slot, i64 left)
{
    struct bcast *b;
    int bid;
    if (m->free_bcasts.n) {
        bid = m->free_bcasts.v[--m->free_bcasts.n];
    } else {
        struct bcast zero = { 0 };
        bid = (int)m->bcasts.n;
        PUSH(m, m->bcasts, zero);
    }
    b = &m->bcasts.v[bid];
    b->asid = asid, b->start = start, b->npages = npages, b->slot = slot, b->left = left;
    return bid;
}

/* Issue `count` INVLPGBs; they reach every CPU's TLB tlbsync_ns after the
 * last one is issued (asid -1: every PCID, invlpgb_flush_all_nonglobals). */
i64 invlpgb(struct machine *m, int c, i64 asid, i64 start, i64 npages, i64 count, i64 t)
{
    i64 done;
    int bid;
    t += count * m->c_invlpgb;
    m->n_invlpgb += count;
    done = t + m->c_tlbsync;
    bid = new_bcast(m, asid, start, npages, -1, 0);
    push(m, done, c, EV_BROADCAST, bid, -1);
    m->tlbsync_at[c] = max64(m->tlbsync_at[c], done);
    ring(m, c, TR_BROADCAST, asid, npages);
    return t;
}

/* TLBSYNC: wait until this CPU's INVLPGBs reached every TLB (tlbsync='skip'
 * is the broken policy that returns without it). */
i64 tlbsync(struct machine *m, int c, int mm, i64 t)
{
    if (m->k_tlbsync == TLBSYNC_BEFORE_RETURN) {
        t = max64(t, m->tlbsync_at[c]);
        ring(m, c, TR_TLBSYNC, mm, 0);
    }
    return t;
}

/* While a CPU that runs the mm is still on its old dynamic ASID, the
 * broadcast does not cover it: flush the whole mm_cpumask by IPI (the
 * handler reloads CR3 with the global ASID); once none is left, the
 * transition is over. */
static i64 finish_asid_transition(struct machine *m, int c, int slot, i64 asid, i64 t)
{
    int mm = m->calls.v[slot].mm, i, x;
    uint64_t w;
    if (!m->mms.v[mm].transition)
        return t;
    for_each_cpu(x, i, w, m->mms.v[mm].mask, m->nwords) {
        t = read_line(m, c, cpu_line(m, m->tlbstate_line, x), t);
        if (m->loaded_mm[x] == mm && m->loaded_asid[x] != asid)
            return flush_tlb_multi(m, c, slot, 0, t);
    }
    m->mms.v[mm].transition = 0;
    return t;
}

/* The RAR RFC's rar_tlb_flush(): a payload slot, an action entry per target,
 * one RAR IPI per APIC group to every CPU in mm_cpumask (lazy and stale ones
 * too: "RAR flushes do not update the tlb_gen"); the targets' microcode
 * invalidates and reports, with no interrupt; the initiator spins until
 * each has. The local CPU flushes itself. */
static i64 rar_tlb_flush(struct machine *m, int c, int slot, i64 asid, i64 t)
{
    const struct call *call = &m->calls.v[slot];
    int mm = call->mm, i, x;
    i64 start = call->start, npages = call->npages;
    size_t n = 0;
    uint64_t w;
    for_each_cpu(x, i, w, m->mms.v[mm].mask, m->nwords)
        if (x != c)
            m->targets[n++] = x;
    t = rar_send(m, c, slot, asid, start, npages, m->targets, n, t);
    if (test_bit(m->mms.v[mm].mask, c))
        t = flush_pcid_local(m, c, asid, start, npages, t);
    return t;
}

i64 rar_send(struct machine *m, int c, int slot, i64 asid, i64 start, i64 npages,
             const int32_t *targets, size_t ntargets, i64 t)
{
    size_t i;
    int bid;
    if (!ntargets)
        return t;
    t = atomic(m, c, m->rar_payload_line, t, m->c_atomic);       /* get_payload_slot() */
    bid = new_bcast(m, asid, start, npages, slot, (i64)ntargets);
    for (i = 0; i < ntargets; i++) {
        struct call *call;
        t = atomic(m, c, cpu_line(m, m->rar_action_line, targets[i]), t, 0);
        call = &m->calls.v[slot];
        call->pending += 1;
        PUSH(m, call->targets, targets[i]);
    }
    m->n_rar += (i64)ntargets;
    return send_ipi_mask(m, c, targets, ntargets, t, EV_BROADCAST, bid); /* native_send_rar_ipi() */
}

i64 flush_pcid_local(struct machine *m, int c, i64 asid, i64 start, i64 npages, i64 t)
{
    i64 page;
    if (npages == TLB_FLUSH_ALL || asid < 0) {
        if (asid < 0)
            flush_everything(m, c);
        else
            flush_asid(m, c, (int)asid);
        m->n_full_flushes += 1;
        return t + m->c_full_flush;
    }
    for (page = start; page < start + npages; page++)
        invlpg(m, c, (int)asid, page);
    m->psc_epoch[EPOCH(m, c, asid)] += 1;
    m->n_invlpg += npages;
    return t + m->c_invlpg * npages;
}

/* A CPU's TLB and PSC lose what the broadcast invalidates. A CPU that never
 * filled either (no m->hw) holds nothing: its epochs are only ever compared
 * with entries filled after now, so they are left alone. */
static void broadcast_invalidate(struct machine *m, int x, i64 asid, i64 start, i64 npages)
{
    i64 page;
    if (!m->hw[x])
        return;
    if (asid < 0) {
        flush_everything(m, x);
    } else if (npages == TLB_FLUSH_ALL) {
        flush_asid(m, x, (int)asid);
    } else {
        for (page = start; page < start + npages; page++)
            invlpg(m, x, (int)asid, page);
        m->psc_epoch[EPOCH(m, x, asid)] += 1;
    }
}

/* An INVLPGB reached every TLB (invlpgb -1), or a RAR reached CPU c. */
void ev_broadcast(struct machine *m, int c, i64 bid, i64 invlpgb)
{
    struct bcast *b = &m->bcasts.v[bid];
    i64 asid = b->asid, start = b->start, npages = b->npages, now = m->now, begin, end;
    i64 arrival;
    struct call *call;
    int x, cslot;
    if (invlpgb < 0) {
        PUSH(m, m->free_bcasts, (int32_t)bid);
        for (x = 0; x < m->ncpu; x++)
            broadcast_invalidate(m, x, asid, start, npages);
        return;
    }
    /* RAR: the target's microcode acts -- after its C-state exit if it is
     * halted (assumption), whatever its IRQ state */
    x = c;
    begin = now;
    if (m->cstate[x] >= 0)
        begin += m->cs_exit_latency[m->cstate[x]];
    end = begin + m->c_rar;
    broadcast_invalidate(m, x, asid, start, npages);
    if (m->cstate[x] < 0) {
        i64 busy = m->irq_busy[x];
        interrupted(m, x, now, end);
        if (busy > now)
            m->irq_busy[x] = busy + m->c_rar;
    }
    m->n_flush_cycles += m->c_rar;
    m->irq_cycles[x] += m->c_rar;
    b = &m->bcasts.v[bid];
    cslot = b->slot;
    if (!--b->left)
        PUSH(m, m->free_bcasts, (int32_t)bid);
    call = &m->calls.v[cslot];
    arrival = end + m->xfer[dist(m, x, call->initiator)];
    call->done_at = max64(call->done_at, arrival);
    call->pending -= 1;
    if (call->pending == 0)
        push(m, max64(call->done_at, call->local_done), call->initiator, EV_CALL_DONE,
             cslot, 0);
}

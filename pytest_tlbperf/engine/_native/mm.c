/*
 * mm.c -- mm/ and kernel/fork.c: mm_struct life (exec_mm, mmgrab/mmdrop,
 * __mmdrop), page-table pages and their pool, PTE changes by madvise(DONTNEED)
 * / munmap / mprotect through one mmu_gather flush under mmap_lock,
 * exit_mmap(), the tables tlb_finish_mmu() frees (at once, after an RCU grace
 * period, or after tlb_remove_table_sync_one()), the teardowns of a lazily
 * used mm: shootdown (cleanup_lazy_tlbs), the 2021 hazard-pointer hand-off
 * (mm_unlazy_mm_count) and the 2024 RFC's synchronous calls (hazptr_retire);
 * the LRU (mm/swap.c: per-CPU lru_add batches and the lruvec lock) and
 * reclaim's batched flush (arch_tlbbatch_flush).
 */

#include "machine.h"

/* The mm's per-page arrays are allocated after it is counted in m->mms, so
 * machine_free() finds whatever a failed allocation left. */
int exec_mm(struct machine *m, i64 tmpl)
{
    struct mm zero = { 0 }, *M;
    int mm = (int)m->mms.n, line;
    i64 npages = m->tmpl_pages[tmpl], region;
    PUSH(m, m->mms, zero);
    M = &m->mms.v[mm];
    M->ctx = m->next_ctx++;
    M->gen = 1;
    M->count = 1;                 /* one reference held on behalf of all users */
    M->users = m->tmpl_threads[tmpl];
    M->npages = npages;
    M->nregions = (npages + PAGES_PER_TABLE - 1) / PAGES_PER_TABLE;
    M->mask = xcalloc(m, (size_t)m->nwords, sizeof *M->mask);
    M->blocks = xcalloc(m, (size_t)((npages + BLOCK - 1) / BLOCK), sizeof *M->blocks);
    M->tables = xcalloc(m, (size_t)M->nregions, sizeof(int32_t));
    for (region = 0; region < M->nregions; region++)
        M->tables[region] = -1;
    /* init_new_context(): the first trim at least a second after creation */
    M->next_trim = floordiv(m->now, m->jiffy) + HZ;
    /* four contended lines per mm: mm_count, mm_cpumask, context.tlb_gen,
     * mmap_lock */
    line = new_line(m);
    new_line(m);
    new_line(m);
    new_line(m);
    m->mms.v[mm].line = line;
    m->tmpl_mm[tmpl] = mm;
    return mm;
}

/* page_of() is static inline in machine.h: every access calls it. */

int alloc_table(struct machine *m, int mm, i64 region)
{
    int table;
    if (m->table_pool.n) {
        table = m->table_pool.v[--m->table_pool.n];
    } else {
        struct table zero = { 0 };
        table = (int)m->tables.n;
        PUSH(m, m->tables, zero);
        m->tables.v[table].cachers = xcalloc(m, (size_t)m->nwords, sizeof(uint64_t));
    }
    m->tables.v[table].mm = mm;
    m->mms.v[mm].tables[region] = table;
    return table;
}

/* The flush returned: the page-table page goes back to the pool, and any
 * PSC still pointing at it now points at garbage. */
void free_table(struct machine *m, int c, int table)
{
    struct table_free f;
    uint64_t w;
    int i, x;
    m->tables.v[table].gen += 1;
    PUSH(m, m->table_pool, table);
    f.t = m->now, f.cpu = c, f.mm = m->tables.v[table].mm;
    PUSH(m, m->tables.v[table].frees, f);
    ring(m, c, TR_TABLE_FREE, table, m->tables.v[table].mm);
    for_each_cpu(x, i, w, m->tables.v[table].cachers, m->nwords) {
        i64 slot;
        if (m->hung[x] || m->cstate[x] >= 0)
            continue;
        for (slot = 0; slot < m->psc_n; slot++)
            if (m->hw[x]->psc_table[slot] == table && psc_stale(m, x, slot))
                arm_walk(m, x, slot);
    }
    /* machine.py clears the bitmap first; the walks above do not read it */
    memset(m->tables.v[table].cachers, 0, (size_t)m->nwords * sizeof(uint64_t));
}

i64 mmgrab(struct machine *m, int c, int mm, i64 t)
{
    m->mms.v[mm].count += 1;
    return atomic(m, c, mm_line(m, mm, 0), t, m->c_atomic);
}

/* Drop one mm_count reference; *last: it reached zero. */
i64 mmdrop(struct machine *m, int c, int mm, i64 t, int *last)
{
    m->mms.v[mm].count -= 1;
    t = atomic(m, c, mm_line(m, mm, 0), t, m->c_atomic);
    *last = m->mms.v[mm].count == 0;
    return t;
}

/* __mmdrop() freeing the mm_struct, after the oracle's
 * lazy_mm_use_after_free check. */
void free_mm(struct machine *m, int c, int mm)
{
    mm_free_global_asid(m, mm);
    oracle_mm_freed(m, c, mm);
    ring(m, c, TR_MM_FREE, mm, 0);
}

static i64 lru_add_drain(struct machine *m, int c, i64 t);
static i64 lru_lock(struct machine *m, int c, i64 folios, i64 t);

/* madvise(DONTNEED) / munmap / mprotect: change PTEs, then one
 * flush_tlb_mm_range for the range (mmu_gather), under mmap_lock. Zapped
 * pages whose folios are on the LRU are freed off it in one batch under
 * lru_lock (mm.py lru_release(), counted as the pages are zapped). */
void change_ptes(struct machine *m, int c, int task, int mm, i64 code, i64 first,
                 i64 npages, i64 free_tables, i64 t)
{
    struct mm *M = &m->mms.v[mm];
    i64 last = first + npages < M->npages ? first + npages : M->npages, page, region;
    i64 on_lru = 0;
    int zap = code != OP_MPROTECT, slot;
    t = mmap_lock(m, c, mm, t + m->c_syscall);
    if (zap && m->c_lru_lock && m->k_lru == LRU_DRAIN_ON_ZAP)
        t = lru_add_drain(m, c, t);     /* zap_page_range_single(), unmap_region() */
    m->snap.n = 0;
    for (page = first; page < last; page++) {
        struct page *pg = M->blocks[page / BLOCK];
        if (!pg) {                          /* a block never faulted in */
            page |= BLOCK - 1;
            continue;
        }
        pg += page % BLOCK;
        if (pg->present) {
            struct page_ver pv;
            if (zap) {
                pg->present = 0;
                if (pg->lru && m->c_lru_lock) {
                    pg->lru = 0;
                    on_lru++;
                }
            }
            pg->ver += 1;
            pv.page = page, pv.ver = pg->ver;
            PUSH(m, m->snap, pv);
        }
    }
    t += (zap ? m->c_zap : m->c_pte) * (i64)m->snap.n;
    if (on_lru)
        t = lru_lock(m, c, on_lru, t);
    m->freed_tables.n = 0;
    if (code == OP_MUNMAP && free_tables) {
        /* free_pgtables(): only page-table pages whose whole 2 MiB is
         * unmapped. first >= 0 (parse_tasks), so C's truncating division
         * gives Python's ceiling and floor wherever the range is not empty. */
        for (region = (first + PAGES_PER_TABLE - 1) / PAGES_PER_TABLE;
             region < last / PAGES_PER_TABLE; region++) {
            if (M->tables[region] >= 0) {
                PUSH(m, m->freed_tables, M->tables[region]);
                M->tables[region] = -1;
            }
        }
    }
    if (!m->snap.n && !m->freed_tables.n) {
        schedule_step(m, c, mmap_lock(m, c, mm, t));
        return;
    }
    slot = flush_tlb_mm_range(m, c, mm, first, last - first, m->freed_tables.n > 0, task,
                              CONT_STEP, t);
    m->calls.v[slot].unlock = 1;        /* mmap_read_unlock() after the flush */
}

/* The last user is gone: unmap everything and free every page table, with
 * one flush (tlb_finish_mmu with freed_tables). exit_mmap() drains this
 * CPU's LRU batch whatever lru_drain says. */
void exit_mmap(struct machine *m, int c, int task, int mm, i64 t)
{
    struct mm *M;
    i64 zapped = 0, on_lru = 0, block, region;
    if (m->c_lru_lock)
        t = lru_add_drain(m, c, t);
    M = &m->mms.v[mm];
    for (block = 0; block < (M->npages + BLOCK - 1) / BLOCK; block++) {
        struct page *pg = M->blocks[block], *end = pg + BLOCK;
        for (; pg && pg < end; pg++) {
            if (pg->present) {
                pg->present = 0;
                pg->ver += 1;
                zapped++;
                if (pg->lru && m->c_lru_lock) {
                    pg->lru = 0;
                    on_lru++;
                }
            }
        }
    }
    t += m->c_zap * zapped;
    if (on_lru)
        t = lru_lock(m, c, on_lru, t);
    m->freed_tables.n = 0;
    for (region = 0; region < M->nregions; region++) {
        if (M->tables[region] >= 0)
            PUSH(m, m->freed_tables, M->tables[region]);
        M->tables[region] = -1;
    }
    /* no snapshot: nothing can access a dead mm's pages any more */
    m->snap.n = 0;
    flush_tlb_mm_range(m, c, mm, 0, TLB_FLUSH_ALL, 1, task, CONT_EXIT_MMAP, t);
}

static i64 mm_unlazy_mm_count(struct machine *m, int c, int mm, i64 t);
static void mmdrop_free(struct machine *m, int c, int task, int mm, i64 t);

/* __mmput() after exit_mmap()'s flush: release what the users shared. */
void exit_mmap_done(struct machine *m, int c, int task, int mm, i64 t)
{
    int last;
    if (m->k_lazy_ref == REF_HAZARD && m->k_release == RELEASE_HANDOFF)
        t = mm_unlazy_mm_count(m, c, mm, t);
    /* mmput() -> mmdrop() of the reference all users shared */
    t = mmdrop(m, c, mm, t, &last);
    if (!last) {
        exit_done(m, c, task, t);
        return;
    }
    mmdrop_free(m, c, task, mm, t);
}

/* The CPUs a non-refcounting teardown looks at (lazy_mm_scan), into
 * m->cpus in ascending order; returns how many. */
static size_t lazy_mm_cpus(struct machine *m, int mm)
{
    uint64_t w;
    size_t n = 0;
    int i, x;
    if (m->k_scan == SCAN_ALL_CPUS) {
        for (x = 0; x < m->ncpu; x++)
            m->cpus[n++] = x;
        return n;
    }
    for_each_cpu(x, i, w, m->mms.v[mm].mask, m->nwords)
        m->cpus[n++] = x;
    return n;
}

/* read_lines() over the hazard-pointer slots of m->cpus[0..n) */
static i64 hp_scan(struct machine *m, int c, size_t n, i64 t)
{
    size_t i;
    for (i = 0; i < n; i++)
        m->line_ids[i] = cpu_line(m, m->hazard_line, m->cpus[i]);
    return read_lines(m, c, m->line_ids, n, t);
}

/* __mmdrop(): the last reference is gone. Lazy users that hold no reference
 * must be told first (cleanup_lazy_tlbs()). */
static void mmdrop_free(struct machine *m, int c, int task, int mm, i64 t)
{
    size_t n, i, ntargets = 0;
    int self = 0;
    if (m->k_lazy_ref == REF_SHOOTDOWN) {
        /* Piggin's MMU_LAZY_TLB_SHOOTDOWN (v6.4): on_each_cpu_mask() over the
         * CPUs that may use the mm lazily, this one included, wait=1 */
        int slot = new_call(m, CALL_UNLAZY, c, mm, task, CONT_EXIT_FREE, m->now);
        n = lazy_mm_cpus(m, mm);
        for (i = 0; i < n; i++) {
            if (m->cpus[i] == c)
                self = 1;
            else
                m->targets[ntargets++] = m->cpus[i];
        }
        t = smp_call_function_many(m, c, slot, m->targets, ntargets, t);
        if (self)
            t = unlazy(m, c, mm, t);    /* the local call runs while the IPIs fly */
        finish_sending(m, c, slot, t);
        return;
    }
    if (m->k_lazy_ref == REF_HAZARD && m->k_release == RELEASE_SYNC_IPI) {
        /* Desnoyers' 2024 RFC: hp_scan() every possible CPU's slot; each CPU
         * that still holds the mm gets two synchronous single-CPU calls
         * (do_shoot_lazy_tlb, do_check_lazy_tlb), one CPU at a time */
        n = lazy_mm_cpus(m, mm);
        t = hp_scan(m, c, n, t + m->c_mb);
        for (i = 0; i < n; i++)
            if (m->hazard[m->cpus[i]] == mm)
                m->targets[ntargets++] = m->cpus[i];
        hazptr_retire(m, c, task, mm, m->targets, ntargets, t);
        return;
    }
    free_mm(m, c, mm);
    exit_done(m, c, task, t);
}

/* Lutomirski's 2021 hazard-pointer teardown, in __mmput(): take references
 * for every possible match, scan the CPUs (on x86 mm_cpumask) and hand each
 * CPU whose hazard still holds the mm an mm_count reference through its
 * rq->drop_mm, which it drops at its next context switch; give back the
 * rest. No IPI, no wait. */
static i64 mm_unlazy_mm_count(struct machine *m, int c, int mm, i64 t)
{
    size_t n, i;
    int last;
    t = atomic(m, c, mm_line(m, mm, 0), t, m->c_atomic);     /* atomic_add(drop_count) */
    n = lazy_mm_cpus(m, mm);
    t = hp_scan(m, c, n, t);
    for (i = 0; i < n; i++) {
        int x = m->cpus[i], old;
        if (m->hazard[x] != mm)
            continue;
        t = atomic(m, c, cpu_line(m, m->drop_line, x), t, m->c_atomic);  /* xchg(&rq->drop_mm) */
        old = m->drop_mm[x];
        m->drop_mm[x] = mm;
        m->mms.v[mm].count += 1;
        if (old != INIT_MM) {
            /* we stole the reference the target had not dropped yet */
            t = mmdrop(m, c, old, t, &last);
            if (last)
                free_mm(m, c, old);
        }
    }
    return atomic(m, c, mm_line(m, mm, 0), t, m->c_atomic);   /* atomic_sub(the rest) */
}

/* retire_lazy_mm_hp() for the first CPU left; the calls' completion
 * continues with the next (CONT_HAZPTR), then frees the mm. matches must
 * not live in the slot this makes (callers pass m->targets or a live
 * call's rest). */
void hazptr_retire(struct machine *m, int c, int task, int mm, const int32_t *matches,
                   size_t n, i64 t)
{
    struct call *call;
    size_t i;
    int slot;
    while (n && matches[0] == c) {
        /* smp_call_function_single() to oneself runs the functions here */
        t = unlazy(m, c, mm, t);
        matches++;
        n--;
    }
    if (!n) {
        free_mm(m, c, mm);
        exit_done(m, c, task, t);
        return;
    }
    slot = new_call(m, CALL_UNLAZY, c, mm, task, CONT_HAZPTR, m->now);
    call = &m->calls.v[slot];
    for (i = 0; i < n; i++)
        PUSH(m, call->rest, matches[i]);
    t = smp_call_function_many(m, c, slot, matches, 1, t);
    finish_sending(m, c, slot, t);
}

/* tlb_finish_mmu() freeing the gathered page-table pages once the flush in
 * `slot` returned. Natively they go back at once (table_free='after_flush');
 * a guest with the PV flush, and since v6.15 (a37259732a7d) a native kernel
 * too, uses tlb_remove_table(): an RCU grace period, unless the batch page
 * cannot be allocated (table_batch_fail_percent), when
 * tlb_remove_table_sync_one() IPIs every other CPU and waits, then frees.
 * Returns 1 when the initiator now waits for that IPI. The tables move out
 * of the flush's slot. */
int tlb_remove_tables(struct machine *m, int c, int slot, i64 now)
{
    struct call *call = &m->calls.v[slot];
    size_t i, n = 0;
    int x;
    if (!m->pv && m->k_table_free == TABLE_FREE_AFTER_FLUSH) {
        for (i = 0; i < call->tables.n; i++)
            free_table(m, c, m->calls.v[slot].tables.v[i]);
        return 0;
    }
    if (m->table_fail && below(&m->rng, 100) < m->table_fail) {
        int sync = new_call(m, CALL_SYNC, c, call->mm, call->task, CONT_TABLE_SYNC, now);
        struct i32vec tables = m->calls.v[sync].tables, rest = m->calls.v[sync].rest;
        i64 t;
        call = &m->calls.v[slot];
        m->calls.v[sync].tables = call->tables, call->tables = tables;
        m->calls.v[sync].rest = call->rest, call->rest = rest;
        m->calls.v[sync].then = call->cont;
        for (x = 0; x < m->ncpu; x++)
            if (x != c)
                m->targets[n++] = x;
        t = smp_call_function_many(m, c, sync, m->targets, n, now);
        finish_sending(m, c, sync, t);
        return 1;
    }
    {
        struct rcu_batch batch = { now, c, call->tables };
        call->tables.v = NULL, call->tables.n = call->tables.cap = 0;
        DEQUE_APPEND(m, m->rcu_pending, batch);
    }
    return 0;
}

/* CPU c passed a quiescent point: free the tables whose grace period is
 * over (every CPU not idle has passed one since they were queued). */
void rcu_quiescent(struct machine *m, int c)
{
    struct rcudeque *q = &m->rcu_pending;
    m->qs_at[c] = m->now;
    while (q->n) {
        struct rcu_batch *batch = &q->v[q->head];
        size_t i;
        int x;
        for (x = 0; x < m->ncpu; x++)
            if (m->qs_at[x] < batch->since && !m->in_idle[x])
                return;
        for (i = 0; i < batch->tables.n; i++)
            free_table(m, batch->by, batch->tables.v[i]);
        free(batch->tables.v);
        q->head++;
        if (--q->n == 0)
            q->head = 0;
    }
}

/* -- the LRU lock (mm/swap.c) --------------------------------------------- */

/* Take the node's lruvec->lru_lock for `folios` folios: the hold is
 * lru_lock_cycles (the lruvec lines the holder pulls in) plus a list
 * operation (an atomic's worth) per folio. */
static i64 lru_lock(struct machine *m, int c, i64 folios, i64 t)
{
    m->n_lru_locks += 1;
    return atomic(m, c, m->lru_line[m->socket[c]], t, m->c_lru_lock + m->c_atomic * folios);
}

/* folio_batch_move_lru(): under lru_lock, put the batch's folios on the LRU;
 * then drop the batch's references, which frees the folios that were zapped
 * meanwhile -- taking lru_lock again to unlink them. */
static i64 lru_add_drain(struct machine *m, int c, i64 t)
{
    struct lru_batch *batch = m->lru_batch[c];
    i64 dead = 0;
    size_t i;
    if (!batch || !batch->n)
        return t;
    for (i = 0; i < batch->n; i++) {
        const struct lru_entry *e = &batch->v[i];
        struct page *pg = page_of(m, &m->mms.v[e->mm], e->page);
        if (pg->present && pg->ver == e->ver)
            pg->lru = 1;
        else
            dead++;
    }
    t = lru_lock(m, c, (i64)batch->n, t);
    if (dead)
        t = lru_lock(m, c, dead, t);
    batch->n = 0;
    return t;
}

/* folio_add_lru(): a new anonymous folio goes into this CPU's lru_add batch;
 * a full batch is moved to the LRU. */
i64 lru_cache_add(struct machine *m, int c, int mm, i64 page, i64 t)
{
    struct lru_batch *batch = m->lru_batch[c];
    struct lru_entry *e;
    if (!batch)
        batch = m->lru_batch[c] = xcalloc(m, 1, sizeof *batch);
    e = &batch->v[batch->n++];
    e->mm = mm, e->page = page, e->ver = page_of(m, &m->mms.v[mm], page)->ver;
    if (batch->n >= FOLIO_BATCH)
        t = lru_add_drain(m, c, t);
    return t;
}

/* -- reclaim (mm/rmap.c try_to_unmap with a TTU_BATCH_FLUSH batch) -------- */

static void arch_tlbbatch_flush(struct machine *m, int c, int slot, i64 t);

/* kswapd unmaps a run of another process's pages (try_to_unmap_one +
 * arch_tlbbatch_add_pending: one tlb_gen bump per page, the batch mask ORs
 * in mm_cpumask), then arch_tlbbatch_flush(): with INVLPGB one flush of
 * every non-global PCID on every CPU, no IPIs (72a920eacd8a, 0b7eb55cb706);
 * with RAR a full flush of the batch's CPUs; else IPIs to the batch's CPUs
 * that are not lazy (should_flush_tlb with no mm). */
void reclaim(struct machine *m, int c, int task, i64 first, i64 npages, i64 tmpl, i64 t)
{
    int mm = (int)m->tmpl_mm[tmpl], slot;
    struct mm *M;
    struct call *call;
    struct snapvec snap;
    i64 last, page, on_lru = 0;
    if (mm < 0 || !m->mms.v[mm].users) {
        schedule_step(m, c, t);
        return;
    }
    M = &m->mms.v[mm];
    last = first + npages < M->npages ? first + npages : M->npages;
    m->snap.n = 0;
    for (page = first; page < last; page++) {
        struct page *pg = M->blocks[page / BLOCK];
        struct page_ver pv;
        if (!pg) {                          /* a block never faulted in */
            page |= BLOCK - 1;
            continue;
        }
        pg += page % BLOCK;
        if (!pg->present)
            continue;
        pg->present = 0;
        pg->ver += 1;
        if (pg->lru && m->c_lru_lock) {
            pg->lru = 0;
            on_lru++;
        }
        pv.page = page, pv.ver = pg->ver;
        PUSH(m, m->snap, pv);
        t = atomic(m, c, mm_line(m, mm, 2), t + m->c_zap, m->c_atomic);   /* inc_mm_tlb_gen */
        M->gen += 1;
    }
    if (!m->snap.n) {
        schedule_step(m, c, t);
        return;
    }
    if (on_lru)
        t = lru_lock(m, c, on_lru, t);
    t = read_line(m, c, mm_line(m, mm, 1), t);
    memcpy(m->batch, M->mask, (size_t)m->nwords * sizeof *m->batch);
    slot = new_call(m, CALL_FLUSH, c, mm, task, CONT_STEP, t);
    call = &m->calls.v[slot];
    call->any_mm = 1;
    snap = call->snap, call->snap = m->snap, m->snap = snap;
    call->irq0 = m->irq_cycles[c];
    arch_tlbbatch_flush(m, c, slot, t);
}

/* The batch's CPUs are m->batch. */
static void arch_tlbbatch_flush(struct machine *m, int c, int slot, i64 t)
{
    int mm = m->calls.v[slot].mm, i, x, self = test_bit(m->batch, c);
    size_t n = 0;
    uint64_t w;
    if (m->k_broadcast == BROADCAST_INVLPGB) {
        t = invlpgb(m, c, -1, 0, TLB_FLUSH_ALL, 1, t);     /* invlpgb_flush_all_nonglobals */
        t = tlbsync(m, c, mm, t);
    } else if (m->k_broadcast == BROADCAST_RAR) {
        for_each_cpu(x, i, w, m->batch, m->nwords)
            if (x != c)
                m->targets[n++] = x;
        t = rar_send(m, c, slot, -1, 0, TLB_FLUSH_ALL, m->targets, n, t);
        if (self)
            t = flush_pcid_local(m, c, -1, 0, TLB_FLUSH_ALL, t);
    } else {
        for_each_cpu(x, i, w, m->batch, m->nwords) {
            if (x == c)
                continue;
            t = read_line(m, c, cpu_line(m, m->lazy_line, x), t);
            if (!m->is_lazy[x])
                m->targets[n++] = x;
        }
        t = native_flush_tlb_multi(m, c, slot, n, t);
        if (self)
            t = flush_tlb_func(m, c, &m->calls.v[slot], t);
    }
    ring(m, c, TR_FLUSH, mm, m->calls.v[slot].pending);
    finish_sending(m, c, slot, t);
}

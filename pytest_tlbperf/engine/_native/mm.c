/*
 * mm.c -- mm/ and kernel/fork.c: mm_struct life (exec_mm, mmgrab/mmdrop,
 * __mmdrop), page-table pages and their pool, PTE changes by madvise(DONTNEED)
 * / munmap / mprotect through one mmu_gather flush, and exit_mmap().
 */

#include "machine.h"

/* The mm's per-page arrays are allocated after it is counted in m->mms, so
 * machine_free() finds whatever a failed allocation left. */
int exec_mm(struct machine *m, i64 tmpl)
{
    struct mm zero = { 0 }, *M;
    int mm = (int)m->mms.n;
    i64 npages = m->tmpl_pages[tmpl], region;
    PUSH(m, m->mms, zero);
    M = &m->mms.v[mm];
    M->ctx = m->next_ctx++;
    M->gen = 1;
    M->count = 1;                 /* one reference held on behalf of all users */
    M->users = m->tmpl_threads[tmpl];
    M->npages = npages;
    M->nregions = (npages + PAGES_PER_TABLE - 1) / PAGES_PER_TABLE;
    M->line_owner[0] = M->line_owner[1] = M->line_owner[2] = -1;
    M->mask = xcalloc(m, (size_t)m->nwords, sizeof *M->mask);
    M->blocks = xcalloc(m, (size_t)((npages + BLOCK - 1) / BLOCK), sizeof *M->blocks);
    M->tables = xcalloc(m, (size_t)M->nregions, sizeof(int32_t));
    for (region = 0; region < M->nregions; region++)
        M->tables[region] = -1;
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
    return atomic(m, c, mm, 0, t);
}

/* Drop one mm_count reference; *last: it reached zero. */
i64 mmdrop(struct machine *m, int c, int mm, i64 t, int *last)
{
    m->mms.v[mm].count -= 1;
    t = atomic(m, c, mm, 0, t);
    *last = m->mms.v[mm].count == 0;
    return t;
}

/* __mmdrop() freeing the mm_struct, after the oracle's
 * lazy_mm_use_after_free check. */
void free_mm(struct machine *m, int c, int mm)
{
    oracle_mm_freed(m, c, mm);
    ring(m, c, TR_MM_FREE, mm, 0);
}

/* madvise(DONTNEED) / munmap / mprotect: change PTEs, then one
 * flush_tlb_mm_range for the range (mmu_gather). */
void change_ptes(struct machine *m, int c, int task, int mm, i64 code, i64 first,
                 i64 npages, i64 free_tables, i64 t)
{
    struct mm *M = &m->mms.v[mm];
    i64 last = first + npages < M->npages ? first + npages : M->npages, page, region;
    t += m->c_syscall;
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
            if (code != OP_MPROTECT)
                pg->present = 0;
            pg->ver += 1;
            pv.page = page, pv.ver = pg->ver;
            PUSH(m, m->snap, pv);
        }
    }
    t += (code == OP_MPROTECT ? m->c_pte : m->c_zap) * (i64)m->snap.n;
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
        schedule_step(m, c, t);
        return;
    }
    flush_tlb_mm_range(m, c, mm, first, last - first, m->freed_tables.n > 0, task,
                       CONT_STEP, t);
}

/* The last user is gone: unmap everything and free every page table, with
 * one flush (tlb_finish_mmu with freed_tables). */
void exit_mmap(struct machine *m, int c, int task, int mm, i64 t)
{
    struct mm *M = &m->mms.v[mm];
    i64 zapped = 0, block, region;
    for (block = 0; block < (M->npages + BLOCK - 1) / BLOCK; block++) {
        struct page *pg = M->blocks[block], *end = pg + BLOCK;
        for (; pg && pg < end; pg++) {
            if (pg->present) {
                pg->present = 0;
                pg->ver += 1;
                zapped++;
            }
        }
    }
    t += m->c_zap * zapped;
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

void exit_mmap_done(struct machine *m, int c, int task, int mm, i64 t)
{
    int last, slot, x;
    /* mmput() -> mmdrop() of the reference all users shared */
    t = mmdrop(m, c, mm, t, &last);
    if (!last) {
        exit_done(m, c, task, t);
        return;
    }
    /* __mmdrop(): lazy users that hold no reference must be told first */
    if (m->k_lazy_ref == REF_SHOOTDOWN || m->k_lazy_ref == REF_HAZARD) {
        slot = new_call(m, CALL_UNLAZY, c, mm, task, CONT_EXIT_FREE, m->now);
        /* x86 clears a CPU from mm_cpumask when it leaves the mm, so the
         * CPUs that may still borrow it are all of them. */
        for (x = 0; x < m->ncpu; x++) {
            if (m->k_lazy_ref == REF_HAZARD) {
                t += m->xfer[dist(m, c, x)];         /* read x's hazard pointer */
                if (m->hazard[x] != mm)
                    continue;
            }
            if (x == c)
                t = unlazy(m, c, mm, t);
            else
                t = send_ipi(m, c, x, slot, t);
        }
        finish_sending(m, c, slot, t);
        return;
    }
    free_mm(m, c, mm);
    exit_done(m, c, task, t);
}

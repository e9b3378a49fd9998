/*
 * oracle.c -- the correctness oracle: each CPU's ring of its last RING trace
 * records, and the checks that report a violation with the events that led
 * to it -- a stale TLB entry used after its flush returned, a walk through a
 * freed page-table page, an mm_struct freed while a CPU still uses it, a
 * cross-call that never completes. Models no kernel file: this is what a
 * reviewer checks the kernel against.
 */

#include "machine.h"

/* ring() is static inline in machine.h: every traced event calls it. */

/* the ring, oldest first; returns how many records were written to out */
static size_t history(const struct machine *m, int c, struct rec *out)
{
    const struct rec *r = &m->rings[(size_t)c * RING];
    size_t n = 0, i, p = m->rpos[c];
    if (m->rlen[c] == RING)
        for (i = p; i < RING; i++)
            out[n++] = r[i];
    for (i = 0; i < p; i++)
        out[n++] = r[i];
    return n;
}

static int rec_equal(const struct rec *x, const struct rec *y)
{
    return x->t == y->t && x->cpu == y->cpu && x->code == y->code && x->a == y->a
        && x->b == y->b;
}

/* The oracle's single exit: count every violation, keep the first per
 * (kind, cpu) with the events that led to it. */
void report(struct machine *m, int kind, i64 severity, int c, const struct rec *extra,
            size_t nextra)
{
    struct violation *v;
    struct rec *trace;
    size_t n, i, j;
    m->violation_counts[kind] += 1;
    if (m->seen[(size_t)kind * m->ncpu + c] || m->nviolations >= MAX_VIOLATIONS)
        return;
    m->seen[(size_t)kind * m->ncpu + c] = 1;
    v = &m->violations[m->nviolations];
    v->trace = trace = xcalloc(m, RING + nextra, sizeof *trace);
    /* sorted(dict.fromkeys(history + extra), key=time): drop exact duplicates
     * keeping the first occurrence, then a stable (insertion) sort by time */
    n = history(m, c, trace);
    for (i = 0; i < nextra; i++) {
        for (j = 0; j < n && !rec_equal(&trace[j], &extra[i]); j++)
            ;
        if (j == n)
            trace[n++] = extra[i];
    }
    for (i = 1; i < n; i++) {
        struct rec r = trace[i];
        for (j = i; j > 0 && trace[j - 1].t > r.t; j--)
            trace[j] = trace[j - 1];
        trace[j] = r;
    }
    v->ntrace = n;
    v->kind = kind;
    v->severity = severity;
    v->cpu = c;
    v->time = m->now;
    m->nviolations++;
}

void freed_table_walk(struct machine *m, int c, i64 slot, int table)
{
    struct hw *h = m->hw[c];
    i64 mm = h->psc_mm[slot];
    const struct table_free *f;
    struct rec extra[2];
    ring(m, c, TR_WALK, table, mm);
    /* the free that invalidated this entry: the first one after its fill */
    f = &m->tables.v[table].frees.v[h->psc_gen[slot]];
    extra[0].t = h->psc_at[slot], extra[0].cpu = c, extra[0].code = TR_PSC_FILL;
    extra[0].a = table, extra[0].b = mm;
    extra[1].t = f->t, extra[1].cpu = f->cpu, extra[1].code = TR_TABLE_FREE;
    extra[1].a = table, extra[1].b = mm;
    report(m, V_FREED_TABLE_WALK, m->walk_severity, c, extra, 2);
    /* the walk replaced the entry with whatever the reused page held */
    h->psc_key[slot] = -1;
    if (m->walk_severity == SEV_HANG) {
        m->hung[c] = 1;         /* the 2017 AMD hang: this CPU stops answering */
        m->hung_at[c] = m->now;
        m->step_token[c] += 1;
        /* requests it will never take: their initiators hang */
        for (size_t i = 0; i < m->csdq[c].n; i++)
            arm_watchdog(m, m->csdq[c].v[i]);
        /* ... or never finish */
        for (size_t i = 0; i < m->handling[c].n; i++)
            arm_watchdog(m, m->handling[c].v[m->handling[c].head + i]);
        ring(m, c, TR_HUNG, c, 0);
    }
}

/* The CSD-lock watchdog fired: if the cross-call is still in flight, a
 * target hung; report it with when each hung target stopped answering. */
void ev_watchdog(struct machine *m, int c, i64 slot, i64 cid)
{
    const struct call *call = &m->calls.v[slot];
    size_t i;
    if (!call->live || call->id != cid)
        return;
    m->extra.n = 0;
    for (i = 0; i < call->targets.n; i++) {
        int x = call->targets.v[i];
        if (m->hung[x]) {
            /* in CPU order, once each (oracle.py reads the targets bitmap):
             * a call sent both RAR requests and IPIs names a CPU twice */
            struct rec r = { m->hung_at[x], x, TR_HUNG, x, 0 };
            size_t j;
            for (j = 0; j < m->extra.n && m->extra.v[j].cpu < x; j++)
                ;
            if (j < m->extra.n && m->extra.v[j].cpu == x)
                continue;
            PUSH(m, m->extra, r);
            memmove(m->extra.v + j + 1, m->extra.v + j, (m->extra.n - 1 - j) * sizeof r);
            m->extra.v[j] = r;
        }
    }
    report(m, V_HANG, SEV_HANG, c, m->extra.v, m->extra.n);
}

/* The oracle: this access used a translation older than one whose flush
 * already returned to its initiator. */
void stale_tlb(struct machine *m, int c, int mm, i64 page)
{
    const struct page *pg = page_of(m, &m->mms.v[mm], page);
    struct rec flush = { pg->ret_t, pg->ret_cpu, TR_FLUSH, mm, -1 };
    ring(m, c, TR_ACCESS_STALE, page, mm);
    report(m, V_STALE_TLB, SEV_ERROR, c, &flush, 1);
}

/* __mmdrop() is freeing mm: no CPU may still reference it, lazily or
 * through CR3 (lazy_mm_use_after_free). free_mm() calls this first. */
void oracle_mm_freed(struct machine *m, int c, int mm)
{
    struct rec rec = { m->now, c, TR_MM_FREE, mm, 0 };
    uint64_t w;
    int i, x;
    for_each_cpu(x, i, w, m->ran, m->nwords) {
        if ((m->active_mm[x] == mm && m->lazy_ref[x]) || m->loaded_mm[x] == mm) {
            report(m, V_LAZY_MM_UAF, SEV_ERROR, x, &rec, 1);
            /* the model drops the dangling reference so the run stays meaningful */
            m->active_mm[x] = INIT_MM;
            m->lazy_ref[x] = 0;
            if (m->loaded_mm[x] == mm)
                force_init_mm(m, x);
        }
    }
}

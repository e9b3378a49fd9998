/*
 * _native.c -- the native engine of pytest-tlbperf (DESIGN §3.7).
 *
 * pytest_tlbperf/engine/machine.py is the definition of the model. This file
 * is its transcription into C99: the same functions under the same (kernel)
 * names, in the same order, with the same arithmetic, so that a reviewer can
 * hold the two side by side. Anything that differs from machine.py is a bug
 * here, and tests/test_native_differential.py exists to find it.
 *
 * Where the C differs structurally from the Python, and why:
 * - Python dicts become scans. The TLB map `key -> slot` is a scan of the
 *   key's set (key -1 = empty way); the PSC map a scan of the psc_entries
 *   slots. A key lives in at most one slot, so a scan finds what the dict
 *   held.
 * - Integer bitmaps (mm_cpumask, the CPUs caching a page-table page) are
 *   arrays of uint64_t words, walked lowest CPU first as `mask & -mask` is.
 * - A CPU's TLB and paging-structure cache are allocated at its first fill
 *   (hw_of); until then they are empty, which is what a lookup finds. So a
 *   1024-CPU machine costs what the CPUs that run something cost. Likewise
 *   an mm's per-page state (mm_present, mm_ver, mm_ret, mm_ret_at) lives in
 *   blocks of BLOCK pages allocated at the first fault in them: a page of a
 *   missing block is not present, at version 0, as machine.py starts it.
 *   mm_ret_at[page] is an index into a log of flush returns.
 * - Scans machine.py makes over every CPU for the ones that run or
 *   reference an mm (free_mm, membarrier) walk m->ran instead, the bitmap of
 *   CPUs that ever switched to a task, in the same ascending order: a CPU
 *   that never did has no task and only init_mm, and matches nothing.
 * - `calls` holds only the cross-calls in flight, in slots reused through a
 *   free list; a watchdog event names its slot and the call's id, so one for
 *   a call that has completed finds another id (machine.py: calls.get(cid)
 *   is None).
 * - Every allocation goes through grow()/xcalloc(), which longjmp() back to
 *   run() on failure. Everything allocated is reachable
 *   from `struct machine` at all times, so machine_free() releases it on
 *   every path and run() raises MemoryError.
 * - Python values cross the boundary only in run(): parse_*() before the
 *   loop (bad types raise TypeError, bad values ValueError) and raw_result()
 *   after it. The loop itself runs without the GIL.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int64_t i64;

/* --- engine/abi.py ------------------------------------------------------- */
enum { OP_ACCESS = 1, OP_COMPUTE, OP_MADVISE, OP_MUNMAP, OP_MPROTECT, OP_SLEEP, OP_YIELD,
       OP_MIGRATE, OP_MARK, OP_MEMBARRIER, OP_EXIT };
enum { EV_STEP = 1, EV_WAKE, EV_IPI, EV_CALL_DONE, EV_SPEC_WALK, EV_WATCHDOG };
enum { CALL_FLUSH = 1, CALL_UNLAZY, CALL_MEMBARRIER };
enum { CONT_STEP = 1, CONT_EXIT_MMAP, CONT_EXIT_FREE };
enum { LAZY_STAY, LAZY_SWITCH_TO_INIT };
enum { CPUMASK_KEEP, CPUMASK_CLEAR };
enum { FLUSH_LAZY_NEVER, FLUSH_LAZY_FREED, FLUSH_LAZY_ALWAYS };
enum { LOCAL_BEFORE_REMOTE, LOCAL_CONCURRENT };
enum { WAIT_DONE, WAIT_ACK };
enum { REF_REFCOUNT, REF_HAZARD, REF_SHOOTDOWN, REF_NONE };
enum { IDLE_LEAVE_FLUSHED, IDLE_LEAVE_NEVER };
enum { BARRIER_IMPLICIT, BARRIER_EXPLICIT };
enum { V_STALE_TLB, V_FREED_TABLE_WALK, V_LAZY_MM_UAF, V_HANG, V_MEMBARRIER_ORDER, N_VKINDS };
enum { SEV_ERROR, SEV_SILENT, SEV_HANG };
enum { TR_SWITCH = 1, TR_SWITCH_MM, TR_LAZY, TR_CPUMASK_CLEAR, TR_FLUSH, TR_IPI, TR_IDLE,
       TR_WAKE, TR_PSC_FILL, TR_TABLE_FREE, TR_SKIP, TR_MM_FREE, TR_LEAVE_MM, TR_WALK,
       TR_ACCESS_STALE, TR_HUNG, TR_PV_DEFER, TR_EXIT };

/* --- engine/prng.py ------------------------------------------------------ */
#define GOLDEN 0x9E3779B97F4A7C15ULL
#define STREAM_MACHINE 2
#define STREAM_VCPU 0x100

/* --- engine/machine.py --------------------------------------------------- */
#define TLB_NR_DYN_ASIDS 6
#define INIT_ASID TLB_NR_DYN_ASIDS
#define NR_HW_ASIDS (TLB_NR_DYN_ASIDS + 1)
#define INIT_MM 0
#define PAGES_PER_TABLE 512
#define TLB_FLUSH_ALL (-1)
#define RING 8
#define MAX_VIOLATIONS 64

/* Input bounds (ValueError beyond them): they keep every sum of times and
 * costs far inside int64 and every page number inside the 32 bits of a
 * TLB key's page half. machine.py has no bounds (Python ints). */
#define MAX_CPUS (1 << 16)
#define MAX_VALUE ((i64)1 << 44)       /* any time, cost or op argument, in cycles */
#define MAX_PAGES (((i64)1 << 31) - 1)
#define MAX_CEILING ((i64)1 << 62)

/* ------------------------------------------------------------ containers */
struct rec { i64 t, cpu, code, a, b; };           /* a trace record */
struct event { i64 t; uint64_t seq; i64 a, b; int32_t cpu, ev; };
struct win { i64 start, end; };                   /* a vCPU preemption window */
struct page_ver { i64 page, ver; };               /* a flush's snapshot entry */
struct table_free { i64 t; int32_t cpu, mm; };    /* table_frees[table][g] */
struct flush_return { i64 t, cpu; };              /* an mm_ret_at value */

struct i32vec { int32_t *v; size_t n, cap; };
struct returnvec { struct flush_return *v; size_t n, cap; };
struct i64vec { i64 *v; size_t n, cap; };
struct recvec { struct rec *v; size_t n, cap; };
struct evheap { struct event *v; size_t n, cap; };
struct snapvec { struct page_ver *v; size_t n, cap; };
struct freevec { struct table_free *v; size_t n, cap; };
/* deques (collections.deque): live elements are v[head .. head+n) */
struct i32deque { int32_t *v; size_t head, n, cap; };
struct windeque { struct win *v; size_t head, n, cap; };

struct hw {        /* one CPU's TLB and paging-structure cache (machine.py tlb_*, psc_*) */
    i64 *tlb_key, *tlb_ver, *tlb_ep, *tlb_rr;
    i64 *psc_key, *psc_table, *psc_gen, *psc_ep, *psc_serial, *psc_mm, *psc_at;
    i64 psc_rr;
};

/* One page of an mm. Versions fit 32 bits: each op raises a page's version
 * at most twice, and parse_tasks() allows fewer than 2^30 ops. */
struct page {
    int32_t ver, ret;     /* mm_ver, mm_ret: newest version whose flush returned */
    int32_t ret_at;       /* mm_ret_at: m->returns[ret_at] is (time, initiator) */
    uint8_t present;
};
#define BLOCK 64          /* pages per lazily allocated block */

struct mm {        /* one mm_struct: machine.py's mm_* lists at one index */
    i64 ctx, gen, count, users;
    i64 npages, nregions;
    struct page **blocks;                    /* npages / BLOCK, rounded up */
    int32_t *tables;
    uint64_t *mask;                          /* mm_cpumask */
    int32_t line_owner[3];                   /* mm_count, mm_cpumask, tlb_gen lines */
    i64 line_free[3];
};
struct mmvec { struct mm *v; size_t n, cap; };

struct table {     /* one page-table page of the pool */
    i64 gen;
    int32_t mm;
    uint64_t *cachers;                       /* CPUs whose PSC may hold it */
    struct freevec frees;
};
struct tablevec { struct table *v; size_t n, cap; };

struct call {      /* machine.py Call */
    i64 id;        /* cid */
    int kind, cont, live;
    int32_t initiator, mm, task;
    i64 t0, start, npages, new_gen;
    int freed, wait_ack, watchdog;
    struct snapvec snap;
    struct i32vec tables;
    i64 pending, done_at, local_done;
    struct i32vec targets;   /* CPUs queued on, in ascending order (see send_ipi) */
};
struct callvec { struct call *v; size_t n, cap; };

struct violation { i64 kind, severity, cpu, time; struct rec *trace; size_t ntrace; };

struct machine {
    jmp_buf oom;

    /* profile (already in cycles) */
    int ncpu, nwords, pcid;
    i64 cores, cores_per_socket;
    i64 c_syscall, c_access, c_walk, c_walk_psc, c_fault, c_zap, c_pte, c_invlpg,
        c_full_flush, c_cr3, c_ctxsw, c_irq, c_flush_func, c_csd, c_ipi_send, c_atomic, c_mb;
    i64 ipi_lat[3], ipi_jitter, xfer[3];
    int ncstates;
    i64 *cs_exit, *cs_residency, *cs_flushed;
    i64 walk_span, walk_severity, watchdog;
    i64 tlb_sets, tlb_set_mask, tlb_ways, psc_n;   /* tlb_set_mask: sets - 1, or -1 */
    int virt, pv;
    i64 v_preempt_percent, v_preempt;

    /* knobs */
    i64 k_lazy_tlb, k_lazy_cpumask, k_flush_lazy, k_flush_local, k_flush_wait, k_lazy_ref,
        k_idle_leave, k_ceiling, k_barrier;
    uint64_t rng;

    /* per-CPU state, flat arrays indexed by CPU ([c * NR_HW_ASIDS + asid] for
     * the per-ASID ones) */
    int32_t *core, *socket;
    int32_t *loaded_mm, *loaded_asid, *next_asid, *cur, *active_mm, *hazard, *cstate;
    uint8_t *is_lazy, *lazy_ref, *hung, *vlast_set, *rpos, *rlen;
    i64 *ctx_id, *ctx_gen, *tlb_epoch, *psc_epoch;
    i64 *idle_since, *irqs_off_until, *irq_busy, *step_token, *step_at, *hung_at,
        *pv_pending, *vlast, *ipis_received;
    uint64_t *vrng;
    struct i32deque *runq;
    struct i64vec *timers;
    struct i32vec *csdq;
    struct windeque *vwin;
    struct hw **hw;
    struct rec *rings;           /* RING records per CPU */
    uint8_t *seen;               /* (kind, cpu) already reported: seen[kind * ncpu + cpu] */
    uint64_t *ran;               /* CPUs that ever context-switched to a task */
    i64 serial;

    /* mm_structs (index 0 is init_mm) and the page-table pool */
    struct mmvec mms;
    struct returnvec returns;    /* where mm_ret_at entries point */
    i64 next_ctx;
    struct tablevec tables;
    struct i32vec table_pool;

    /* tasks; ops of every task in one array */
    size_t ntasks, ntmpl;
    i64 *ops, *task_off, *task_len, *task_tmpl, *task_mm, *task_pc, *task_done, *task_marks;
    i64 *tmpl_pages, *tmpl_mm, *tmpl_threads;

    /* counters and samples */
    i64 n_ipis, n_ipis_to_idle, n_ipis_to_lazy, n_cr3, n_full_flushes, n_invlpg,
        n_tlb_misses, n_contention, n_idle_wakeups, n_ops, n_faults, n_spec_walks,
        n_switch_mb;
    struct i64vec flush_lat;
    i64 violation_counts[N_VKINDS];
    struct violation violations[MAX_VIOLATIONS];
    size_t nviolations;

    struct callvec calls;
    struct i32vec free_calls;    /* call slots not in flight */
    i64 next_call;
    struct evheap heap;
    uint64_t seq;
    i64 now;

    /* scratch, owned here so that a longjmp cannot leak it */
    int32_t *targets;            /* flush_tlb_mm_range's target list */
    struct snapvec snap;         /* change_ptes -> flush_tlb_mm_range, swapped into the call */
    struct i32vec freed_tables;  /* likewise */
    struct i32vec taken;         /* the call_single_queue ev_ipi drains */
    struct recvec extra;         /* ev_watchdog's hung CPUs */
};

static void *grow(struct machine *m, void *v, size_t *cap, size_t size)
{
    size_t ncap = *cap ? 2 * *cap : 8;
    void *p = ncap <= SIZE_MAX / size ? realloc(v, ncap * size) : NULL;
    if (!p)
        longjmp(m->oom, 1);
    *cap = ncap;
    return p;
}

#define PUSH(m, vec, x) do {                                                        \
        if ((vec).n == (vec).cap)                                                   \
            (vec).v = grow((m), (vec).v, &(vec).cap, sizeof *(vec).v);              \
        (vec).v[(vec).n++] = (x);                                                   \
    } while (0)

/* deque.append(): reuse the room popleft() left at the front before growing */
#define DEQUE_APPEND(m, q, x) do {                                                  \
        if ((q).head + (q).n == (q).cap) {                                          \
            if ((q).head) {                                                         \
                memmove((q).v, (q).v + (q).head, (q).n * sizeof *(q).v);            \
                (q).head = 0;                                                       \
            } else {                                                                \
                (q).v = grow((m), (q).v, &(q).cap, sizeof *(q).v);                  \
            }                                                                       \
        }                                                                           \
        (q).v[(q).head + (q).n++] = (x);                                            \
    } while (0)

static void *xcalloc(struct machine *m, size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        longjmp(m->oom, 1);
    return p;
}

/* every CPU x in a bitmap, lowest first, as machine.py's `mask & -mask`
 * loops; i and w are the caller's word index and remaining bits */
#define for_each_cpu(x, i, w, mask, nwords)                                     \
    for ((i) = 0; (i) < (nwords); (i)++)                                        \
        for ((w) = (mask)[i]; (w) && ((x) = (i) * 64 + __builtin_ctzll(w), 1);  \
             (w) &= (w) - 1)

static inline i64 max64(i64 a, i64 b) { return a > b ? a : b; }
static inline int test_bit(const uint64_t *mask, int c) { return (mask[c >> 6] >> (c & 63)) & 1; }
static inline void set_bit(uint64_t *mask, int c) { mask[c >> 6] |= (uint64_t)1 << (c & 63); }
static inline void clear_bit(uint64_t *mask, int c) { mask[c >> 6] &= ~((uint64_t)1 << (c & 63)); }

/* ------------------------------------------------------------ prng.py */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t stream_state(uint64_t seed, uint64_t stream)
{
    return mix64(seed * GOLDEN + stream * 0xD1B54A32D192ED03ULL);
}

static inline i64 below(uint64_t *state, i64 n)
{
    if (n <= 1)
        return 0;
    *state += GOLDEN;
    return (i64)(mix64(*state) % (uint64_t)n);
}

static inline i64 between(uint64_t *state, i64 lo, i64 hi)
{
    return lo + below(state, hi - lo + 1);
}

/* ------------------------------------------------------------------ loop */
static inline int event_before(const struct event *x, const struct event *y)
{
    if (x->t != y->t)
        return x->t < y->t;
    if (x->cpu != y->cpu)
        return x->cpu < y->cpu;
    return x->seq < y->seq;
}

/* heapq.heappush of (t, cpu, seq, ev, a, b) */
static void push(struct machine *m, i64 t, int cpu, int ev, i64 a, i64 b)
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

static void ev_step(struct machine *m, int c);
static void ev_ipi(struct machine *m, int x, i64 delivered);
static void ev_call_done(struct machine *m, int c, i64 slot);
static void ev_wake(struct machine *m, int c, i64 task, i64 timed);
static void ev_spec_walk(struct machine *m, int c, i64 slot, i64 serial);
static void ev_watchdog(struct machine *m, int c, i64 slot, i64 cid);

static void run_loop(struct machine *m)
{
    while (m->heap.n) {
        struct event e = pop(m);
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
}

static i64 stretch(struct machine *m, int c, i64 start, i64 end);

static void schedule_step(struct machine *m, int c, i64 t)
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
static void interrupted(struct machine *m, int c, i64 start, i64 end)
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

/* rlen counts the records written, up to RING: machine.py's None slots */
static void ring(struct machine *m, int c, i64 code, i64 a, i64 b)
{
    struct rec r = { m->now, c, code, a, b };
    m->rings[(size_t)c * RING + m->rpos[c]] = r;
    m->rpos[c] = (uint8_t)((m->rpos[c] + 1) % RING);
    if (m->rlen[c] < RING)
        m->rlen[c]++;
}

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
static void report(struct machine *m, int kind, i64 severity, int c, const struct rec *extra,
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

/* ------------------------------------------------------------ hardware */
static inline int dist(const struct machine *m, int a, int b)
{
    if (m->core[a] == m->core[b])
        return 0;
    return m->socket[a] == m->socket[b] ? 1 : 2;
}

/* A LOCK-prefixed RMW by CPU c on a contended cache line (mm_line(mm, which)). */
static i64 atomic(struct machine *m, int c, int mm, int which, i64 t)
{
    struct mm *M = &m->mms.v[mm];
    i64 start = max64(t, M->line_free[which]);
    int owner = M->line_owner[which];
    i64 xfer = owner == c ? 0 : m->xfer[owner < 0 ? 1 : dist(m, owner, c)];
    i64 end = start + xfer + m->c_atomic;
    m->n_contention += end - t - m->c_atomic;
    M->line_owner[which] = c;
    M->line_free[which] = end;
    return end;
}

static i64 read_line(const struct machine *m, int c, int mm, int which, i64 t)
{
    int owner = m->mms.v[mm].line_owner[which];
    return owner < 0 || owner == c ? t : t + m->xfer[dist(m, owner, c)];
}

static void flush_asid(struct machine *m, int c, int asid)
{
    m->tlb_epoch[c * NR_HW_ASIDS + asid] += 1;
    m->psc_epoch[c * NR_HW_ASIDS + asid] += 1;
}

static void flush_everything(struct machine *m, int c)
{
    int asid;
    for (asid = 0; asid < NR_HW_ASIDS; asid++)
        flush_asid(m, c, asid);
}

/* CPU c's TLB and PSC, allocated at its first fill: every key -1 (empty) */
static struct hw *hw_of(struct machine *m, int c)
{
    struct hw *h = m->hw[c];
    size_t ntlb = (size_t)(m->tlb_sets * m->tlb_ways), npsc = (size_t)m->psc_n, i;
    i64 *p;
    if (h)
        return h;
    h = xcalloc(m, 1, sizeof *h + (3 * ntlb + (size_t)m->tlb_sets + 7 * npsc) * sizeof(i64));
    p = (i64 *)(h + 1);
    h->tlb_key = p, p += ntlb;
    h->tlb_ver = p, p += ntlb;
    h->tlb_ep = p, p += ntlb;
    h->tlb_rr = p, p += m->tlb_sets;
    h->psc_key = p, p += npsc;
    h->psc_table = p, p += npsc;
    h->psc_gen = p, p += npsc;
    h->psc_ep = p, p += npsc;
    h->psc_serial = p, p += npsc;
    h->psc_mm = p, p += npsc;
    h->psc_at = p;
    for (i = 0; i < ntlb; i++)
        h->tlb_key[i] = -1;
    for (i = 0; i < npsc; i++)
        h->psc_key[i] = -1;
    m->hw[c] = h;
    return h;
}

/* The key's set. Both operands are non-negative, so with a power-of-two
 * number of sets (every built-in profile) the mask is Python's modulo. */
static inline i64 tlb_set(const struct machine *m, i64 key)
{
    i64 hash = (key >> 32) * 131 + (key & 0xFFFFFFFF);
    return m->tlb_set_mask >= 0 ? hash & m->tlb_set_mask : hash % m->tlb_sets;
}

/* The slot of key in the set starting at base, or -1. A key is in at most
 * one way, so the scan need not stop early: it runs without branches. */
static inline i64 scan_set(const struct machine *m, const struct hw *h, i64 base, i64 key)
{
    i64 slot = -1, w;
    for (w = base; w < base + m->tlb_ways; w++)
        slot = h->tlb_key[w] == key ? w : slot;
    return slot;
}

/* tlb_map[c].get(key) */
static i64 tlb_lookup(const struct machine *m, int c, i64 key)
{
    const struct hw *h = m->hw[c];
    return h ? scan_set(m, h, tlb_set(m, key) * m->tlb_ways, key) : -1;
}

static void tlb_fill(struct machine *m, int c, i64 key, i64 ver, i64 epoch)
{
    struct hw *h = hw_of(m, c);
    i64 s = tlb_set(m, key), base = s * m->tlb_ways, slot = scan_set(m, h, base, key);
    if (slot < 0) {                            /* not in the set: round-robin victim */
        slot = base + h->tlb_rr[s];
        if (++h->tlb_rr[s] == m->tlb_ways)
            h->tlb_rr[s] = 0;
        h->tlb_key[slot] = key;                /* evicts the old key, if any */
    }
    h->tlb_ver[slot] = ver;
    h->tlb_ep[slot] = epoch;
}

static void invlpg(struct machine *m, int c, int asid, i64 page)
{
    i64 slot = tlb_lookup(m, c, ((i64)asid << 32) | page);
    if (slot >= 0)
        m->hw[c]->tlb_key[slot] = -1;
}

/* psc_map[c].get(key): a scan of every slot */
static i64 psc_lookup(const struct machine *m, int c, i64 key)
{
    const struct hw *h = m->hw[c];
    i64 slot;
    if (!h)
        return -1;
    for (slot = 0; slot < m->psc_n; slot++)
        if (h->psc_key[slot] == key)
            return slot;
    return -1;
}

static void psc_fill(struct machine *m, int c, i64 key, int table)
{
    struct hw *h = hw_of(m, c);
    i64 slot = psc_lookup(m, c, key);
    struct table *T = &m->tables.v[table];
    if (slot < 0) {
        slot = h->psc_rr;
        h->psc_rr = slot + 1 == m->psc_n ? 0 : slot + 1;
        h->psc_key[slot] = key;
    }
    h->psc_table[slot] = table;
    h->psc_gen[slot] = T->gen;
    h->psc_ep[slot] = m->psc_epoch[c * NR_HW_ASIDS + (key >> 32)];
    m->serial += 1;
    h->psc_serial[slot] = m->serial;
    h->psc_mm[slot] = T->mm;
    h->psc_at[slot] = m->now;
    set_bit(T->cachers, c);
    ring(m, c, TR_PSC_FILL, table, T->mm);
}

/* Does this PSC entry, in the ASID CR3 holds now, point at a freed table? */
static int psc_stale(const struct machine *m, int c, i64 slot)
{
    const struct hw *h = m->hw[c];
    i64 key = h->psc_key[slot], asid;
    if (key < 0)
        return 0;
    asid = key >> 32;
    return asid == m->loaded_asid[c]
        && h->psc_ep[slot] == m->psc_epoch[c * NR_HW_ASIDS + asid]
        && h->psc_gen[slot] != m->tables.v[h->psc_table[slot]].gen;
}

static void arm_walk(struct machine *m, int c, i64 slot)
{
    i64 delay = 1 + below(&m->rng, m->walk_span);
    push(m, m->now + delay, c, EV_SPEC_WALK, slot, m->hw[c]->psc_serial[slot]);
}

/* CPU c executes with CR3 on its loaded ASID: every stale PSC entry of that
 * ASID is a speculative walk waiting to happen. */
static void arm_walks(struct machine *m, int c)
{
    i64 slot;
    if (!m->hw[c])
        return;
    for (slot = 0; slot < m->psc_n; slot++)
        if (psc_stale(m, c, slot))
            arm_walk(m, c, slot);
}

/* -- vCPU preemption (KVM guests) ---------------------------------------- */
/* c's preemption windows, generated up to time t; those that ended before
 * now are dropped. */
static struct windeque *vcpu_windows_until(struct machine *m, int c, i64 t)
{
    struct windeque *win = &m->vwin[c];
    i64 dur = m->v_preempt, gap, start;
    uint64_t *rng = &m->vrng[c];
    while (win->n && win->v[win->head].end <= m->now) {
        win->head++;
        win->n--;
    }
    gap = dur * (100 - m->v_preempt_percent) / max64(m->v_preempt_percent, 1);
    if (!m->vlast_set[c]) {
        /* start in a random phase: a vCPU may begin preempted */
        struct win w;
        start = below(rng, gap + dur) - dur;
        w.start = start, w.end = start + dur;
        DEQUE_APPEND(m, *win, w);
        m->vlast[c] = start + dur;
        m->vlast_set[c] = 1;
    }
    while (m->vlast[c] <= t) {
        struct win w;
        w.start = m->vlast[c] + between(rng, gap / 2, gap + gap / 2);
        w.end = w.start + between(rng, dur / 2, dur + dur / 2);
        DEQUE_APPEND(m, *win, w);
        m->vlast[c] = w.end;
    }
    return win;
}

/* If vCPU c is descheduled by the host at time t, when it runs again. */
static i64 preempted_until(struct machine *m, int c, i64 t)
{
    struct windeque *win;
    size_t i;
    if (!m->virt || m->v_preempt_percent == 0)
        return 0;
    win = vcpu_windows_until(m, c, t);
    for (i = 0; i < win->n; i++) {
        const struct win *w = &win->v[win->head + i];
        if (w->start > t)
            break;
        if (t < w->end)
            return w->end;
    }
    return 0;
}

/* Work from start to end on vCPU c finishes later by every preemption
 * window that falls inside it. */
static i64 stretch(struct machine *m, int c, i64 start, i64 end)
{
    struct windeque *win;
    size_t i;
    if (m->v_preempt_percent == 0)
        return end;
    win = vcpu_windows_until(m, c, end);
    for (i = 0; i < win->n; i++) {
        i64 ws = win->v[win->head + i].start, we = win->v[win->head + i].end;
        if (ws >= end)
            break;
        if (we > start) {
            end += we - max64(ws, start);
            vcpu_windows_until(m, c, end);
        }
    }
    return end;
}

/* VM entry after a PV-deferred flush: the host flushes first. */
static void vcpu_sync(struct machine *m, int c)
{
    if (m->pv_pending[c] >= 0 && m->now >= m->pv_pending[c]) {
        m->pv_pending[c] = -1;
        flush_everything(m, c);
        m->n_full_flushes += 1;
    }
}

/* ------------------------------------------------------------ mm_struct */
/* The mm's per-page arrays are allocated after it is counted in m->mms, so
 * machine_free() finds whatever a failed allocation left. */
static int exec_mm(struct machine *m, i64 tmpl)
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

/* the page's state, allocating its block on first use */
static struct page *page_of(struct machine *m, struct mm *M, i64 page)
{
    struct page **block = &M->blocks[page / BLOCK];
    if (!*block)
        *block = xcalloc(m, BLOCK, sizeof **block);
    return &(*block)[page % BLOCK];
}

static int alloc_table(struct machine *m, int mm, i64 region)
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
static void free_table(struct machine *m, int c, int table)
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

static i64 cpumask_set_cpu(struct machine *m, int c, int mm, i64 t)
{
    t = atomic(m, c, mm, 1, t);
    set_bit(m->mms.v[mm].mask, c);
    return t;
}

static i64 cpumask_clear_cpu(struct machine *m, int c, int mm, i64 t)
{
    t = atomic(m, c, mm, 1, t);
    clear_bit(m->mms.v[mm].mask, c);
    ring(m, c, TR_CPUMASK_CLEAR, mm, 0);
    return t;
}

static i64 mmgrab(struct machine *m, int c, int mm, i64 t)
{
    m->mms.v[mm].count += 1;
    return atomic(m, c, mm, 0, t);
}

/* Drop one mm_count reference; *last: it reached zero. */
static i64 mmdrop(struct machine *m, int c, int mm, i64 t, int *last)
{
    m->mms.v[mm].count -= 1;
    t = atomic(m, c, mm, 0, t);
    *last = m->mms.v[mm].count == 0;
    return t;
}

/* __mmdrop() freeing the mm_struct. The oracle's lazy_mm_use_after_free
 * check: no CPU may still reference it, lazily or through CR3. */
static void free_mm(struct machine *m, int c, int mm)
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
            if (m->loaded_mm[x] == mm) {
                m->loaded_mm[x] = INIT_MM;
                m->loaded_asid[x] = m->pcid ? INIT_ASID : 0;
                m->is_lazy[x] = 0;
            }
        }
    }
    ring(m, c, TR_MM_FREE, mm, 0);
}

/* --------------------------------------------------- arch/x86/mm/tlb.c */
static int choose_new_asid(struct machine *m, int c, int mm, i64 next_tlb_gen, int *need_flush)
{
    i64 *ids = &m->ctx_id[c * NR_HW_ASIDS], ctx;
    int asid;
    if (!m->pcid) {
        *need_flush = 1;
        return 0;
    }
    if (mm == INIT_MM) {
        *need_flush = 0;
        return INIT_ASID;
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

static i64 switch_mm_irqs_off(struct machine *m, int c, int nxt, i64 t)
{
    int prev = m->loaded_mm[c], was_lazy = m->is_lazy[c], asid, need_flush;
    i64 gen;
    m->is_lazy[c] = 0;
    if (prev == nxt) {
        if (was_lazy && nxt != INIT_MM) {
            /* Leaving lazy mode on the same mm: catch up through tlb_gen
             * (re-entering mm_cpumask first if v4.14-rc1 took us out). */
            if (!test_bit(m->mms.v[nxt].mask, c))
                t = cpumask_set_cpu(m, c, nxt, t);
            t = read_line(m, c, nxt, 2, t + m->c_mb);
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
    t = read_line(m, c, nxt, 2, t);
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

static i64 leave_mm(struct machine *m, int c, i64 t)
{
    if (m->loaded_mm[c] == INIT_MM)
        return t;
    ring(m, c, TR_LEAVE_MM, m->loaded_mm[c], 0);
    return switch_mm_irqs_off(m, c, INIT_MM, t);
}

static i64 enter_lazy_tlb(struct machine *m, int c, i64 t)
{
    int mm = m->loaded_mm[c];
    if (mm == INIT_MM)
        return t;
    if (m->k_lazy_tlb == LAZY_SWITCH_TO_INIT)
        return switch_mm_irqs_off(m, c, INIT_MM, t);   /* seed 001 */
    m->is_lazy[c] = 1;
    ring(m, c, TR_LAZY, mm, 0);
    if (m->k_lazy_cpumask == CPUMASK_CLEAR)
        t = cpumask_clear_cpu(m, c, mm, t);             /* v4.14-rc1 (94b1b03b519b) */
    return t;
}

/* Bring this CPU's TLB up to date with call->mm's tlb_gen. */
static i64 flush_tlb_func(struct machine *m, int c, const struct call *call, i64 t)
{
    int mm = m->loaded_mm[c], asid;
    i64 local_gen, mm_gen, page;
    if (mm == INIT_MM)
        return t + m->c_flush_func;
    if (m->is_lazy[c]) {
        /* "We need to at least flush our paging-structure cache ... just
         * switch to init_mm." */
        ring(m, c, TR_LEAVE_MM, mm, 0);
        return switch_mm_irqs_off(m, c, INIT_MM, t + m->c_flush_func);
    }
    if (call->mm != mm)
        return t + m->c_flush_func;     /* we switched away since */
    asid = m->loaded_asid[c];
    local_gen = m->ctx_gen[c * NR_HW_ASIDS + asid];
    mm_gen = m->mms.v[mm].gen;
    t += m->c_flush_func;
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
        return t + m->c_invlpg * call->npages;
    }
    flush_asid(m, c, asid);
    m->n_full_flushes += 1;
    m->ctx_gen[c * NR_HW_ASIDS + asid] = mm_gen;
    return t + m->c_full_flush;
}

/* calls[cid] = Call(...) in a free slot; the slot's vectors keep their
 * buffers from its previous call, so a flush allocates nothing */
static int new_call(struct machine *m, int kind, int initiator, int mm, int task, int cont,
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

static i64 native_flush_tlb_multi(struct machine *m, int c, int slot, size_t ntargets, i64 t);
static void finish_sending(struct machine *m, int c, int slot, i64 t);

/* The page snapshot and the tables to free come in m->snap and
 * m->freed_tables (filled by change_ptes / exit_mmap): the call swaps them
 * with its own empty vectors. */
static void flush_tlb_mm_range(struct machine *m, int c, int mm, i64 start, i64 npages,
                               int freed, int task, int cont, i64 t)
{
    struct snapvec snap;
    struct i32vec tables;
    struct call *call;
    i64 t0 = t;
    size_t ntargets = 0;
    uint64_t w;
    int slot, flush_all, local, i, x;
    t = atomic(m, c, mm, 2, t);                      /* inc_mm_tlb_gen() */
    m->mms.v[mm].gen += 1;
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
    t = read_line(m, c, mm, 1, t);
    flush_all = m->k_flush_lazy == FLUSH_LAZY_ALWAYS
        || (freed && m->k_flush_lazy == FLUSH_LAZY_FREED);
    for_each_cpu(x, i, w, m->mms.v[mm].mask, m->nwords) {
        if (x == c)
            continue;
        if (!flush_all)
            t += m->xfer[dist(m, c, x)];
        if (!m->is_lazy[x] || flush_all)
            m->targets[ntargets++] = x;
        else
            ring(m, c, TR_SKIP, x, mm);
    }
    local = m->loaded_mm[c] == mm;
    if (local && m->k_flush_local == LOCAL_BEFORE_REMOTE)
        t = flush_tlb_func(m, c, call, t);
    t = native_flush_tlb_multi(m, c, slot, ntargets, t);
    if (local && m->k_flush_local == LOCAL_CONCURRENT)
        t = flush_tlb_func(m, c, call, t);
    ring(m, c, TR_FLUSH, mm, call->pending);
    finish_sending(m, c, slot, t);
}

static i64 send_ipi(struct machine *m, int c, int x, int slot, i64 t);

/* Send the IPIs. With KVM's PV flush (kvm_flush_tlb_multi), a preempted vCPU
 * gets no IPI: the host flushes it at its next VM entry. */
static i64 native_flush_tlb_multi(struct machine *m, int c, int slot, size_t ntargets, i64 t)
{
    size_t i;
    for (i = 0; i < ntargets; i++) {
        int x = m->targets[i];
        if (m->pv) {
            i64 resume = preempted_until(m, x, t);
            if (resume) {
                m->pv_pending[x] = max64(m->pv_pending[x], resume);
                ring(m, c, TR_PV_DEFER, x, m->calls.v[slot].mm);
                continue;
            }
        }
        t = send_ipi(m, c, x, slot, t);
    }
    return t;
}

static void arm_watchdog(struct machine *m, int slot);

/* __smp_call_function_many(): llist_add() the request to x's
 * call_single_queue; only if the queue was empty is an IPI sent.
 * Every caller sends in ascending CPU order, so call->targets stays sorted
 * like machine.py's bitmap. */
static i64 send_ipi(struct machine *m, int c, int x, int slot, i64 t)
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

static void finish_sending(struct machine *m, int c, int slot, i64 t)
{
    struct call *call = &m->calls.v[slot];
    call->local_done = t;
    if (call->pending == 0)
        push(m, t, c, EV_CALL_DONE, slot, 0);
}

/* -------------------------------------------------------- IPI delivery */
static i64 wake_from_idle(struct machine *m, int c, int by_ipi);
static i64 run_call(struct machine *m, int x, int slot, i64 t);

static void ev_ipi(struct machine *m, int x, i64 delivered)
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

static i64 unlazy(struct machine *m, int x, int mm, i64 t);

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

static void arm_watchdog(struct machine *m, int slot)
{
    struct call *call = &m->calls.v[slot];
    if (!call->watchdog) {
        call->watchdog = 1;
        push(m, call->t0 + m->watchdog, call->initiator, EV_WATCHDOG, slot, call->id);
    }
}

static void ev_watchdog(struct machine *m, int c, i64 slot, i64 cid)
{
    const struct call *call = &m->calls.v[slot];
    size_t i;
    if (!call->live || call->id != cid)
        return;
    m->extra.n = 0;
    for (i = 0; i < call->targets.n; i++) {
        int x = call->targets.v[i];
        if (m->hung[x]) {
            struct rec r = { m->hung_at[x], x, TR_HUNG, x, 0 };
            PUSH(m, m->extra, r);
        }
    }
    report(m, V_HANG, SEV_HANG, c, m->extra.v, m->extra.n);
}

static void exit_mmap_done(struct machine *m, int c, int task, int mm, i64 t);
static void exit_done(struct machine *m, int c, int task, i64 t);

static void ev_call_done(struct machine *m, int c, i64 slot)
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

/* -------------------------------------------------------------- idle */
/* Leave the C-state; returns the exit latency paid (entering is taken to
 * last as long as leaving: an interrupt during entry pays the time spent). */
static i64 wake_from_idle(struct machine *m, int c, int by_ipi)
{
    int state = m->cstate[c];
    i64 spent = m->now - m->idle_since[c];
    m->cstate[c] = -1;
    m->n_idle_wakeups += 1;
    ring(m, c, TR_WAKE, by_ipi, state);
    arm_walks(m, c);
    return m->cs_exit[state] < spent ? m->cs_exit[state] : spent;
}

static void schedule(struct machine *m, int c, i64 t);

static void idle_loop(struct machine *m, int c)
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

/* ---------------------------------------------------------- scheduler */
static i64 context_switch(struct machine *m, int c, int nxt, i64 t);

static void schedule(struct machine *m, int c, i64 t)
{
    struct i32deque *q = &m->runq[c];
    int nxt = -1;
    if (q->n) {
        nxt = q->v[q->head++];
        if (--q->n == 0)
            q->head = 0;
    }
    t = context_switch(m, c, nxt, t);
    schedule_step(m, c, t);
}

static i64 take_lazy_ref(struct machine *m, int c, int mm, i64 t);
static i64 drop_lazy_ref(struct machine *m, int c, i64 t);

/* kernel/sched/core.c context_switch(): the mm half. */
static i64 context_switch(struct machine *m, int c, int nxt, i64 t)
{
    int mm = nxt >= 0 ? (int)m->task_mm[nxt] : INIT_MM;
    t += m->c_ctxsw;
    m->cur[c] = nxt;
    if (nxt >= 0)
        set_bit(m->ran, c);
    if (mm != INIT_MM) {
        t = switch_mm_irqs_off(m, c, mm, t);
        if (m->k_barrier == BARRIER_EXPLICIT) {
            t += m->c_mb;       /* seed 003: make the post-switch-mm barrier explicit */
            m->n_switch_mb += 1;
        }
        if (m->lazy_ref[c])
            t = drop_lazy_ref(m, c, t);     /* finish_task_switch(): mmdrop(prev->active_mm) */
        m->active_mm[c] = mm;
    } else if (m->active_mm[c] != INIT_MM && !m->lazy_ref[c]) {
        /* user -> kernel thread: borrow the mm lazily */
        t = take_lazy_ref(m, c, m->active_mm[c], t);
        t = enter_lazy_tlb(m, c, t);
    }
    ring(m, c, TR_SWITCH, nxt, mm);
    m->irqs_off_until[c] = t;
    return t;
}

static i64 take_lazy_ref(struct machine *m, int c, int mm, i64 t)
{
    m->active_mm[c] = mm;
    m->lazy_ref[c] = 1;
    if (m->k_lazy_ref == REF_REFCOUNT)
        return mmgrab(m, c, mm, t);
    if (m->k_lazy_ref == REF_HAZARD)
        m->hazard[c] = mm;          /* a per-CPU store, no shared line */
    return t;
}

static i64 drop_lazy_ref(struct machine *m, int c, i64 t)
{
    int mm = m->active_mm[c], last;
    m->lazy_ref[c] = 0;
    if (m->k_lazy_ref == REF_REFCOUNT) {
        t = mmdrop(m, c, mm, t, &last);
        if (last)
            free_mm(m, c, mm);
    } else if (m->k_lazy_ref == REF_HAZARD) {
        m->hazard[c] = INIT_MM;
    }
    return t;
}

/* Shootdown / hazard-pointer handler: stop using a dying mm lazily. */
static i64 unlazy(struct machine *m, int x, int mm, i64 t)
{
    if (m->active_mm[x] == mm && m->lazy_ref[x]) {
        if (m->loaded_mm[x] == mm) {
            ring(m, x, TR_LEAVE_MM, mm, 0);
            t = switch_mm_irqs_off(m, x, INIT_MM, t);
        }
        m->active_mm[x] = INIT_MM;
        m->lazy_ref[x] = 0;
        m->hazard[x] = INIT_MM;
    }
    return t;
}

/* ----------------------------------------------------------- events */
/* bisect.bisect_left / bisect.insort (bisect_right) on a CPU's sorted timers */
static size_t bisect_left(const struct i64vec *v, i64 x)
{
    size_t lo = 0, hi = v->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v->v[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void insort(struct machine *m, struct i64vec *v, i64 x)
{
    size_t lo = 0, hi = v->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (x < v->v[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    PUSH(m, *v, x);
    memmove(v->v + lo + 1, v->v + lo, (v->n - 1 - lo) * sizeof *v->v);
    v->v[lo] = x;
}

static void ev_wake(struct machine *m, int c, i64 task, i64 timed)
{
    if (timed) {
        /* del timers[bisect_left(timers, now)]: this wake-up's time is there */
        struct i64vec *timers = &m->timers[c];
        size_t i = bisect_left(timers, m->now);
        memmove(timers->v + i, timers->v + i + 1, (timers->n - 1 - i) * sizeof *timers->v);
        timers->n--;
    }
    if (m->task_mm[task] < 0) {                      /* fork+exec / clone */
        i64 tmpl = m->task_tmpl[task];
        if (tmpl < 0)
            m->task_mm[task] = INIT_MM;              /* a kernel thread */
        else if (m->tmpl_mm[tmpl] < 0)
            m->task_mm[task] = exec_mm(m, tmpl);
        else
            m->task_mm[task] = m->tmpl_mm[tmpl];     /* a thread of a live process */
    }
    DEQUE_APPEND(m, m->runq[c], (int32_t)task);
    if (m->cur[c] < 0 && m->step_at[c] < 0 && !m->hung[c]) {
        i64 t = m->now;
        if (m->cstate[c] >= 0) {
            vcpu_sync(m, c);
            t += wake_from_idle(m, c, 0);
        }
        schedule_step(m, c, t);
    }
}

static void freed_table_walk(struct machine *m, int c, i64 slot, int table);

static void ev_spec_walk(struct machine *m, int c, i64 slot, i64 serial)
{
    if (m->hung[c] || m->hw[c]->psc_serial[slot] != serial)
        return;
    vcpu_sync(m, c);
    if (m->cstate[c] >= 0)
        return;         /* halted: walks resume (re-armed) at wake-up */
    if (m->virt) {
        i64 resume = preempted_until(m, c, m->now);
        if (resume) {
            push(m, resume + 1 + below(&m->rng, m->walk_span), c, EV_SPEC_WALK, slot, serial);
            return;
        }
    }
    if (!psc_stale(m, c, slot))
        return;
    m->n_spec_walks += 1;
    freed_table_walk(m, c, slot, (int)m->hw[c]->psc_table[slot]);
}

static void freed_table_walk(struct machine *m, int c, i64 slot, int table)
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
        ring(m, c, TR_HUNG, c, 0);
    }
}

static i64 access_pages(struct machine *m, int c, int mm, i64 first, i64 npages, i64 t);
static void change_ptes(struct machine *m, int c, int task, int mm, i64 code, i64 first,
                        i64 npages, i64 free_tables, i64 t);
static void membarrier(struct machine *m, int c, int task, int mm, i64 t);
static void do_exit(struct machine *m, int c, int task, i64 t);

static void ev_step(struct machine *m, int c)
{
    int task, mm;
    i64 pc, now, code, a, b, d;
    const i64 *op;
    if (m->hung[c])
        return;
    vcpu_sync(m, c);
    task = m->cur[c];
    if (task < 0) {
        idle_loop(m, c);
        return;
    }
    pc = m->task_pc[task];
    now = m->now;
    if (pc >= m->task_len[task]) {
        do_exit(m, c, task, now);
        return;
    }
    op = &m->ops[m->task_off[task] + pc];
    code = op[0], a = op[1], b = op[2], d = op[3];
    m->task_pc[task] = pc + 4;
    m->n_ops += 1;
    mm = (int)m->task_mm[task];
    switch (code) {     /* every code was checked by parse_tasks() */
    case OP_ACCESS:
        schedule_step(m, c, access_pages(m, c, mm, a, b, now));
        break;
    case OP_COMPUTE:
        schedule_step(m, c, now + a);
        break;
    case OP_MADVISE:
    case OP_MUNMAP:
    case OP_MPROTECT:
        change_ptes(m, c, task, mm, code, a, b, d, now);
        break;
    case OP_SLEEP: {
        i64 wake = now + m->c_syscall + a;
        insort(m, &m->timers[c], wake);
        push(m, wake, c, EV_WAKE, task, 1);
        schedule(m, c, now + m->c_syscall);
        break;
    }
    case OP_YIELD:
        if (m->runq[c].n) {
            DEQUE_APPEND(m, m->runq[c], task);
            schedule(m, c, now + m->c_syscall);
        } else {
            schedule_step(m, c, now + m->c_syscall);
        }
        break;
    case OP_MIGRATE:
        if (a == c || a < 0 || a >= m->ncpu) {
            schedule_step(m, c, now);
        } else {
            push(m, now + m->c_ctxsw, (int)a, EV_WAKE, task, 0);
            schedule(m, c, now);
        }
        break;
    case OP_MARK: {
        i64 *marks = &m->task_marks[3 * task];
        if (marks[0] < 0)
            marks[0] = now;
        marks[1] = now;
        marks[2] += 1;
        schedule_step(m, c, now);
        break;
    }
    case OP_MEMBARRIER:
        membarrier(m, c, task, mm, now);
        break;
    case OP_EXIT:
        m->task_pc[task] = m->task_len[task];
        do_exit(m, c, task, now);
        break;
    }
}

/* ------------------------------------------------------------ user ops */
static void stale_tlb(struct machine *m, int c, int mm, i64 page);
static i64 page_walk(struct machine *m, int c, int mm, int asid, i64 page, i64 t);

/* machine.py access() (renamed: unistd.h declares access()) */
static i64 access_pages(struct machine *m, int c, int mm, i64 first, i64 npages, i64 t)
{
    int asid;
    i64 epoch, page;
    if (mm == INIT_MM)
        return t;
    asid = m->loaded_asid[c];
    epoch = m->tlb_epoch[c * NR_HW_ASIDS + asid];
    for (page = first; page < first + npages; page++) {
        i64 key = ((i64)asid << 32) | page, slot = tlb_lookup(m, c, key);
        if (slot >= 0 && m->hw[c]->tlb_ep[slot] == epoch) {
            /* a TLB entry means a walk, so the page's block exists */
            if (m->hw[c]->tlb_ver[slot] < page_of(m, &m->mms.v[mm], page)->ret)
                stale_tlb(m, c, mm, page);
            t += m->c_access;
            continue;
        }
        m->n_tlb_misses += 1;
        t = page_walk(m, c, mm, asid, page, t);
    }
    return t;
}

/* The oracle: this access used a translation older than one whose flush
 * already returned to its initiator. */
static void stale_tlb(struct machine *m, int c, int mm, i64 page)
{
    const struct flush_return *at = &m->returns.v[page_of(m, &m->mms.v[mm], page)->ret_at];
    struct rec flush = { at->t, at->cpu, TR_FLUSH, mm, -1 };
    ring(m, c, TR_ACCESS_STALE, page, mm);
    report(m, V_STALE_TLB, SEV_ERROR, c, &flush, 1);
}

static i64 page_walk(struct machine *m, int c, int mm, int asid, i64 page, i64 t)
{
    i64 region = page / PAGES_PER_TABLE, pkey = ((i64)asid << 32) | region;
    i64 slot = psc_lookup(m, c, pkey);
    int hit = slot >= 0 && m->hw[c]->psc_ep[slot] == m->psc_epoch[c * NR_HW_ASIDS + asid];
    struct page *pg;
    if (hit && m->hw[c]->psc_gen[slot] != m->tables.v[m->hw[c]->psc_table[slot]].gen) {
        freed_table_walk(m, c, slot, (int)m->hw[c]->psc_table[slot]);
        hit = 0;
        if (m->hung[c])
            return t;
    }
    if (hit) {
        t += m->c_walk_psc;
    } else {
        int table = m->mms.v[mm].tables[region];
        t += m->c_walk;
        if (table < 0)
            table = alloc_table(m, mm, region);
        psc_fill(m, c, pkey, table);
    }
    pg = page_of(m, &m->mms.v[mm], page);
    if (!pg->present) {
        pg->present = 1;
        pg->ver += 1;
        m->n_faults += 1;
        t += m->c_fault;
    }
    tlb_fill(m, c, ((i64)asid << 32) | page, pg->ver, m->tlb_epoch[c * NR_HW_ASIDS + asid]);
    return t;
}

/* madvise(DONTNEED) / munmap / mprotect: change PTEs, then one
 * flush_tlb_mm_range for the range (mmu_gather). */
static void change_ptes(struct machine *m, int c, int task, int mm, i64 code, i64 first,
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

/* MEMBARRIER_CMD_PRIVATE_EXPEDITED: IPI every CPU whose rq->curr runs this
 * mm (smp_mb() before and after). */
static void membarrier(struct machine *m, int c, int task, int mm, i64 t)
{
    uint64_t w;
    int slot, i, x;
    t += m->c_syscall + 2 * m->c_mb;
    slot = new_call(m, CALL_MEMBARRIER, c, mm, task, CONT_STEP, m->now);
    for_each_cpu(x, i, w, m->ran, m->nwords)
        if (x != c && m->cur[x] >= 0 && m->task_mm[m->cur[x]] == mm)
            t = send_ipi(m, c, x, slot, t);
    finish_sending(m, c, slot, t);
}

/* ------------------------------------------------------------- exit */
static void exit_mmap(struct machine *m, int c, int task, int mm, i64 t);

static void do_exit(struct machine *m, int c, int task, i64 t)
{
    int mm = (int)m->task_mm[task];
    if (mm == INIT_MM) {
        exit_done(m, c, task, t);
        return;
    }
    ring(m, c, TR_EXIT, task, mm);
    /* exit_mm(): the task keeps mm as its active_mm, borrowed lazily, until
     * it schedules away for the last time. */
    t = take_lazy_ref(m, c, mm, t);
    t = enter_lazy_tlb(m, c, t);
    m->task_mm[task] = INIT_MM;
    m->mms.v[mm].users -= 1;
    if (m->mms.v[mm].users) {
        exit_done(m, c, task, t);
        return;
    }
    exit_mmap(m, c, task, mm, t);
}

/* The last user is gone: unmap everything and free every page table, with
 * one flush (tlb_finish_mmu with freed_tables). */
static void exit_mmap(struct machine *m, int c, int task, int mm, i64 t)
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

static void exit_mmap_done(struct machine *m, int c, int task, int mm, i64 t)
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

static void exit_done(struct machine *m, int c, int task, i64 t)
{
    m->task_done[task] = t;
    schedule(m, c, t);
}

/* ------------------------------------------------------------ run() input */
/* The layout native.py flattens a Profile into (native.PROFILE_FIELDS). */
enum { P_CPUS, P_CORES, P_CORES_PER_SOCKET, P_PCID, P_TLB_SETS, P_TLB_WAYS, P_PSC_ENTRIES,
       P_WALK_INTERVAL, P_WALK_SEVERITY, P_WATCHDOG, P_IPI_JITTER, P_IPI_SMT, P_IPI_SOCKET,
       P_IPI_REMOTE, P_XFER_SMT, P_XFER_SOCKET, P_XFER_REMOTE, P_SYSCALL, P_ACCESS, P_WALK,
       P_WALK_PSC, P_PAGE_FAULT, P_ZAP_PTE, P_PTE_UPDATE, P_INVLPG, P_FULL_FLUSH, P_CR3_WRITE,
       P_CONTEXT_SWITCH, P_IRQ_ENTRY, P_FLUSH_FUNC, P_CSD_ACK, P_IPI_SEND, P_ATOMIC, P_SMP_MB,
       N_PROFILE };
static const char *const profile_fields[N_PROFILE] = {
    "cpus", "cores", "cores_per_socket", "pcid", "tlb_sets", "tlb_ways", "psc_entries",
    "walk_interval", "walk_severity", "watchdog", "ipi_jitter", "ipi_smt", "ipi_socket",
    "ipi_remote", "xfer_smt", "xfer_socket", "xfer_remote", "syscall", "access", "walk",
    "walk_psc", "page_fault", "zap_pte", "pte_update", "invlpg", "full_flush", "cr3_write",
    "context_switch", "irq_entry", "flush_func", "csd_ack", "ipi_send", "atomic", "smp_mb",
};
/* ... and a Knobs (native.KNOB_FIELDS) */
enum { K_LAZY_TLB, K_LAZY_CPUMASK, K_FLUSH_LAZY, K_FLUSH_LOCAL, K_FLUSH_WAIT, K_LAZY_REF, K_PV,
       K_IDLE_LEAVE, K_CEILING, K_BARRIER, N_KNOBS };
static const char *const knob_fields[N_KNOBS] = {
    "lazy_tlb", "lazy_cpumask", "flush_lazy_cpus", "flush_local", "flush_wait", "lazy_mm_ref",
    "pv_flush", "idle_leave_mm", "flush_ceiling", "switch_mm_barrier",
};
static const i64 knob_max[N_KNOBS] = { 1, 1, 2, 1, 1, 3, 1, 1, MAX_CEILING, 1 };

/* An int in [lo, hi]? (PyLong_AsLongLongAndOverflow cannot fail on an int) */
static inline int in_range(PyObject *o, i64 lo, i64 hi, i64 *out)
{
    int overflow;
    long long v;
    if (!PyLong_Check(o))
        return 0;
    v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

/* TypeError if o is not an int, else ValueError: out of [lo, hi]. The name
 * of the value is printf-formatted only here, on error. */
static int int_error(PyObject *o, i64 lo, i64 hi, const char *fmt, va_list ap)
{
    PyObject *name = PyUnicode_FromFormatV(fmt, ap);
    if (!name)
        return -1;
    if (!PyLong_Check(o))
        PyErr_Format(PyExc_TypeError, "%U must be an int, not %.100s", name, Py_TYPE(o)->tp_name);
    else
        PyErr_Format(PyExc_ValueError, "%U = %R is out of range [%lld, %lld]", name, o,
                     (long long)lo, (long long)hi);
    Py_DECREF(name);
    return -1;
}

static int as_int(PyObject *o, i64 lo, i64 hi, i64 *out, const char *fmt, ...)
{
    va_list ap;
    int rc;
    if (in_range(o, lo, hi, out))
        return 0;
    va_start(ap, fmt);
    rc = int_error(o, lo, hi, fmt, ap);
    va_end(ap);
    return rc;
}

/* A tuple (of n items if n >= 0), else TypeError / ValueError. */
static int as_tuple(PyObject *o, Py_ssize_t n, const char *what)
{
    if (!PyTuple_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be a tuple, not %.100s", what,
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    if (n >= 0 && PyTuple_GET_SIZE(o) != n) {
        PyErr_Format(PyExc_ValueError, "%s must have %zd items, not %zd", what, n,
                     PyTuple_GET_SIZE(o));
        return -1;
    }
    return 0;
}

static int parse_profile(struct machine *m, PyObject *prof, PyObject *cstates, PyObject *virt)
{
    i64 p[N_PROFILE];
    int i;
    if (as_tuple(prof, N_PROFILE, "profile") < 0)
        return -1;
    for (i = 0; i < N_PROFILE; i++) {
        i64 lo = 0, hi = MAX_VALUE;
        if (i == P_CPUS)
            lo = 1, hi = MAX_CPUS;
        else if (i == P_CORES || i == P_CORES_PER_SOCKET || i == P_TLB_SETS || i == P_TLB_WAYS
                 || i == P_PSC_ENTRIES)
            lo = 1, hi = 1 << 20;
        else if (i == P_PCID)
            hi = 1;
        else if (i == P_WALK_SEVERITY)
            lo = SEV_SILENT, hi = SEV_HANG;
        if (as_int(PyTuple_GET_ITEM(prof, i), lo, hi, &p[i], "profile %s",
                   profile_fields[i]) < 0)
            return -1;
    }
    if (p[P_CPUS] % p[P_CORES] || p[P_CORES] % p[P_CORES_PER_SOCKET]) {
        PyErr_SetString(PyExc_ValueError,
                        "profile: cores must divide cpus and cores_per_socket must divide cores");
        return -1;
    }
    m->ncpu = (int)p[P_CPUS];
    m->nwords = (m->ncpu + 63) / 64;
    m->cores = p[P_CORES], m->cores_per_socket = p[P_CORES_PER_SOCKET];
    m->pcid = (int)p[P_PCID];
    m->tlb_sets = p[P_TLB_SETS], m->tlb_ways = p[P_TLB_WAYS], m->psc_n = p[P_PSC_ENTRIES];
    m->tlb_set_mask = m->tlb_sets & (m->tlb_sets - 1) ? -1 : m->tlb_sets - 1;
    m->walk_span = 2 * p[P_WALK_INTERVAL];
    m->walk_severity = p[P_WALK_SEVERITY];
    m->watchdog = p[P_WATCHDOG];
    m->ipi_jitter = p[P_IPI_JITTER];
    for (i = 0; i < 3; i++) {
        m->ipi_lat[i] = p[P_IPI_SMT + i];
        m->xfer[i] = p[P_XFER_SMT + i];
    }
    m->c_syscall = p[P_SYSCALL], m->c_access = p[P_ACCESS];
    m->c_walk = p[P_WALK], m->c_walk_psc = p[P_WALK_PSC];
    m->c_fault = p[P_PAGE_FAULT], m->c_zap = p[P_ZAP_PTE], m->c_pte = p[P_PTE_UPDATE];
    m->c_invlpg = p[P_INVLPG], m->c_full_flush = p[P_FULL_FLUSH];
    m->c_cr3 = p[P_CR3_WRITE], m->c_ctxsw = p[P_CONTEXT_SWITCH];
    m->c_irq = p[P_IRQ_ENTRY], m->c_flush_func = p[P_FLUSH_FUNC], m->c_csd = p[P_CSD_ACK];
    m->c_ipi_send = p[P_IPI_SEND], m->c_atomic = p[P_ATOMIC], m->c_mb = p[P_SMP_MB];

    if (as_tuple(cstates, -1, "cstates") < 0)
        return -1;
    m->ncstates = (int)PyTuple_GET_SIZE(cstates);
    m->cs_exit = xcalloc(m, (size_t)m->ncstates, sizeof(i64));
    m->cs_residency = xcalloc(m, (size_t)m->ncstates, sizeof(i64));
    m->cs_flushed = xcalloc(m, (size_t)m->ncstates, sizeof(i64));
    for (i = 0; i < m->ncstates; i++) {
        PyObject *s = PyTuple_GET_ITEM(cstates, i);
        if (as_tuple(s, 3, "a cstate (exit_latency, target_residency, tlb_flushed)") < 0
                || as_int(PyTuple_GET_ITEM(s, 0), 0, MAX_VALUE, &m->cs_exit[i],
                          "cstates[%d] exit_latency", i) < 0
                || as_int(PyTuple_GET_ITEM(s, 1), 0, MAX_VALUE, &m->cs_residency[i],
                          "cstates[%d] target_residency", i) < 0
                || as_int(PyTuple_GET_ITEM(s, 2), 0, 1, &m->cs_flushed[i],
                          "cstates[%d] tlb_flushed", i) < 0)
            return -1;
    }

    if (virt != Py_None) {
        i64 pv_available;
        if (as_tuple(virt, 3, "virt (preempt_percent, preempt, pv_tlb_flush)") < 0
                || as_int(PyTuple_GET_ITEM(virt, 0), 0, 95, &m->v_preempt_percent,
                          "virt preempt_percent") < 0
                || as_int(PyTuple_GET_ITEM(virt, 1), 0, MAX_VALUE, &m->v_preempt,
                          "virt preempt") < 0
                || as_int(PyTuple_GET_ITEM(virt, 2), 0, 1, &pv_available,
                          "virt pv_tlb_flush") < 0)
            return -1;
        if (m->v_preempt_percent > 0 && m->v_preempt == 0) {
            /* vcpu_windows_until() would append empty windows forever */
            PyErr_SetString(PyExc_ValueError,
                            "virt: a vCPU preempted for 0 cycles at a time never gets to run");
            return -1;
        }
        m->virt = 1;
        m->pv = (int)pv_available;      /* and-ed with the knob in parse_knobs() */
    }
    return 0;
}

static int parse_knobs(struct machine *m, PyObject *knobs)
{
    i64 k[N_KNOBS];
    int i;
    if (as_tuple(knobs, N_KNOBS, "knobs") < 0)
        return -1;
    for (i = 0; i < N_KNOBS; i++)
        if (as_int(PyTuple_GET_ITEM(knobs, i), 0, knob_max[i], &k[i], "knob %s",
                   knob_fields[i]) < 0)
            return -1;
    m->k_lazy_tlb = k[K_LAZY_TLB];
    m->k_lazy_cpumask = k[K_LAZY_CPUMASK];
    m->k_flush_lazy = k[K_FLUSH_LAZY];
    m->k_flush_local = k[K_FLUSH_LOCAL];
    m->k_flush_wait = k[K_FLUSH_WAIT];
    m->k_lazy_ref = k[K_LAZY_REF];
    m->k_idle_leave = k[K_IDLE_LEAVE];
    m->k_ceiling = k[K_CEILING];
    m->k_barrier = k[K_BARRIER];
    m->pv = m->virt && m->pv && k[K_PV];
    return 0;
}

/* Checks every op once, so the loop can trust them: known codes, arguments
 * in range, page ranges inside the task's mm (machine.py would raise an
 * IndexError, or wrap a negative index, when it got there). */
static int parse_tasks(struct machine *m, PyObject *mm_pages, PyObject *tasks)
{
    size_t i, nops = 0;
    Py_ssize_t j;
    if (as_tuple(mm_pages, -1, "mm_pages") < 0 || as_tuple(tasks, -1, "tasks") < 0)
        return -1;
    m->ntmpl = (size_t)PyTuple_GET_SIZE(mm_pages);
    m->ntasks = (size_t)PyTuple_GET_SIZE(tasks);
    if (m->ntmpl > INT32_MAX - 1 || m->ntasks > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "too many tasks or mm templates");
        return -1;
    }
    m->tmpl_pages = xcalloc(m, m->ntmpl, sizeof(i64));
    m->tmpl_mm = xcalloc(m, m->ntmpl, sizeof(i64));
    m->tmpl_threads = xcalloc(m, m->ntmpl, sizeof(i64));
    for (i = 0; i < m->ntmpl; i++) {
        if (as_int(PyTuple_GET_ITEM(mm_pages, i), 0, MAX_PAGES, &m->tmpl_pages[i],
                   "mm_pages[%zd]", (Py_ssize_t)i) < 0)
            return -1;
        m->tmpl_mm[i] = -1;
    }
    for (i = 0; i < m->ntasks; i++) {
        PyObject *t = PyTuple_GET_ITEM(tasks, i);
        if (as_tuple(t, 4, "a task (mm, cpu, start, ops)") < 0
                || as_tuple(PyTuple_GET_ITEM(t, 3), -1, "a task's ops") < 0)
            return -1;
        if (PyTuple_GET_SIZE(PyTuple_GET_ITEM(t, 3)) % 4) {
            PyErr_Format(PyExc_ValueError, "task %zd: ops must be a multiple of 4 ints",
                         (Py_ssize_t)i);
            return -1;
        }
        nops += (size_t)PyTuple_GET_SIZE(PyTuple_GET_ITEM(t, 3));
    }
    if (nops >= (size_t)4 << 30) {      /* keeps page versions in 32 bits (struct page) */
        PyErr_SetString(PyExc_ValueError, "the native engine runs programs of fewer than "
                        "2**30 ops");
        return -1;
    }
    m->ops = xcalloc(m, nops, sizeof(i64));
    m->task_off = xcalloc(m, m->ntasks, sizeof(i64));
    m->task_len = xcalloc(m, m->ntasks, sizeof(i64));
    m->task_tmpl = xcalloc(m, m->ntasks, sizeof(i64));
    m->task_mm = xcalloc(m, m->ntasks, sizeof(i64));
    m->task_pc = xcalloc(m, m->ntasks, sizeof(i64));
    m->task_done = xcalloc(m, m->ntasks, sizeof(i64));
    m->task_marks = xcalloc(m, 3 * m->ntasks, sizeof(i64));
    for (i = 0, nops = 0; i < m->ntasks; i++) {
        PyObject *t = PyTuple_GET_ITEM(tasks, i), *ops = PyTuple_GET_ITEM(t, 3);
        i64 tmpl, cpu, start, *op;
        if (as_int(PyTuple_GET_ITEM(t, 0), -1, (i64)m->ntmpl - 1, &tmpl, "task %zd mm",
                   (Py_ssize_t)i) < 0
                || as_int(PyTuple_GET_ITEM(t, 1), 0, m->ncpu - 1, &cpu, "task %zd cpu",
                          (Py_ssize_t)i) < 0
                || as_int(PyTuple_GET_ITEM(t, 2), -MAX_VALUE, MAX_VALUE, &start,
                          "task %zd start", (Py_ssize_t)i) < 0)
            return -1;
        m->task_tmpl[i] = tmpl;
        m->task_mm[i] = -1;                 /* not started yet */
        m->task_done[i] = -1;
        m->task_marks[3 * i] = -1;
        m->task_off[i] = (i64)nops;
        m->task_len[i] = PyTuple_GET_SIZE(ops);
        if (tmpl >= 0)
            m->tmpl_threads[tmpl] += 1;     /* clone() takes mm_users before it runs */
        for (j = 0; j < PyTuple_GET_SIZE(ops); j++)
            if (!in_range(PyTuple_GET_ITEM(ops, j), -MAX_VALUE, MAX_VALUE, &m->ops[nops + j]))
                return as_int(PyTuple_GET_ITEM(ops, j), -MAX_VALUE, MAX_VALUE,
                              &m->ops[nops + j], "task %zd op %zd word %zd", (Py_ssize_t)i,
                              j / 4, j % 4);
        for (op = &m->ops[nops]; op < &m->ops[nops + j]; op += 4) {
            i64 code = op[0], first = op[1], npages = op[2];
            if (code < OP_ACCESS || code > OP_EXIT) {
                PyErr_Format(PyExc_ValueError, "task %zd op %zd: unknown op code %lld",
                             (Py_ssize_t)i, (Py_ssize_t)(op - &m->ops[nops]) / 4,
                             (long long)code);
                return -1;
            }
            int changes = code == OP_MADVISE || code == OP_MUNMAP || code == OP_MPROTECT;
            int touches = code == OP_ACCESS && tmpl >= 0 && npages > 0;
            if ((changes && first < 0)
                    || (touches && (first < 0 || first + npages > m->tmpl_pages[tmpl]))) {
                PyErr_Format(PyExc_ValueError, "task %zd op %zd: pages %lld+%lld are outside "
                             "its mm", (Py_ssize_t)i, (Py_ssize_t)(op - &m->ops[nops]) / 4,
                             (long long)first, (long long)npages);
                return -1;
            }
        }
        nops += (size_t)j;
        /* Machine.__init__'s last loop: the task wakes at its start */
        insort(m, &m->timers[cpu], start);
        push(m, start, (int)cpu, EV_WAKE, (i64)i, 1);
    }
    return 0;
}

/* Machine.__init__ */
static int machine_init(struct machine *m, PyObject *args)
{
    PyObject *prof, *cstates, *virt, *knobs, *mm_pages, *tasks, *seed_obj;
    struct mm init_mm = { 0 };
    uint64_t seed;
    int c, a;
    if (!PyArg_ParseTuple(args, "OOOOOOO:run", &prof, &cstates, &virt, &knobs, &mm_pages,
                          &tasks, &seed_obj))
        return -1;
    if (!PyLong_Check(seed_obj)) {
        PyErr_Format(PyExc_TypeError, "seed must be an int, not %.100s",
                     Py_TYPE(seed_obj)->tp_name);
        return -1;
    }
    seed = PyLong_AsUnsignedLongLongMask(seed_obj);     /* seed & MASK64 */
    if (seed == (uint64_t)-1 && PyErr_Occurred())
        return -1;
    if (parse_profile(m, prof, cstates, virt) < 0 || parse_knobs(m, knobs) < 0)
        return -1;
    m->rng = stream_state(seed, STREAM_MACHINE);

    /* per-CPU state (cpu_tlbstate and friends) */
    m->core = xcalloc(m, m->ncpu, sizeof(int32_t));
    m->socket = xcalloc(m, m->ncpu, sizeof(int32_t));
    m->loaded_mm = xcalloc(m, m->ncpu, sizeof(int32_t));
    m->loaded_asid = xcalloc(m, m->ncpu, sizeof(int32_t));
    m->is_lazy = xcalloc(m, m->ncpu, 1);
    m->ctx_id = xcalloc(m, (size_t)m->ncpu * NR_HW_ASIDS, sizeof(i64));
    m->ctx_gen = xcalloc(m, (size_t)m->ncpu * NR_HW_ASIDS, sizeof(i64));
    m->next_asid = xcalloc(m, m->ncpu, sizeof(int32_t));
    m->cur = xcalloc(m, m->ncpu, sizeof(int32_t));
    m->active_mm = xcalloc(m, m->ncpu, sizeof(int32_t));
    m->lazy_ref = xcalloc(m, m->ncpu, 1);
    m->hazard = xcalloc(m, m->ncpu, sizeof(int32_t));
    m->cstate = xcalloc(m, m->ncpu, sizeof(int32_t));
    m->idle_since = xcalloc(m, m->ncpu, sizeof(i64));
    m->irqs_off_until = xcalloc(m, m->ncpu, sizeof(i64));
    m->irq_busy = xcalloc(m, m->ncpu, sizeof(i64));
    m->step_token = xcalloc(m, m->ncpu, sizeof(i64));
    m->step_at = xcalloc(m, m->ncpu, sizeof(i64));
    m->hung = xcalloc(m, m->ncpu, 1);
    m->hung_at = xcalloc(m, m->ncpu, sizeof(i64));
    m->runq = xcalloc(m, m->ncpu, sizeof *m->runq);
    m->timers = xcalloc(m, m->ncpu, sizeof *m->timers);
    m->pv_pending = xcalloc(m, m->ncpu, sizeof(i64));
    m->csdq = xcalloc(m, m->ncpu, sizeof *m->csdq);
    m->vwin = xcalloc(m, m->ncpu, sizeof *m->vwin);
    m->vrng = xcalloc(m, m->ncpu, sizeof(uint64_t));
    m->vlast = xcalloc(m, m->ncpu, sizeof(i64));
    m->vlast_set = xcalloc(m, m->ncpu, 1);
    m->hw = xcalloc(m, m->ncpu, sizeof *m->hw);
    m->tlb_epoch = xcalloc(m, (size_t)m->ncpu * NR_HW_ASIDS, sizeof(i64));
    m->psc_epoch = xcalloc(m, (size_t)m->ncpu * NR_HW_ASIDS, sizeof(i64));
    m->rings = xcalloc(m, (size_t)m->ncpu * RING, sizeof *m->rings);
    m->rpos = xcalloc(m, m->ncpu, 1);
    m->rlen = xcalloc(m, m->ncpu, 1);
    m->ipis_received = xcalloc(m, m->ncpu, sizeof(i64));
    m->seen = xcalloc(m, (size_t)m->ncpu * N_VKINDS, 1);
    m->targets = xcalloc(m, m->ncpu, sizeof(int32_t));
    m->ran = xcalloc(m, (size_t)m->nwords, sizeof(uint64_t));
    for (c = 0; c < m->ncpu; c++) {
        /* Linux enumeration: CPUs 0..cores-1 are the first thread of every
         * core, socket by socket; their SMT siblings follow (Profile.core_of) */
        m->core[c] = (int32_t)(c % m->cores);
        m->socket[c] = (int32_t)(m->core[c] / m->cores_per_socket);
        m->loaded_asid[c] = m->pcid ? INIT_ASID : 0;
        for (a = 0; a < NR_HW_ASIDS; a++)
            m->ctx_id[c * NR_HW_ASIDS + a] = -1;
        m->cur[c] = -1;               /* the idle task */
        m->cstate[c] = -1;            /* executing (C0) */
        m->step_at[c] = -1;
        m->pv_pending[c] = -1;
        if (m->virt)
            m->vrng[c] = stream_state(seed, STREAM_VCPU + (uint64_t)c);
    }

    /* init_mm */
    PUSH(m, m->mms, init_mm);
    m->mms.v[0].gen = 1, m->mms.v[0].count = 1, m->mms.v[0].users = 1;
    m->mms.v[0].line_owner[0] = m->mms.v[0].line_owner[1] = m->mms.v[0].line_owner[2] = -1;
    m->mms.v[0].mask = xcalloc(m, (size_t)m->nwords, sizeof(uint64_t));
    m->next_ctx = 1;

    return parse_tasks(m, mm_pages, tasks);
}

static void machine_free(struct machine *m)
{
    size_t i;
    int c;
    free(m->cs_exit), free(m->cs_residency), free(m->cs_flushed);
    free(m->core), free(m->socket), free(m->loaded_mm), free(m->loaded_asid);
    free(m->is_lazy), free(m->ctx_id), free(m->ctx_gen), free(m->next_asid), free(m->cur);
    free(m->active_mm), free(m->lazy_ref), free(m->hazard), free(m->cstate);
    free(m->idle_since), free(m->irqs_off_until), free(m->irq_busy), free(m->step_token);
    free(m->step_at), free(m->hung), free(m->hung_at), free(m->pv_pending), free(m->vrng);
    free(m->vlast), free(m->vlast_set), free(m->tlb_epoch), free(m->psc_epoch);
    free(m->rings), free(m->rpos), free(m->rlen), free(m->ipis_received), free(m->seen);
    free(m->targets), free(m->ran);
    for (c = 0; c < m->ncpu; c++) {
        if (m->runq)
            free(m->runq[c].v);
        if (m->timers)
            free(m->timers[c].v);
        if (m->csdq)
            free(m->csdq[c].v);
        if (m->vwin)
            free(m->vwin[c].v);
        if (m->hw)
            free(m->hw[c]);
    }
    free(m->runq), free(m->timers), free(m->csdq), free(m->vwin), free(m->hw);
    for (i = 0; i < m->mms.n; i++) {
        struct mm *M = &m->mms.v[i];
        i64 block;
        for (block = 0; M->blocks && block < (M->npages + BLOCK - 1) / BLOCK; block++)
            free(M->blocks[block]);
        free(M->blocks), free(M->tables), free(M->mask);
    }
    free(m->mms.v), free(m->returns.v);
    for (i = 0; i < m->tables.n; i++) {
        free(m->tables.v[i].cachers);
        free(m->tables.v[i].frees.v);
    }
    free(m->tables.v), free(m->table_pool.v);
    free(m->ops), free(m->task_off), free(m->task_len), free(m->task_tmpl), free(m->task_mm);
    free(m->task_pc), free(m->task_done), free(m->task_marks);
    free(m->tmpl_pages), free(m->tmpl_mm), free(m->tmpl_threads);
    free(m->flush_lat.v);
    for (i = 0; i < MAX_VIOLATIONS; i++)
        free(m->violations[i].trace);
    for (i = 0; i < m->calls.n; i++) {      /* live or not, slots keep their buffers */
        free(m->calls.v[i].snap.v);
        free(m->calls.v[i].tables.v);
        free(m->calls.v[i].targets.v);
    }
    free(m->calls.v), free(m->free_calls.v), free(m->heap.v);
    free(m->snap.v), free(m->freed_tables.v), free(m->taken.v), free(m->extra.v);
    free(m);
}

/* ----------------------------------------------------------- result */
static PyObject *int_list(const i64 *v, size_t n)
{
    PyObject *list = PyList_New((Py_ssize_t)n);
    size_t i;
    for (i = 0; list && i < n; i++) {
        PyObject *x = PyLong_FromLongLong(v[i]);
        if (!x) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, x);
    }
    return list;
}

static PyObject *marks_list(const struct machine *m)
{
    PyObject *list = PyList_New((Py_ssize_t)m->ntasks);
    size_t i;
    for (i = 0; list && i < m->ntasks; i++) {
        const i64 *mk = &m->task_marks[3 * i];
        PyObject *x = Py_BuildValue("(LLL)", (long long)mk[0], (long long)mk[1],
                                    (long long)mk[2]);
        if (!x) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, x);
    }
    return list;
}

static PyObject *trace_tuple(const struct violation *v)
{
    PyObject *trace = PyTuple_New((Py_ssize_t)v->ntrace);
    size_t i;
    for (i = 0; trace && i < v->ntrace; i++) {
        const struct rec *r = &v->trace[i];
        PyObject *x = Py_BuildValue("(LLLLL)", (long long)r->t, (long long)r->cpu,
                                    (long long)r->code, (long long)r->a, (long long)r->b);
        if (!x) {
            Py_CLEAR(trace);
            break;
        }
        PyTuple_SET_ITEM(trace, i, x);
    }
    return trace;
}

static PyObject *violations_list(const struct machine *m)
{
    PyObject *list = PyList_New((Py_ssize_t)m->nviolations);
    size_t i;
    for (i = 0; list && i < m->nviolations; i++) {
        const struct violation *v = &m->violations[i];
        PyObject *x = Py_BuildValue("(LLLLN)", (long long)v->kind, (long long)v->severity,
                                    (long long)v->cpu, (long long)v->time, trace_tuple(v));
        if (!x) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, x);
    }
    return list;
}

/* Machine.raw_result(); Py_BuildValue releases its "N" arguments on failure */
static PyObject *raw_result(const struct machine *m)
{
    size_t i, ndone = 0;
    i64 end = 0;
    int finished;
    for (i = 0; i < m->ntasks; i++) {
        if (m->task_done[i] >= 0) {
            end = ndone++ ? max64(end, m->task_done[i]) : m->task_done[i];
        }
    }
    finished = ndone == m->ntasks;
    if (!(finished && ndone))
        end = m->now;
    return Py_BuildValue(
        "{s:L,s:O,s:N,s:N,s:N,s:N,s:N,s:N,s:N}",
        "end", (long long)end,
        "finished", finished ? Py_True : Py_False,
        "counters", Py_BuildValue(
            "{s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L}",
            "ipis", (long long)m->n_ipis, "ipis_to_idle", (long long)m->n_ipis_to_idle,
            "ipis_to_lazy", (long long)m->n_ipis_to_lazy, "cr3_writes", (long long)m->n_cr3,
            "full_flushes", (long long)m->n_full_flushes, "invlpg", (long long)m->n_invlpg,
            "tlb_misses", (long long)m->n_tlb_misses,
            "atomic_contention", (long long)m->n_contention,
            "idle_wakeups", (long long)m->n_idle_wakeups, "ops", (long long)m->n_ops,
            "page_faults", (long long)m->n_faults, "spec_walks", (long long)m->n_spec_walks,
            "switch_mm_barriers", (long long)m->n_switch_mb),
        "flush_latency", int_list(m->flush_lat.v, m->flush_lat.n),
        "ipis_received", int_list(m->ipis_received, (size_t)m->ncpu),
        "marks", marks_list(m),
        "task_pc", int_list(m->task_pc, m->ntasks),
        "violation_counts", int_list(m->violation_counts, N_VKINDS),
        "violations", violations_list(m));
}

/* ---------------------------------------------------------- module */
/* setjmp() is in these two small functions, whose locals do not change
 * between setjmp() and a longjmp() */
static int init_or_oom(struct machine *m, PyObject *args)
{
    if (setjmp(m->oom)) {
        PyErr_NoMemory();
        return -1;
    }
    return machine_init(m, args);
}

static int loop_or_oom(struct machine *m)
{
    if (setjmp(m->oom))
        return -1;
    run_loop(m);
    return 0;
}

static PyObject *native_run(PyObject *module, PyObject *args)
{
    struct machine *m = calloc(1, sizeof *m);
    PyObject *result = NULL;
    int rc;
    (void)module;
    if (!m)
        return PyErr_NoMemory();
    if (init_or_oom(m, args) == 0) {
        Py_BEGIN_ALLOW_THREADS
        rc = loop_or_oom(m);
        Py_END_ALLOW_THREADS
        if (rc < 0)
            PyErr_NoMemory();
        else
            result = raw_result(m);
    }
    machine_free(m);
    return result;
}

PyDoc_STRVAR(run_doc,
"run(profile, cstates, virt, knobs, mm_pages, tasks, seed) -> dict\n\n"
"Machine(...).run() of engine/machine.py in C; use pytest_tlbperf.engine.native.run(),\n"
"which flattens a Profile, Knobs and Program into these tuples of ints.");

static PyMethodDef native_methods[] = {
    {"run", native_run, METH_VARARGS, run_doc},
    {NULL, NULL, 0, NULL},
};

static int add_abi(PyObject *module)
{
    /* The constants this file hard-codes, for tests to compare with
     * engine/abi.py, engine/prng.py and engine/machine.py, and its input
     * bounds. */
    static const struct { const char *name; long long value; } abi[] = {
        {"OP_ACCESS", OP_ACCESS}, {"OP_COMPUTE", OP_COMPUTE}, {"OP_MADVISE", OP_MADVISE},
        {"OP_MUNMAP", OP_MUNMAP}, {"OP_MPROTECT", OP_MPROTECT}, {"OP_SLEEP", OP_SLEEP},
        {"OP_YIELD", OP_YIELD}, {"OP_MIGRATE", OP_MIGRATE}, {"OP_MARK", OP_MARK},
        {"OP_MEMBARRIER", OP_MEMBARRIER}, {"OP_EXIT", OP_EXIT},
        {"EV_STEP", EV_STEP}, {"EV_WAKE", EV_WAKE}, {"EV_IPI", EV_IPI},
        {"EV_CALL_DONE", EV_CALL_DONE}, {"EV_SPEC_WALK", EV_SPEC_WALK},
        {"EV_WATCHDOG", EV_WATCHDOG},
        {"CALL_FLUSH", CALL_FLUSH}, {"CALL_UNLAZY", CALL_UNLAZY},
        {"CALL_MEMBARRIER", CALL_MEMBARRIER},
        {"CONT_STEP", CONT_STEP}, {"CONT_EXIT_MMAP", CONT_EXIT_MMAP},
        {"CONT_EXIT_FREE", CONT_EXIT_FREE},
        {"LAZY_STAY", LAZY_STAY}, {"LAZY_SWITCH_TO_INIT", LAZY_SWITCH_TO_INIT},
        {"CPUMASK_KEEP", CPUMASK_KEEP}, {"CPUMASK_CLEAR", CPUMASK_CLEAR},
        {"FLUSH_LAZY_NEVER", FLUSH_LAZY_NEVER}, {"FLUSH_LAZY_FREED", FLUSH_LAZY_FREED},
        {"FLUSH_LAZY_ALWAYS", FLUSH_LAZY_ALWAYS},
        {"LOCAL_BEFORE_REMOTE", LOCAL_BEFORE_REMOTE}, {"LOCAL_CONCURRENT", LOCAL_CONCURRENT},
        {"WAIT_DONE", WAIT_DONE}, {"WAIT_ACK", WAIT_ACK},
        {"REF_REFCOUNT", REF_REFCOUNT}, {"REF_HAZARD", REF_HAZARD},
        {"REF_SHOOTDOWN", REF_SHOOTDOWN}, {"REF_NONE", REF_NONE},
        {"IDLE_LEAVE_FLUSHED", IDLE_LEAVE_FLUSHED}, {"IDLE_LEAVE_NEVER", IDLE_LEAVE_NEVER},
        {"BARRIER_IMPLICIT", BARRIER_IMPLICIT}, {"BARRIER_EXPLICIT", BARRIER_EXPLICIT},
        {"V_STALE_TLB", V_STALE_TLB}, {"V_FREED_TABLE_WALK", V_FREED_TABLE_WALK},
        {"V_LAZY_MM_UAF", V_LAZY_MM_UAF}, {"V_HANG", V_HANG},
        {"V_MEMBARRIER_ORDER", V_MEMBARRIER_ORDER},
        {"SEV_ERROR", SEV_ERROR}, {"SEV_SILENT", SEV_SILENT}, {"SEV_HANG", SEV_HANG},
        {"TR_SWITCH", TR_SWITCH}, {"TR_SWITCH_MM", TR_SWITCH_MM}, {"TR_LAZY", TR_LAZY},
        {"TR_CPUMASK_CLEAR", TR_CPUMASK_CLEAR}, {"TR_FLUSH", TR_FLUSH}, {"TR_IPI", TR_IPI},
        {"TR_IDLE", TR_IDLE}, {"TR_WAKE", TR_WAKE}, {"TR_PSC_FILL", TR_PSC_FILL},
        {"TR_TABLE_FREE", TR_TABLE_FREE}, {"TR_SKIP", TR_SKIP}, {"TR_MM_FREE", TR_MM_FREE},
        {"TR_LEAVE_MM", TR_LEAVE_MM}, {"TR_WALK", TR_WALK},
        {"TR_ACCESS_STALE", TR_ACCESS_STALE}, {"TR_HUNG", TR_HUNG},
        {"TR_PV_DEFER", TR_PV_DEFER}, {"TR_EXIT", TR_EXIT},
        {"STREAM_MACHINE", STREAM_MACHINE}, {"STREAM_VCPU", STREAM_VCPU},
        {"TLB_NR_DYN_ASIDS", TLB_NR_DYN_ASIDS}, {"INIT_ASID", INIT_ASID},
        {"NR_HW_ASIDS", NR_HW_ASIDS}, {"INIT_MM", INIT_MM},
        {"PAGES_PER_TABLE", PAGES_PER_TABLE}, {"TLB_FLUSH_ALL", TLB_FLUSH_ALL},
        {"RING", RING}, {"MAX_VIOLATIONS", MAX_VIOLATIONS},
        {"MAX_CPUS", MAX_CPUS}, {"MAX_VALUE", MAX_VALUE}, {"MAX_PAGES", MAX_PAGES},
        {"MAX_CEILING", MAX_CEILING},
    };
    PyObject *d = PyDict_New();
    size_t i;
    if (!d)
        return -1;
    for (i = 0; i < sizeof abi / sizeof abi[0]; i++) {
        PyObject *v = PyLong_FromLongLong(abi[i].value);
        if (!v || PyDict_SetItemString(d, abi[i].name, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(d);
            return -1;
        }
        Py_DECREF(v);
    }
    if (PyModule_AddObject(module, "ABI", d) < 0) {
        Py_DECREF(d);
        return -1;
    }
    return 0;
}

static int native_exec(PyObject *module)
{
    return add_abi(module);
}

static PyModuleDef_Slot native_slots[] = {
    {Py_mod_exec, native_exec},
    {0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "_native",
    "The native engine: engine/machine.py transcribed into C (see _native.c).",
    0, native_methods, native_slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void)
{
    return PyModuleDef_Init(&native_module);
}

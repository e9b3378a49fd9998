/*
 * hw.c -- the hardware the kernel drives: coherent cache lines (stores, RMWs
 * and loads booked on each line's timeline, with locality-favouring
 * arbitration), each CPU's TLB and paging-structure cache (Intel
 * SDM Vol. 3, 4.10), the MMU's page walk, the speculative walks a stale PSC
 * entry can start (the 2017 AMD hang), and the host preempting a guest's
 * vCPUs. Models no kernel file: this is what arch/x86/mm/tlb.c programs.
 */

#include "machine.h"

/* -- cache lines ---------------------------------------------------------
 *
 * A domain's CPUs are `smt` runs of consecutive numbers: thread j of core k
 * is CPU j * cores + k (Profile.core_of). So hw.py's `holders & mask_llc[c]`
 * and friends are bit counts over those runs. */

/* A kernel cache line CPUs contend for; returns its id. */
int new_line(struct machine *m)
{
    struct line zero = { 0 }, *L;
    size_t words = (size_t)m->nwords, tails = (size_t)(m->n_llc + m->n_socket);
    uint64_t *block;
    int id = (int)m->lines.n;
    PUSH(m, m->lines, zero);
    L = &m->lines.v[id];
    L->last = -1;
    /* counted in m->lines first, so machine_free() finds it if this fails */
    block = xcalloc(m, words + tails, sizeof(uint64_t));
    L = &m->lines.v[id];
    L->holders = block;
    L->tail_llc = (i64 *)(block + words);
    L->tail_socket = L->tail_llc + m->n_llc;
    return id;
}

/* The bits set in x. __builtin_popcountll() is a libgcc call unless the
 * build targets a CPU with POPCNT, which the baseline x86-64 is not. */
static inline int popcount(uint64_t x)
{
    x -= (x >> 1) & 0x5555555555555555ULL;
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (int)((x * 0x0101010101010101ULL) >> 56);
}

/* bits of h set in [lo, hi) */
static inline int bits_in(const uint64_t *h, i64 lo, i64 hi)
{
    i64 w, wlo = lo >> 6, whi = (hi - 1) >> 6;
    uint64_t first = ~(uint64_t)0 << (lo & 63), last = ~(uint64_t)0 >> (63 - ((hi - 1) & 63));
    int n;
    if (wlo == whi)
        return popcount(h[wlo] & first & last);
    n = popcount(h[wlo] & first);
    for (w = wlo + 1; w < whi; w++)
        n += popcount(h[w]);
    return n + popcount(h[whi] & last);
}

/* CPUs of c's core / LLC domain / socket in h (c included) */
static inline int in_core(const struct machine *m, int c, const uint64_t *h)
{
    i64 j, k = m->core[c];
    int n = 0;
    for (j = 0; j < m->smt; j++)
        n += test_bit(h, (int)(j * m->cores + k));
    return n;
}

static inline int in_domain(const struct machine *m, const uint64_t *h, i64 first, i64 size)
{
    i64 j;
    int n = 0;
    for (j = 0; j < m->smt; j++)
        n += bits_in(h, j * m->cores + first, j * m->cores + first + size);
    return n;
}

static inline int in_llc(const struct machine *m, int c, const uint64_t *h)
{
    return in_domain(m, h, m->llc[c] * m->cores_per_llc, m->cores_per_llc);
}

static inline int in_socket(const struct machine *m, int c, const uint64_t *h)
{
    return in_domain(m, h, m->socket[c] * m->cores_per_socket, m->cores_per_socket);
}

/* Who has a copy of a line at some time: a bitmap of n CPUs (bits is not
 * read when n <= 1), and the CPU when there is one. */
struct holders { const uint64_t *bits; int n, one; };

/* Distance level from c to the farthest holder other than c itself, -1 if
 * none (hw.py farthest(c, holders & ~(1 << c))); *others: how many. */
static int farthest(const struct machine *m, int c, const struct holders *H, int *others)
{
    int self, socket, llc;
    if (H->n <= 1) {                    /* most lines: one CPU has it exclusive */
        *others = H->n && H->one != c;
        return *others ? dist(m, c, H->one) : -1;
    }
    self = test_bit(H->bits, c);
    *others = H->n - self;
    if (!*others)
        return -1;
    socket = in_socket(m, c, H->bits) - self;
    if (*others > socket)
        return 3;
    llc = in_llc(m, c, H->bits) - self;
    if (socket > llc)
        return 2;
    return llc > in_core(m, c, H->bits) - self ? 1 : 0;
}

/* Distance level from c to the nearest holder; a line no cache holds comes
 * from memory, charged as a same-socket transfer (hw.py nearest()). */
static int nearest(const struct machine *m, int c, const struct holders *H)
{
    if (H->n <= 1)
        return H->n ? dist(m, c, H->one) : 2;
    if (in_core(m, c, H->bits))
        return 0;
    if (in_llc(m, c, H->bits))
        return 1;
    if (in_socket(m, c, H->bits))
        return 2;
    return 3;
}

/* The first of h[0..n) that ends after x, or n. Holds do not overlap and
 * are kept in order, so their ends are sorted: hw.py's linear scans are a
 * bisection here when there are many (a line many CPUs load has many holds
 * booked ahead; most lines have none or one). */
static inline size_t first_ending_after(const struct hold *h, size_t n, i64 x)
{
    size_t lo = 0, hi = n;
    if (n <= 8) {
        while (lo < n && h[lo].end <= x)
            lo++;
        return lo;
    }
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (h[mid].end <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The holds of h[0..n) that started by x: they come before the first that
 * ends after x (i), and the one at i if it straddles x (holds do not
 * overlap, so no other can). */
static inline size_t started_by(const struct hold *h, size_t n, size_t i, i64 x)
{
    return i + (i < n && h[i].start <= x);
}

/* The standing state of a line: its holders bitmap with nheld and one */
static inline struct holders standing(const struct line *L)
{
    struct holders H = { L->holders, L->nheld, L->one };
    return H;
}

/* state = {x} (a store) or state | {x} (a load), on a line's standing state */
static inline void fold(const struct machine *m, struct line *L, int x, int exclusive)
{
    if (exclusive) {
        /* plain stores: a store after an RMW of the same word waits for it */
        if (L->nheld == 1)
            L->holders[L->one >> 6] = 0;
        else if (L->nheld)
            memset(L->holders, 0, (size_t)m->nwords * sizeof *L->holders);
        L->holders[x >> 6] = (uint64_t)1 << (x & 63);
        L->nheld = 1;
        L->one = x;
    } else if (!test_bit(L->holders, x)) {
        set_bit(L->holders, x);
        if (!L->nheld++)
            L->one = x;
    }
}

/* Holds that ended before now can delay nothing any more: fold them into
 * the line's standing state (from the last store among them on). */
static inline void forget_holds(const struct machine *m, struct line *L)
{
    const struct hold *h = L->v + L->head;
    size_t k = first_ending_after(h, L->n, m->now), j, e;
    if (k) {
        for (e = k; e > 0 && !h[e - 1].exclusive; e--)
            ;
        for (j = e ? e - 1 : 0; j < k; j++)
            fold(m, L, h[j].cpu, h[j].exclusive);
        L->last = h[k - 1].cpu;
        L->head += k;
        L->n -= k;
        if (!L->n)
            L->head = 0;
    }
}

/* Who has a copy at time t (hw.py holders_at(), after forget_holds()): the
 * standing state, then every booked hold that started by t (h[0..k)), in
 * order -- that is, the last store among them and the loads after it. A
 * state made of several CPUs is built in m->held. */
static struct holders holders_at(struct machine *m, const struct line *L, size_t k)
{
    const struct hold *h = L->v + L->head;
    struct holders H;
    size_t e, j;
    if (!k)
        return standing(L);
    for (e = k; e > 0 && !h[e - 1].exclusive; e--)
        ;
    if (e == k) {                       /* a store last: it alone has the line */
        H.bits = NULL, H.n = 1, H.one = h[k - 1].cpu;
        return H;
    }
    if (e) {
        memset(m->held, 0, (size_t)m->nwords * sizeof *m->held);
        set_bit(m->held, h[e - 1].cpu);
        H.n = 1, H.one = h[e - 1].cpu;
    } else {
        memcpy(m->held, L->holders, (size_t)m->nwords * sizeof *m->held);
        H.n = L->nheld, H.one = L->one;
    }
    for (j = e; j < k; j++) {
        if (!test_bit(m->held, h[j].cpu)) {
            set_bit(m->held, h[j].cpu);
            if (!H.n++)
                H.one = h[j].cpu;
        }
    }
    H.bits = m->held;
    return H;
}

/* Does c have a copy of the line at t? hw.py read_line()'s test of
 * holders_at(line, t): the last of the holds that started by t either is
 * c's or a store by another, or none is and the standing state says. */
int holds_copy(struct machine *m, int c, int id, i64 t)
{
    struct line *L = &m->lines.v[id];
    const struct hold *h;
    size_t k;
    forget_holds(m, L);
    h = L->v + L->head;
    k = started_by(h, L->n, first_ending_after(h, L->n, t), t);
    while (k--) {
        if (h[k].cpu == c)
            return 1;
        if (h[k].exclusive)
            return 0;
    }
    return test_bit(L->holders, c);
}

/* Book a miss on a line, from time t; returns when c has the line. See
 * hw.py book(): the line is a timeline of holds booked out of order, a miss
 * takes the first gap at or after t that fits it; its transfer is the
 * farthest copy a store invalidates (plus one invalidation per further
 * copy) or the nearest copy a load takes, and behind others the nearest CPU
 * that holds or waits for the line (the arbitration rule, through the
 * per-LLC and per-socket tails). A hold records whether it was a store: the
 * holders at a time are read off the timeline (holders_at). */
i64 book(struct machine *m, int c, int id, i64 t, i64 op, int exclusive)
{
    struct line *L = &m->lines.v[id];
    struct holders H;
    struct hold *h;
    size_t i, n;
    i64 start = t, end, extra;
    int prev, level, others;
    forget_holds(m, L);
    h = L->v + L->head;
    n = L->n;
    if (!n) {
        /* no hold booked (most lines): the standing state, no wait */
        H = standing(L);
        extra = 0;
        if (exclusive) {
            level = farthest(m, c, &H, &others);
            if (level < 0 && L->last < 0)
                level = 2;
            else if (others > 1)
                extra = m->c_inval * (others - 1);
        } else {
            level = nearest(m, c, &H);
        }
        end = t + (level >= 0 ? m->xfer[level] : 0) + extra + op;
        if (!L->cap)
            L->v = grow(m, L->v, &L->cap, sizeof *L->v);
        i = 0;
        h = L->v;
        L->head = 0;
        goto append;
    }
    i = first_ending_after(h, n, t);
    H = holders_at(m, L, started_by(h, n, i, t));
    prev = i ? h[i - 1].cpu : L->last;
    for (;;) {
        extra = 0;
        if (start == t) {
            if (exclusive) {
                level = farthest(m, c, &H, &others);
                if (level < 0 && prev < 0)
                    level = 2;                  /* first touch: from memory */
                else if (others > 1)
                    /* every further copy is one more invalidation to send
                     * and acknowledge */
                    extra = m->c_inval * (others - 1);
            } else {
                level = nearest(m, c, &H);
            }
        } else {
            level = dist(m, prev, c);
            if (level > 1 && L->tail_llc[m->llc[c]] > t)
                level = 1;
            if (level > 2 && L->tail_socket[m->socket[c]] > t)
                level = 2;
        }
        end = start + (level >= 0 ? m->xfer[level] : 0) + extra + op;
        if (i == n || end <= h[i].start)
            break;
        start = max64(start, h[i].end);        /* overlaps a hold: wait for it */
        prev = h[i].cpu;
        i++;
    }
    /* book.insert(i, (start, end, c, exclusive)) */
    if (L->head + n == L->cap) {
        if (L->head) {
            memmove(L->v, L->v + L->head, n * sizeof *L->v);
            L->head = 0;
        } else {
            L->v = grow(m, L->v, &L->cap, sizeof *L->v);
        }
    }
    h = L->v + L->head;
    memmove(h + i + 1, h + i, (n - i) * sizeof *h);
append:
    h[i].start = start, h[i].end = end, h[i].cpu = c, h[i].exclusive = exclusive;
    L->n = n + 1;
    m->n_contention += end - t - op;
    if (L->tail_llc[m->llc[c]] < end)
        L->tail_llc[m->llc[c]] = end;
    if (L->tail_socket[m->socket[c]] < end)
        L->tail_socket[m->socket[c]] = end;
    return end;
}

/* Independent loads of many lines (a scan over per-CPU slots): the core
 * keeps up to LOAD_PARALLELISM misses in flight, so the scan takes its
 * longest load or its total divided by that, whichever is more. */
i64 read_lines(struct machine *m, int c, const int32_t *lines, size_t n, i64 t)
{
    i64 longest = 0, total = 0, cost;
    size_t i;
    for (i = 0; i < n; i++) {
        cost = read_line(m, c, lines[i], t) - t;
        total += cost;
        if (cost > longest)
            longest = cost;
    }
    /* -(-total // LOAD_PARALLELISM): total >= 0 */
    return t + max64(longest, (total + LOAD_PARALLELISM - 1) / LOAD_PARALLELISM);
}

void flush_asid(struct machine *m, int c, int asid)
{
    m->tlb_epoch[EPOCH(m, c, asid)] += 1;
    m->psc_epoch[EPOCH(m, c, asid)] += 1;
}

/* hw.py flushes every ASID the run may hand out; the global ones not handed
 * out yet (gasid_next and above) have no TLB or PSC entry anywhere, and an
 * entry takes its ASID's epoch when it is filled, so their epochs are never
 * compared with anything: they are left alone. */
void flush_everything(struct machine *m, int c)
{
    i64 *tlb = &m->tlb_epoch[EPOCH(m, c, 0)], *psc = &m->psc_epoch[EPOCH(m, c, 0)], asid;
    for (asid = 0; asid < m->gasid_next; asid++) {
        tlb[asid] += 1;
        psc[asid] += 1;
    }
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

/* tlb_lookup() is static inline in machine.h: access_pages() calls it for every page. */

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

void invlpg(struct machine *m, int c, int asid, i64 page)
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
    h->psc_ep[slot] = m->psc_epoch[EPOCH(m, c, key >> 32)];
    m->serial += 1;
    h->psc_serial[slot] = m->serial;
    h->psc_mm[slot] = T->mm;
    h->psc_at[slot] = m->now;
    set_bit(T->cachers, c);
    ring(m, c, TR_PSC_FILL, table, T->mm);
}

/* Does this PSC entry, in the ASID CR3 holds now, point at a freed table? */
int psc_stale(const struct machine *m, int c, i64 slot)
{
    const struct hw *h = m->hw[c];
    i64 key = h->psc_key[slot], asid;
    if (key < 0)
        return 0;
    asid = key >> 32;
    return asid == m->loaded_asid[c]
        && h->psc_ep[slot] == m->psc_epoch[EPOCH(m, c, asid)]
        && h->psc_gen[slot] != m->tables.v[h->psc_table[slot]].gen;
}

void arm_walk(struct machine *m, int c, i64 slot)
{
    i64 delay = 1 + below(&m->rng, m->walk_span);
    push(m, m->now + delay, c, EV_SPEC_WALK, slot, m->hw[c]->psc_serial[slot]);
}

/* CPU c executes with CR3 on its loaded ASID: every stale PSC entry of that
 * ASID is a speculative walk waiting to happen. */
void arm_walks(struct machine *m, int c)
{
    i64 slot;
    if (!m->hw[c])
        return;
    for (slot = 0; slot < m->psc_n; slot++)
        if (psc_stale(m, c, slot))
            arm_walk(m, c, slot);
}

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
i64 preempted_until(struct machine *m, int c, i64 t)
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
i64 stretch(struct machine *m, int c, i64 start, i64 end)
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

void ev_spec_walk(struct machine *m, int c, i64 slot, i64 serial)
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

i64 page_walk(struct machine *m, int c, int mm, int asid, i64 page, i64 flags, i64 t)
{
    i64 region = page / PAGES_PER_TABLE, pkey = ((i64)asid << 32) | region;
    i64 slot = psc_lookup(m, c, pkey);
    int hit = slot >= 0 && m->hw[c]->psc_ep[slot] == m->psc_epoch[EPOCH(m, c, asid)];
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
        t = mmap_lock(m, c, mm, t);
        t += flags & 2 ? m->c_fault_file : m->c_fault;
        t = mmap_lock(m, c, mm, t);
        if (flags & 1 && !(flags & 4) && m->c_lru_lock)
            /* a write fault allocates a folio (anonymous, or the COW copy of a
             * private file page); a shared file page is already cached */
            t = lru_cache_add(m, c, mm, page, t);
    }
    tlb_fill(m, c, ((i64)asid << 32) | page, pg->ver, m->tlb_epoch[EPOCH(m, c, asid)]);
    return t;
}

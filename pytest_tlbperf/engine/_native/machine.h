/*
 * machine.h -- the native engine of pytest-tlbperf (DESIGN §3.7): what every
 * file of it shares.
 *
 * pytest_tlbperf/engine/machine.py is the definition of the model. The files
 * of this folder are its transcription into C99: the same functions under
 * the same (kernel) names, with the same arithmetic, so that a reviewer can
 * hold the two side by side. They are laid out by the kernel file each part
 * models, like the Python engine (DESIGN §2):
 *
 *   core.c    the event core: containers, the event heap, the run loop and
 *             the measured window
 *   hw.c      the hardware: cache lines (booked holds, arbitration), TLB,
 *             paging-structure cache, the MMU's page walk, speculative
 *             walks, vCPU preemption by the host
 *   tlb.c     arch/x86/mm/tlb.c
 *   smp.c     kernel/smp.c: cross-calls, call_single_queue, the IPI handler,
 *             the APIC's ICR writes
 *   sched.c   kernel/sched/core.c, kernel/exit.c, kernel/sched/membarrier.c,
 *             pipes and try_to_wake_up
 *   idle.c    kernel/sched/idle.c and the menu-like cpuidle governor
 *   mm.c      mm/ and kernel/fork.c: mm_struct, page tables, PTE changes,
 *             mmu_gather's table freeing, the lazy-mm teardowns
 *   kvm.c     arch/x86/kernel/kvm.c: the paravirtual TLB flush
 *   task.c    the workload: the interpreter of a task's ops
 *   oracle.c  the correctness oracle and its trace rings
 *   module.c  the CPython binding: run(), its input checks and its result
 *
 * Anything that differs from machine.py is a bug here, and
 * tests/test_native_differential.py exists to find it.
 *
 * Where the C differs structurally from the Python, and why:
 * - Python dicts become scans. The TLB map `key -> slot` is a scan of the
 *   key's set (key -1 = empty way); the PSC map a scan of the psc_entries
 *   slots. A key lives in at most one slot, so a scan finds what the dict
 *   held.
 * - Integer bitmaps (mm_cpumask, the CPUs caching a page-table page, a
 *   cache line's holders, a task's affinity) are arrays of uint64_t words,
 *   walked lowest CPU first as `mask & -mask` is. hw.py's per-CPU topology
 *   masks (mask_core, mask_llc, mask_socket) are not built: a domain's CPUs
 *   are `smt` runs of consecutive numbers (Profile.core_of), so a test
 *   against one counts the bits of those runs (O(n) memory, not O(n^2)).
 * - A CPU's TLB and paging-structure cache are allocated at its first fill
 *   (hw_of); until then they are empty, which is what a lookup finds. So a
 *   1024-CPU machine costs what the CPUs that run something cost. Likewise
 *   an mm's per-page state (mm_present, mm_ver, mm_ret, mm_ret_at) lives in
 *   blocks of BLOCK pages allocated at the first fault in them: a page of a
 *   missing block is not present, at version 0, as machine.py starts it.
 *   A sender's csd_unlock row is made at its first cross-call, as in
 *   smp.py, and a per-CPU cache line at its first use (cpu_line), as in
 *   hw.py. The per-CPU arrays of the machine are carved from one block.
 * - A cache line's booked holds are an array with a head index: holds that
 *   ended before now are folded into the standing state and dropped from
 *   the front (forget_holds), a hold is inserted where it fits, as
 *   `list.insert` does. The holds are in time order and do not overlap, so
 *   hw.py's scans for "the first that ends after t" are bisections here,
 *   and holders_at() replays only the last store and the loads after it.
 * - A task's ops may come packed as int64 bytes (native.run() packs each
 *   program once); they are checked word by word either way.
 * - Scans machine.py makes over every CPU for the ones that run or
 *   reference an mm (oracle_mm_freed, membarrier) walk m->ran instead, the
 *   bitmap of CPUs that ever switched to a task, in the same ascending
 *   order: a CPU that never did has no task and only init_mm, and matches
 *   nothing.
 * - hw.py keeps an epoch per CPU for every hardware ASID and every global
 *   ASID the run may hand out, and flush_everything() bumps them all; here
 *   it stops at the next global ASID to be handed out (gasid_next), and a
 *   broadcast invalidation skips CPUs that never filled a TLB or PSC. An
 *   epoch is only compared with entries filled under it, and neither an
 *   unassigned ASID nor such a CPU has any, so the skipped bumps change
 *   nothing a run can observe (the differential tests compare every result).
 * - tlb.py's broadcasts in flight (bcasts, keyed by an id that only grows)
 *   live in slots reused through a free list; an EV_BROADCAST names its slot.
 *   mm.py's per-CPU lru_add batches are at most FOLIO_BATCH entries, made
 *   at a CPU's first lru_cache_add(). Zapped pages are released from the LRU
 *   (lru_release) as they are zapped rather than from a list afterwards: the
 *   count is the same, as nothing between the two reads the flags.
 * - `calls` holds only the cross-calls in flight, in slots reused through a
 *   free list; a watchdog event names its slot and the call's id, so one for
 *   a call that has completed finds another id (machine.py: calls.get(cid)
 *   is None). ev_call_done() frees the slot after the continuation rather
 *   than before: nothing in between can look a call up by its id.
 * - Lists one call hands on to the next (the tables a flush frees, the CPUs
 *   a hazard-pointer teardown still has to retire) are moved, not shared:
 *   the vectors are swapped between the slots.
 * - menu's variance is computed in unsigned 128-bit integers: Python's ints
 *   do not overflow, and (d - avg)^2 of long idle periods exceeds 64 bits.
 * - Every allocation goes through grow()/xcalloc(), which longjmp() back to
 *   run() on failure. Everything allocated is reachable
 *   from `struct machine` at all times, so machine_free() releases it on
 *   every path and run() raises MemoryError.
 * - Python values cross the boundary only in run(): parse_*() before the
 *   loop (bad types raise TypeError, bad values ValueError) and raw_result()
 *   after it. The loop itself runs without the GIL, taking it only to let
 *   Python handle signals (Ctrl-C; stop_requested()). Only module.c
 *   includes Python.h.
 *
 * The functions one file calls in another are declared below. Small helpers
 * on the hot path are static inline here, so that the split into files costs
 * no speed.
 */

#ifndef TLBPERF_MACHINE_H
#define TLBPERF_MACHINE_H

#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if !defined(__SIZEOF_INT128__)
#error "the native engine needs a compiler with 128-bit integers (idle.c's variance)"
#endif

/* Nothing the engine files share leaves the shared object: only
 * PyInit__native (module.c) is exported. So the names cannot collide with a
 * symbol of the interpreter or another extension, and the compiler may
 * inline across them as freely as across static functions. */
#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

typedef int64_t i64;
typedef unsigned __int128 u128;

/* --- engine/abi.py ------------------------------------------------------- */
enum { OP_ACCESS = 1, OP_COMPUTE, OP_MADVISE, OP_MUNMAP, OP_MPROTECT, OP_SLEEP, OP_YIELD,
       OP_MIGRATE, OP_MARK, OP_MEMBARRIER, OP_EXIT, OP_BLOCK, OP_WAKE, OP_LOOP, OP_RECLAIM };
enum { EV_STEP = 1, EV_WAKE, EV_IPI, EV_CALL_DONE, EV_SPEC_WALK, EV_WATCHDOG, EV_WINDOW,
       EV_CSD, EV_BROADCAST, EV_QUEUE, EV_SEND };
enum { CALL_FLUSH = 1, CALL_UNLAZY, CALL_MEMBARRIER, CALL_CHECK, CALL_SYNC };
enum { CONT_STEP = 1, CONT_EXIT_MMAP, CONT_EXIT_FREE, CONT_HAZPTR, CONT_TABLE_SYNC };
enum { LAZY_STAY, LAZY_SWITCH_TO_INIT };
enum { CPUMASK_KEEP, CPUMASK_CLEAR };
enum { FLUSH_LAZY_NEVER, FLUSH_LAZY_FREED, FLUSH_LAZY_ALWAYS };
enum { LOCAL_BEFORE_REMOTE, LOCAL_CONCURRENT };
enum { WAIT_DONE, WAIT_ACK };
enum { REF_REFCOUNT, REF_HAZARD, REF_SHOOTDOWN, REF_NONE };
enum { IDLE_LEAVE_FLUSHED, IDLE_LEAVE_NEVER };
enum { BARRIER_IMPLICIT, BARRIER_EXPLICIT };
enum { READ_GEN_ALWAYS, READ_GEN_WHEN_NEEDED };
enum { INIT_ASID_DYNAMIC, INIT_ASID_DEDICATED };
enum { PTI_AUTO, PTI_ON, PTI_OFF };
enum { SCAN_MM_CPUMASK, SCAN_ALL_CPUS };
enum { RELEASE_HANDOFF, RELEASE_SYNC_IPI };
enum { MASK_EAGER, MASK_LAZY, MASK_LAZY_UNTRIMMED };
enum { BROADCAST_NONE, BROADCAST_INVLPGB, BROADCAST_RAR };
enum { TLBSYNC_BEFORE_RETURN, TLBSYNC_SKIP };
enum { LRU_DRAIN_ON_ZAP, LRU_DRAIN_BATCH_FULL };
enum { TABLE_FREE_AFTER_FLUSH, TABLE_FREE_RCU };
enum { V_STALE_TLB, V_FREED_TABLE_WALK, V_LAZY_MM_UAF, V_HANG, V_MEMBARRIER_ORDER, N_VKINDS };
enum { SEV_ERROR, SEV_SILENT, SEV_HANG };
enum { TR_SWITCH = 1, TR_SWITCH_MM, TR_LAZY, TR_CPUMASK_CLEAR, TR_FLUSH, TR_IPI, TR_IDLE,
       TR_WAKE, TR_PSC_FILL, TR_TABLE_FREE, TR_SKIP, TR_MM_FREE, TR_LEAVE_MM, TR_WALK,
       TR_ACCESS_STALE, TR_HUNG, TR_PV_DEFER, TR_EXIT, TR_BLOCK, TR_WAKEUP, TR_RESCHED,
       TR_BROADCAST, TR_GLOBAL_ASID, TR_TLBSYNC };

/* --- engine/prng.py ------------------------------------------------------ */
#define GOLDEN 0x9E3779B97F4A7C15ULL
#define STREAM_MACHINE 2
#define STREAM_VCPU 0x100

/* --- engine/core.py ------------------------------------------------------ */
#define TLB_NR_DYN_ASIDS 6
#define INIT_ASID TLB_NR_DYN_ASIDS
#define NR_HW_ASIDS (TLB_NR_DYN_ASIDS + 1)
#define INIT_MM 0
#define PAGES_PER_TABLE 512
#define TLB_FLUSH_ALL (-1)
#define RING 8
#define MAX_VIOLATIONS 64
/* engine/hw.py */
#define LOAD_PARALLELISM 10
/* engine/tlb.py */
#define GLOBAL_ASIDS 2039
#define GLOBAL_ASID_THRESHOLD 3
#define HZ 1000
/* engine/mm.py */
#define FOLIO_BATCH 31
/* engine/smp.py */
enum { APIC_CLUSTER, APIC_PHYSICAL, APIC_KVM_PV };
/* engine/sched.py: a CPU's hold on the mm it borrows, and EV_WAKE's b */
enum { BORROWED = 1, COUNTED = 2 };
enum { WAKE_ENQUEUE, WAKE_TIMER, WAKE_POLLED, WAKE_IPI };
/* engine/idle.py */
#define INTERVALS 8

/* core.counters(), in its order: raw_result's "counters" and the window's snapshot */
enum { C_IPIS, C_IPIS_TO_IDLE, C_IPIS_TO_LAZY, C_CR3_WRITES, C_FULL_FLUSHES, C_INVLPG,
       C_TLB_MISSES, C_ATOMIC_CONTENTION, C_IDLE_WAKEUPS, C_OPS, C_PAGE_FAULTS,
       C_SPEC_WALKS, C_SWITCH_MM_BARRIERS, C_RESCHED_IPIS, C_ICR_WRITES, C_INVPCID,
       C_INVLPGB, C_RAR_REQUESTS, C_FLUSH_CYCLES, C_LRU_LOCKS, N_COUNTERS };

/* Input bounds (ValueError beyond them): they keep every sum of times and
 * costs far inside int64 and every page number inside the 32 bits of a
 * TLB key's page half. machine.py has no bounds (Python ints). */
#define MAX_CPUS (1 << 16)
#define MAX_VALUE ((i64)1 << 44)       /* any time, cost or op argument, in cycles */
#define MAX_PAGES (((i64)1 << 31) - 1)
#define MAX_CEILING ((i64)1 << 62)

/* run_loop() asks the binding whether to stop (Ctrl-C) every POLL_EVERY
 * events, a power of two. Measured, 1024 events take 0.06-1.2 ms of CPU
 * (median) and at most 10 ms, also on 1024 CPUs with events that touch
 * every CPU (membarrier and lazy-TLB storms): Ctrl-C is answered well within
 * 100 ms, and the poll costs less than the noise of tests/bench (< 1%). */
#define POLL_EVERY ((uint64_t)1 << 10)

/* ------------------------------------------------------------ containers */
struct rec { i64 t, cpu, code, a, b; };           /* a trace record */
struct event { i64 t; uint64_t seq; i64 a, b; int32_t cpu, ev; };
struct win { i64 start, end; };                   /* a vCPU preemption window */
struct page_ver { i64 page, ver; };               /* a flush's snapshot entry */
struct table_free { i64 t; int32_t cpu, mm; };    /* table_frees[table][g] */
struct hold { i64 start, end; int32_t cpu, exclusive; };  /* a booked hold of a line */

struct i32vec { int32_t *v; size_t n, cap; };
struct i64vec { i64 *v; size_t n, cap; };
struct recvec { struct rec *v; size_t n, cap; };
struct evheap { struct event *v; size_t n, cap; };
struct snapvec { struct page_ver *v; size_t n, cap; };
struct freevec { struct table_free *v; size_t n, cap; };
/* deques (collections.deque): live elements are v[head .. head+n) */
struct i32deque { int32_t *v; size_t head, n, cap; };
struct windeque { struct win *v; size_t head, n, cap; };

/* One contended kernel cache line (hw.py line_*): the holds booked on it,
 * oldest first, in v[head .. head+n); the holder before the first of them;
 * the CPUs whose caches held a copy after the holds that are over (nheld of
 * them; the booked holds tell the rest, see holders_at()); and per LLC
 * domain and per socket the end of the last hold taken from there. */
struct line {
    struct hold *v;
    size_t head, n, cap;
    int32_t last, nheld, one;     /* one: the holder, when nheld == 1 */
    uint64_t *holders;            /* nwords words, then the tails: */
    i64 *tail_llc, *tail_socket;  /* n_llc and n_socket of them, in the same block */
};
struct linevec { struct line *v; size_t n, cap; };

struct hw {        /* one CPU's TLB and paging-structure cache (hw.py tlb_*, psc_*) */
    i64 *tlb_key, *tlb_ver, *tlb_ep, *tlb_rr;
    i64 *psc_key, *psc_table, *psc_gen, *psc_ep, *psc_serial, *psc_mm, *psc_at;
    i64 psc_rr;
};

/* One page of an mm: mm_present, mm_ver, mm_ret (the newest version whose
 * flush returned), mm_ret_at (when, and to which initiator) and mm_lru
 * (its folio is on the LRU). */
struct page {
    i64 ver, ret, ret_t;
    int32_t ret_cpu;
    uint8_t present, lru;
};
#define BLOCK 64          /* pages per lazily allocated block */

struct mm {        /* one mm_struct: mm.py's mm_* lists at one index */
    i64 ctx, gen, count, users;
    i64 npages, nregions;
    struct page **blocks;                    /* npages / BLOCK, rounded up */
    int32_t *tables;
    uint64_t *mask;                          /* mm_cpumask */
    int32_t line;           /* mm_lines: mm_count, mm_cpumask, tlb_gen, mmap_lock */
    i64 gasid, transition, next_trim;        /* context.global_asid, asid_transition,
                                                next_trim_cpumask (jiffies) */
};
struct mmvec { struct mm *v; size_t n, cap; };

struct table {     /* one page-table page of the pool */
    i64 gen;
    int32_t mm;
    uint64_t *cachers;                       /* CPUs whose PSC may hold it */
    struct freevec frees;
};
struct tablevec { struct table *v; size_t n, cap; };

struct call {      /* smp.py Call */
    i64 id;        /* cid */
    int kind, cont, then, live;
    int32_t initiator, mm, task;
    i64 t0, start, npages, new_gen;
    int freed, wait_ack, watchdog;
    struct snapvec snap;
    struct i32vec tables;
    struct i32vec rest;      /* hazptr teardown: the CPUs still to retire */
    i64 pending, done_at, local_done;
    struct i32vec targets;   /* CPUs queued on, in ascending order (smp_call_function_many) */
    int any_mm;              /* a batched flush (reclaim): info->mm is NULL */
    int consider;            /* consider_global_asid() once the IPIs are done */
    int unlock;              /* mmap_read_unlock() once the flush returned */
    i64 irq0;                /* the initiator's interrupt time when it began */
    struct i32vec need;      /* smp.py ipi_need: targets whose queue it found empty */
    i64 send_t;              /* when its queueing loop ended (EV_SEND's ICR writes start) */
};
struct callvec { struct call *v; size_t n, cap; };

/* mm.py rcu_pending: tables waiting for a grace period */
struct rcu_batch { i64 since; int32_t by; struct i32vec tables; };
struct rcudeque { struct rcu_batch *v; size_t head, n, cap; };

struct violation { i64 kind, severity, cpu, time; struct rec *trace; size_t ntrace; };

/* tlb.py bcasts[bid]: a broadcast invalidation in flight (INVLPGB: asid -1
 * is every PCID), and for RAR the call whose targets it acks and how many
 * targets it has still to reach. Kept in slots reused through a free list:
 * an EV_BROADCAST names its slot. */
struct bcast { i64 asid, start, npages, left; int32_t slot; };
struct bcastvec { struct bcast *v; size_t n, cap; };

/* mm.py lru_batch[c]: a CPU's lru_add folio_batch of (mm, page, version) */
struct lru_entry { i64 page, ver; int32_t mm; };
struct lru_batch { size_t n; struct lru_entry v[FOLIO_BATCH]; };

struct machine {
    jmp_buf oom;

    /* profile (already in cycles) */
    int ncpu, nwords, pcid, invpcid, pti, apic_mode;
    i64 smt, cores, cores_per_llc, cores_per_socket, n_llc, n_socket, us, slice;
    i64 c_syscall, c_access, c_walk, c_walk_psc, c_fault, c_fault_file, c_zap, c_pte,
        c_invlpg, c_invpcid, c_full_flush, c_cr3, c_ctxsw, c_irq, c_flush_func, c_csd,
        c_csd_setup, c_ipi_send, c_atomic, c_mb, c_wakeup, c_pipe, c_pti, c_inval,
        c_lru_lock, c_invlpgb, c_tlbsync, c_rar;
    i64 jiffy, invlpgb_max_pages;   /* jiffy: clock_mhz * 1000 cycles (HZ=1000) */
    i64 ipi_lat[4], ipi_jitter, xfer[4];
    int ncstates;
    i64 *cs_residency, *cs_flushed, *cs_polling, *cs_wake_min, *cs_wake_max, *cs_exit_latency;
    i64 walk_span, walk_severity, watchdog, table_fail;
    i64 tlb_sets, tlb_set_mask, tlb_ways, psc_n;   /* tlb_set_mask: sets - 1, or -1 */
    int virt, pv;
    i64 v_preempt_percent, v_preempt;

    /* knobs */
    i64 k_lazy_tlb, k_lazy_cpumask, k_flush_lazy, k_flush_local, k_flush_wait, k_lazy_ref,
        k_idle_leave, k_ceiling, k_barrier, k_read_gen, k_init_asid, k_scan, k_release,
        k_cpumask, k_broadcast, k_tlbsync, k_lru, k_table_free;
    int dedicated;               /* tlb.py: init_mm has its own ASID */
    uint64_t rng;

    /* per-CPU state, flat arrays indexed by CPU ([c * NR_HW_ASIDS + asid] for
     * ctx_id and ctx_gen), all carved from one block (machine_init); the
     * epochs have one per hardware ASID and per global ASID the run may hand
     * out (n_asids, see EPOCH()), in their own blocks */
    void *percpu;
    int32_t *core, *llc, *socket, *apicid;
    int32_t *loaded_mm, *loaded_asid, *next_asid, *cur, *active_mm, *hazard, *drop_mm,
        *cstate, *wakes_pending;
    int32_t *lazy_line, *info_line, *csq_line, *hazard_line, *drop_line, *rq_line,
        *tlbstate_line, *rar_action_line;
    uint8_t *is_lazy, *lazy_ref, *hung, *vlast_set, *rpos, *rlen, *in_handler, *ipi_pending,
        *in_idle, *idle_pos;
    i64 *ctx_id, *ctx_gen, *tlb_epoch, *psc_epoch;
    i64 *idle_since, *idle_hist, *irqs_off_until, *irq_busy, *step_token, *step_at,
        *hung_at, *pv_pending, *vlast, *ipis_received, *run_since, *qs_at, *irq_cycles,
        *tlbsync_at, *irq_start;
    i64 n_asids;                 /* NR_HW_ASIDS + the mm templates */
    struct lru_batch **lru_batch;   /* made at a CPU's first lru_cache_add() */
    int32_t *lru_line;           /* per socket: the lruvec lru_lock */
    i64 **csd_unlock;            /* [sender][target], a row made at the sender's first call */
    uint64_t *vrng;
    struct i32deque *runq, *handling;
    struct i64vec *timers;
    struct i32vec *csdq;
    struct windeque *vwin;
    struct hw **hw;
    struct rec *rings;           /* RING records per CPU */
    uint8_t *seen;               /* (kind, cpu) already reported: seen[kind * ncpu + cpu] */
    uint64_t *ran;               /* CPUs that ever context-switched to a task */
    i64 serial;

    /* cache lines */
    struct linevec lines;

    /* global ASIDs and broadcast invalidations (tlb.py) */
    int32_t gasid_lock, rar_payload_line;
    i64 gasid_next, gasid_available, gasid_end;
    struct bcastvec bcasts;
    struct i32vec free_bcasts;

    /* pipes (sched.py chan_*) */
    size_t nchan;
    i64 *chan_tokens;
    struct i32deque *chan_waiters;
    int32_t *chan_line;

    /* mm_structs (index 0 is init_mm) and the page-table pool */
    struct mmvec mms;
    i64 next_ctx;
    struct tablevec tables;
    struct i32vec table_pool;
    struct rcudeque rcu_pending;

    /* tasks; ops of every task in one array; the per-task arrays and the
     * per-C-state ones are carved from one block each */
    void *pertask, *percstate;
    size_t ntasks, ntmpl;
    i64 *ops, *task_off, *task_len, *task_tmpl, *task_mm, *task_pc, *task_done, *task_marks;
    i64 *task_cpu, *task_nallowed;
    uint64_t **task_allowed;     /* affinity bitmaps, NULL: any CPU */
    i64 *tmpl_pages, *tmpl_mm, *tmpl_threads;

    /* the measured window (core.py stop, measuring, snapshot) */
    i64 warmup, window, stop, window_marks;
    int measuring, stopped, snapshot;
    i64 snap_counters[N_COUNTERS];
    i64 *snap_received;

    /* counters and samples */
    i64 n_ipis, n_ipis_to_idle, n_ipis_to_lazy, n_cr3, n_full_flushes, n_invlpg,
        n_tlb_misses, n_contention, n_idle_wakeups, n_ops, n_faults, n_spec_walks,
        n_switch_mb, n_resched_ipis, n_icr_writes, n_invpcid, n_invlpgb, n_rar,
        n_flush_cycles, n_lru_locks;
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
    void *py_thread;             /* module.c: the PyThreadState the loop runs without */
    int main_thread;             /* module.c: it runs Python's signal handlers */

    /* scratch, owned here so that a longjmp cannot leak it */
    int32_t *targets;            /* flush_tlb_mm_range's and the teardowns' target lists */
    int32_t *cpus;               /* lazy_mm_cpus() */
    int32_t *newly;              /* smp_call_function_many: queues that were empty */
    int32_t *group, *group_count, *group_start, *group_order;  /* apic_groups */
    int32_t *group_of;           /* APIC cluster -> group, -1: none (max_apicid/16 + 1) */
    int32_t *line_ids;           /* read_lines()'s lines (2 per CPU) */
    uint64_t *batch;             /* reclaim: the batch's mm_cpumask (nwords) */
    uint64_t *held;              /* holders_at()'s bitmap (nwords) */
    struct snapvec snap;         /* change_ptes -> flush_tlb_mm_range, swapped into the call */
    struct i32vec freed_tables;  /* likewise */
    struct recvec extra;         /* ev_watchdog's hung CPUs */
};

/* ------------------------------------------------ containers (core.c) */
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

/* every CPU x in a bitmap, lowest first, as machine.py's `mask & -mask`
 * loops; i and w are the caller's word index and remaining bits */
#define for_each_cpu(x, i, w, mask, nwords)                                     \
    for ((i) = 0; (i) < (nwords); (i)++)                                        \
        for ((w) = (mask)[i]; (w) && ((x) = (i) * 64 + __builtin_ctzll(w), 1);  \
             (w) &= (w) - 1)

static inline i64 max64(i64 a, i64 b) { return a > b ? a : b; }
static inline i64 min64(i64 a, i64 b) { return a < b ? a : b; }
static inline int test_bit(const uint64_t *mask, int c) { return (mask[c >> 6] >> (c & 63)) & 1; }
static inline void set_bit(uint64_t *mask, int c) { mask[c >> 6] |= (uint64_t)1 << (c & 63); }
static inline void clear_bit(uint64_t *mask, int c) { mask[c >> 6] &= ~((uint64_t)1 << (c & 63)); }

/* Python's a // b for b > 0 */
static inline i64 floordiv(i64 a, i64 b)
{
    i64 q = a / b;
    return q - (a % b != 0 && a < 0);
}

/* int.bit_length() of a non-negative value */
static inline int bit_length(i64 v)
{
    return v ? 64 - __builtin_clzll((unsigned long long)v) : 0;
}

/* ------------------------------------------------------------ prng.py */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline uint64_t stream_state(uint64_t seed, uint64_t stream)
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

/* -------------------------------------------------- hardware (hw.c) */
/* 0: same core, 1: same last-level cache, 2: same socket, 3: remote */
static inline int dist(const struct machine *m, int a, int b)
{
    if (m->core[a] == m->core[b])
        return 0;
    if (m->llc[a] == m->llc[b])
        return 1;
    return m->socket[a] == m->socket[b] ? 2 : 3;
}

/* a CPU's epoch of an ASID (hw.py tlb_epoch[c][asid], psc_epoch[c][asid]) */
#define EPOCH(m, c, asid) ((size_t)(c) * (size_t)(m)->n_asids + (size_t)(asid))

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

/* ------------------------------------- what one file calls in another */
/* core.c */
void *grow(struct machine *m, void *v, size_t *cap, size_t size);
void *xcalloc(struct machine *m, size_t n, size_t size);
void push(struct machine *m, i64 t, int cpu, int ev, i64 a, i64 b);
int run_loop(struct machine *m);
void schedule_step(struct machine *m, int c, i64 t);
void interrupted(struct machine *m, int c, i64 start, i64 end);
void counters(const struct machine *m, i64 *out);
/* hw.c */
int new_line(struct machine *m);
i64 book(struct machine *m, int c, int line, i64 t, i64 op, int exclusive);
int holds_copy(struct machine *m, int c, int line, i64 t);
i64 read_lines(struct machine *m, int c, const int32_t *lines, size_t n, i64 t);
void flush_asid(struct machine *m, int c, int asid);
void flush_everything(struct machine *m, int c);
void invlpg(struct machine *m, int c, int asid, i64 page);
int psc_stale(const struct machine *m, int c, i64 slot);
void arm_walk(struct machine *m, int c, i64 slot);
void arm_walks(struct machine *m, int c);
i64 preempted_until(struct machine *m, int c, i64 t);
i64 stretch(struct machine *m, int c, i64 start, i64 end);
void ev_spec_walk(struct machine *m, int c, i64 slot, i64 serial);
i64 page_walk(struct machine *m, int c, int mm, int asid, i64 page, i64 flags, i64 t);
/* tlb.c */
i64 switch_mm_irqs_off(struct machine *m, int c, int nxt, i64 t);
void force_init_mm(struct machine *m, int x);
i64 leave_mm(struct machine *m, int c, i64 t);
i64 enter_lazy_tlb(struct machine *m, int c, i64 t);
i64 flush_tlb_func(struct machine *m, int c, const struct call *call, i64 t);
int flush_tlb_mm_range(struct machine *m, int c, int mm, i64 start, i64 npages,
                       int freed, int task, int cont, i64 t);
i64 native_flush_tlb_multi(struct machine *m, int c, int slot, size_t ntargets, i64 t);
i64 consider_global_asid(struct machine *m, int c, i64 task, int mm, i64 t);
void mm_free_global_asid(struct machine *m, int mm);
i64 invlpgb(struct machine *m, int c, i64 asid, i64 start, i64 npages, i64 count, i64 t);
i64 tlbsync(struct machine *m, int c, int mm, i64 t);
i64 rar_send(struct machine *m, int c, int slot, i64 asid, i64 start, i64 npages,
             const int32_t *targets, size_t ntargets, i64 t);
i64 flush_pcid_local(struct machine *m, int c, i64 asid, i64 start, i64 npages, i64 t);
void ev_broadcast(struct machine *m, int c, i64 bid, i64 invlpgb);
/* smp.c */
int new_call(struct machine *m, int kind, int initiator, int mm, int task, int cont,
             i64 t0);
i64 smp_call_function_many(struct machine *m, int c, int slot, const int32_t *targets,
                           size_t ntargets, i64 t);
size_t apic_groups(struct machine *m, const int32_t *targets, size_t n);
i64 send_ipi_mask(struct machine *m, int c, const int32_t *targets, size_t n, i64 t, int ev,
                  i64 a);
void finish_sending(struct machine *m, int c, int slot, i64 t);
void ev_ipi(struct machine *m, int x, i64 delivered);
void ev_csd(struct machine *m, int x, int drain);
void ev_queue(struct machine *m, int x, int slot);
void ev_send(struct machine *m, int c, int slot, i64 id);
void arm_watchdog(struct machine *m, int slot);
void ev_call_done(struct machine *m, int c, i64 slot);
/* sched.c */
void schedule(struct machine *m, int c, i64 t);
i64 unlazy(struct machine *m, int x, int mm, i64 t);
i64 take_lazy_ref(struct machine *m, int c, int mm, i64 t, int counted);
i64 mmdrop_lazy(struct machine *m, int c, i64 t);
void insort(struct machine *m, struct i64vec *v, i64 x);
void ev_wake(struct machine *m, int c, i64 task, i64 how);
void pipe_read(struct machine *m, int c, int task, int ch, i64 t);
void pipe_write(struct machine *m, int c, int ch, i64 t);
int preempt_tick(struct machine *m, int c, int task);
void membarrier(struct machine *m, int c, int task, int mm, i64 t);
void do_exit(struct machine *m, int c, int task, i64 t);
void exit_done(struct machine *m, int c, int task, i64 t);
/* idle.c */
int polling(const struct machine *m, int x);
void idle_exit(struct machine *m, int c, i64 t);
i64 wake_from_idle(struct machine *m, int c, int by_ipi);
void idle_loop(struct machine *m, int c);
/* mm.c */
int exec_mm(struct machine *m, i64 tmpl);
int alloc_table(struct machine *m, int mm, i64 region);
void free_table(struct machine *m, int c, int table);
int tlb_remove_tables(struct machine *m, int c, int slot, i64 now);
void rcu_quiescent(struct machine *m, int c);
i64 mmgrab(struct machine *m, int c, int mm, i64 t);
i64 mmdrop(struct machine *m, int c, int mm, i64 t, int *last);
void free_mm(struct machine *m, int c, int mm);
void change_ptes(struct machine *m, int c, int task, int mm, i64 code, i64 first,
                 i64 npages, i64 free_tables, i64 t);
void exit_mmap(struct machine *m, int c, int task, int mm, i64 t);
void exit_mmap_done(struct machine *m, int c, int task, int mm, i64 t);
i64 lru_cache_add(struct machine *m, int c, int mm, i64 page, i64 t);
void reclaim(struct machine *m, int c, int task, i64 first, i64 npages, i64 tmpl, i64 t);
void hazptr_retire(struct machine *m, int c, int task, int mm, const int32_t *matches,
                   size_t n, i64 t);
/* kvm.c */
i64 kvm_flush_tlb_multi(struct machine *m, int c, int slot, size_t ntargets, i64 t);
/* task.c */
void ev_step(struct machine *m, int c);
/* module.c */
int stop_requested(struct machine *m);
/* oracle.c */
void ev_watchdog(struct machine *m, int c, i64 slot, i64 cid);
void report(struct machine *m, int kind, i64 severity, int c, const struct rec *extra,
            size_t nextra);
void freed_table_walk(struct machine *m, int c, i64 slot, int table);
void stale_tlb(struct machine *m, int c, int mm, i64 page);
void oracle_mm_freed(struct machine *m, int c, int mm);

/* --------------- hot functions of the files above, inline across files */
/* oracle.c */
/* rlen counts the records written, up to RING: machine.py's None slots */
static inline void ring(struct machine *m, int c, i64 code, i64 a, i64 b)
{
    struct rec r = { m->now, c, code, a, b };
    m->rings[(size_t)c * RING + m->rpos[c]] = r;
    m->rpos[c] = (uint8_t)((m->rpos[c] + 1) % RING);
    if (m->rlen[c] < RING)
        m->rlen[c]++;
}

/* hw.c */
/* x's line in a per-CPU array of lines, made at its first use */
static inline int cpu_line(struct machine *m, int32_t *lines, int x)
{
    if (lines[x] < 0)
        lines[x] = new_line(m);
    return lines[x];
}

/* A LOCK-prefixed RMW (op = c_atomic) or a store (op = 0) by CPU c at time
 * t: it needs the line exclusive, for a transfer plus op cycles. */
static inline i64 atomic(struct machine *m, int c, int line, i64 t, i64 op)
{
    return book(m, c, line, t, op, 1);
}

/* A plain load by c: free while c holds a copy at t; a miss brings the line
 * from the nearest copy and c shares it from then on. */
static inline i64 read_line(struct machine *m, int c, int line, i64 t)
{
    if (holds_copy(m, c, line, t))
        return t;
    return book(m, c, line, t, 0, 0);
}

/* tlb_map[c].get(key) */
static inline i64 tlb_lookup(const struct machine *m, int c, i64 key)
{
    const struct hw *h = m->hw[c];
    return h ? scan_set(m, h, tlb_set(m, key) * m->tlb_ways, key) : -1;
}

/* mm.c */
/* 0: mm_count, 1: mm_cpumask, 2: context.tlb_gen, 3: mmap_lock */
static inline int mm_line(const struct machine *m, int mm, int which)
{
    return m->mms.v[mm].line + which;
}

/* One atomic on the mmap_lock rwsem's count (mm.py mmap_lock()). */
static inline i64 mmap_lock(struct machine *m, int c, int mm, i64 t)
{
    return atomic(m, c, mm_line(m, mm, 3), t, m->c_atomic);
}

/* the page's state, allocating its block on first use */
static inline struct page *page_of(struct machine *m, struct mm *M, i64 page)
{
    struct page **block = &M->blocks[page / BLOCK];
    if (!*block)
        *block = xcalloc(m, BLOCK, sizeof **block);
    return &(*block)[page % BLOCK];
}

/* kvm.c */
/* VM entry after a PV-deferred flush: the host flushes first. */
static inline void vcpu_sync(struct machine *m, int c)
{
    if (m->pv_pending[c] >= 0 && m->now >= m->pv_pending[c]) {
        m->pv_pending[c] = -1;
        flush_everything(m, c);
        m->n_full_flushes += 1;
    }
}

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif /* TLBPERF_MACHINE_H */

"""Integer codes shared by the reference engine, the compiled workload
programs and (later) the native engine. Changing a value here changes the
model version.
"""

# --- workload ops: every op is four ints (code, a, b, c) -------------------
OP_ACCESS = 1      # a=first page, b=npages, c=flags (1 write, 2 file-backed): touch pages
OP_COMPUTE = 2     # a=cycles of user work
OP_MADVISE = 3     # a=first page, b=npages: madvise(MADV_DONTNEED), zap + flush
OP_MUNMAP = 4      # a=first page, b=npages, c=free page tables of whole 2M regions
OP_MPROTECT = 5    # a=first page, b=npages: change protection, flush
OP_SLEEP = 6       # a=cycles: block, wake up later on the same CPU
OP_YIELD = 7       # sched_yield(): let the next runnable task of this CPU run
OP_MIGRATE = 8     # a=cpu: move to another CPU (load balancing)
OP_MARK = 9        # iteration boundary for per-iteration metrics (madvise_ns)
OP_MEMBARRIER = 10  # membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)
OP_EXIT = 11       # do_exit(): exit_mm, and exit_mmap if this was the last user
OP_BLOCK = 12      # a=channel: read one token (a pipe byte), sleeping until one is there
OP_WAKE = 13       # a=channel: write one token; wake the first sleeper (try_to_wake_up)
OP_LOOP = 14       # a=op index: jump back (a task that runs until the measured window ends)
OP_RECLAIM = 15    # a=first page, b=npages, c=mm template: reclaim (kswapd) unmaps another mm's
                   # pages and flushes them as one batch (arch_tlbbatch_flush)

OP_NAMES = {
    OP_ACCESS: "access", OP_COMPUTE: "compute", OP_MADVISE: "madvise",
    OP_MUNMAP: "munmap", OP_MPROTECT: "mprotect", OP_SLEEP: "sleep",
    OP_YIELD: "yield", OP_MIGRATE: "migrate", OP_MARK: "mark",
    OP_MEMBARRIER: "membarrier", OP_EXIT: "exit", OP_BLOCK: "block", OP_WAKE: "wake",
    OP_LOOP: "loop", OP_RECLAIM: "reclaim",
}

# --- events -------------------------------------------------------------------
EV_STEP = 1        # a CPU runs the next op of its current task (or its idle loop)
EV_WAKE = 2        # a task becomes runnable on a CPU (spawn, wake-up, migration)
EV_IPI = 3         # a cross-call IPI reaches its target; b=1 once delivered
EV_CALL_DONE = 4   # the initiator of a cross-call has every ack it waits for
EV_SPEC_WALK = 5   # a speculative walk through one paging-structure cache entry
EV_WATCHDOG = 6    # an initiator has waited `watchdog` for its cross-call
EV_WINDOW = 7      # the measured window opens: counters are taken from here on
EV_CSD = 8         # an IPI handler on a CPU runs the next request it took from its queue
EV_BROADCAST = 9   # a broadcast invalidation (INVLPGB, RAR) has reached every target TLB
EV_QUEUE = 10      # a cross-call request's llist_add() lands on its target's call_single_queue
EV_SEND = 11       # a cross-call initiator writes the ICR for the targets whose queue was empty

# --- cross-call kinds ---------------------------------------------------------
CALL_FLUSH = 1       # flush_tlb_func
CALL_UNLAZY = 2      # switch a lazy CPU off a dying mm (shootdown / hazard pointer)
CALL_MEMBARRIER = 3  # ipi_mb
CALL_CHECK = 4       # do_check_lazy_tlb: the hazptr RFC's second, checking call
CALL_SYNC = 5        # tlb_remove_table_smp_sync: an empty call every CPU must take

# what the initiator does when its cross-call completes
CONT_STEP = 1        # go on with the next op
CONT_EXIT_MMAP = 2   # exit_mmap's flush returned: free tables, mmdrop, finish exit
CONT_EXIT_FREE = 3   # lazy users were shot down: free the mm, finish exit
CONT_HAZPTR = 4      # hazptr teardown: retire the next CPU whose slot holds the mm
CONT_TABLE_SYNC = 5  # tlb_remove_table_sync_one() returned: free the tables, go on

# --- policy knobs as integers ------------------------------------------------
KNOB_VALUES = {
    "lazy_tlb": ("stay", "switch_to_init_mm"),
    "lazy_cpumask": ("keep", "clear"),
    "flush_lazy_cpus": ("never", "freed_tables", "always"),
    "flush_local": ("before_remote", "concurrent"),
    "flush_wait": ("done", "ack"),
    "lazy_mm_ref": ("refcount", "hazard_pointer", "shootdown", "none"),
    "pv_flush": (False, True),
    "idle_leave_mm": ("tlb_flushed_states", "never"),
    "switch_mm_barrier": ("implicit", "explicit"),
    "read_mm_tlb_gen": ("always", "when_needed"),
    "init_mm_asid": ("dynamic", "dedicated"),
    "pti": ("auto", True, False),
    "lazy_mm_scan": ("mm_cpumask", "all_cpus"),
    "lazy_mm_release": ("handoff", "sync_ipi"),
    "cpumask_update": ("eager", "lazy", "lazy_untrimmed"),
    "broadcast_flush": ("none", "invlpgb", "rar", "auto"),   # auto: resolved per profile
    "tlbsync": ("before_return", "skip"),
    "lru_drain": ("on_zap", "batch_full"),
    "table_free": ("after_flush", "rcu"),
}
# integer knobs with their lower bound
INT_KNOBS = {"flush_ceiling": 0}

LAZY_STAY, LAZY_SWITCH_TO_INIT = 0, 1
CPUMASK_KEEP, CPUMASK_CLEAR = 0, 1
FLUSH_LAZY_NEVER, FLUSH_LAZY_FREED, FLUSH_LAZY_ALWAYS = 0, 1, 2
LOCAL_BEFORE_REMOTE, LOCAL_CONCURRENT = 0, 1
WAIT_DONE, WAIT_ACK = 0, 1
REF_REFCOUNT, REF_HAZARD, REF_SHOOTDOWN, REF_NONE = 0, 1, 2, 3
IDLE_LEAVE_FLUSHED, IDLE_LEAVE_NEVER = 0, 1
BARRIER_IMPLICIT, BARRIER_EXPLICIT = 0, 1
READ_GEN_ALWAYS, READ_GEN_WHEN_NEEDED = 0, 1
INIT_ASID_DYNAMIC, INIT_ASID_DEDICATED = 0, 1
PTI_AUTO, PTI_ON, PTI_OFF = 0, 1, 2
SCAN_MM_CPUMASK, SCAN_ALL_CPUS = 0, 1
RELEASE_HANDOFF, RELEASE_SYNC_IPI = 0, 1
MASK_EAGER, MASK_LAZY, MASK_LAZY_UNTRIMMED = 0, 1, 2
BROADCAST_NONE, BROADCAST_INVLPGB, BROADCAST_RAR = 0, 1, 2
TLBSYNC_BEFORE_RETURN, TLBSYNC_SKIP = 0, 1
LRU_DRAIN_ON_ZAP, LRU_DRAIN_BATCH_FULL = 0, 1
TABLE_FREE_AFTER_FLUSH, TABLE_FREE_RCU = 0, 1

# --- violation kinds (contract names) ----------------------------------------
V_STALE_TLB = 0
V_FREED_TABLE_WALK = 1
V_LAZY_MM_UAF = 2
V_HANG = 3
V_MEMBARRIER_ORDER = 4
VIOLATION_KINDS = ("stale_tlb", "freed_table_walk", "lazy_mm_use_after_free",
                   "hang", "membarrier_order")

SEV_ERROR, SEV_SILENT, SEV_HANG = 0, 1, 2
SEVERITIES = ("error", "silent", "hang")

# --- trace records: (time_cycles, cpu, code, a, b) ----------------------------
TR_SWITCH = 1        # a=next task (-1 idle), b=its mm (0 = none)
TR_SWITCH_MM = 2     # a=prev loaded mm, b=next mm
TR_LAZY = 3          # a=mm kept loaded (enter_lazy_tlb)
TR_CPUMASK_CLEAR = 4  # a=mm
TR_FLUSH = 5         # a=mm, b=number of CPUs sent an IPI (initiator side)
TR_IPI = 6           # a=call kind, b=initiator
TR_IDLE = 7          # a=C-state index
TR_WAKE = 8          # a=woken by (0 timer/task, 1 IPI)
TR_PSC_FILL = 9      # a=page-table page, b=mm
TR_TABLE_FREE = 10   # a=page-table page, b=mm
TR_SKIP = 11         # a=cpu skipped by the initiator, b=mm
TR_MM_FREE = 12      # a=mm
TR_LEAVE_MM = 13     # a=mm left
TR_WALK = 14         # a=page-table page, b=mm (speculative walk)
TR_ACCESS_STALE = 15  # a=page, b=mm
TR_HUNG = 16         # a=cpu that stopped answering
TR_PV_DEFER = 17     # a=vCPU whose flush was deferred to VM entry
TR_EXIT = 18         # a=task, b=mm
TR_BLOCK = 19        # a=task, b=channel: the task sleeps until a token arrives
TR_WAKEUP = 20       # a=task woken, b=the CPU try_to_wake_up chose
TR_RESCHED = 21      # a=target CPU: a reschedule IPI (the target was not polling)
TR_BROADCAST = 22    # a=ASID, b=mm: INVLPGB / RAR issued for this flush
TR_GLOBAL_ASID = 23  # a=ASID, b=mm: the mm got a global ASID
TR_TLBSYNC = 24      # a=mm: TLBSYNC returned, the broadcast is complete

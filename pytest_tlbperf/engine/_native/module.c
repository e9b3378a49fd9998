/*
 * module.c -- the CPython binding of the native engine: run() checks and
 * flattens its arguments into a struct machine (Core.__init__ and the
 * rooms' init_*), runs the loop without the GIL, and builds
 * Core.raw_result(). The only file that
 * includes Python.h.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdarg.h>

#include "machine.h"
/* The layout native.py flattens a Profile into (native.PROFILE_FIELDS). */
enum { P_CPUS, P_SMT, P_SOCKETS, P_CORES_PER_LLC, P_CLOCK_MHZ, P_PCID, P_MELTDOWN, P_INVPCID,
       P_APIC, P_TLB_SETS, P_TLB_WAYS, P_PSC_ENTRIES, P_WALK_INTERVAL, P_WALK_SEVERITY,
       P_WATCHDOG, P_TABLE_FAIL, P_IPI_JITTER, P_IPI_SMT, P_IPI_SOCKET, P_IPI_REMOTE,
       P_XFER_SMT, P_XFER_LLC, P_XFER_SOCKET, P_XFER_REMOTE, P_SYSCALL, P_ACCESS, P_WALK,
       P_WALK_PSC, P_PAGE_FAULT, P_FILE_FAULT, P_ZAP_PTE, P_PTE_UPDATE, P_INVLPG,
       P_FULL_FLUSH, P_CR3_WRITE, P_CONTEXT_SWITCH, P_IRQ_ENTRY, P_FLUSH_FUNC, P_CSD_ACK,
       P_IPI_SEND, P_ATOMIC, P_SMP_MB, P_WAKEUP, P_PIPE, P_INVPCID_COST, P_CSD_SETUP,
       P_LRU_LOCK, P_INVLPGB_COST, P_TLBSYNC_COST, P_RAR_COST, P_INVALIDATE,
       P_INVLPGB_MAX_PAGES, N_PROFILE };
static const char *const profile_fields[N_PROFILE] = {
    "cpus", "smt", "sockets", "cores_per_llc", "clock_mhz", "pcid", "meltdown", "has_invpcid",
    "apic", "tlb_sets", "tlb_ways", "psc_entries", "walk_interval", "walk_severity",
    "watchdog", "table_batch_fail_percent", "ipi_jitter", "ipi_smt", "ipi_socket",
    "ipi_remote", "xfer_smt", "xfer_llc", "xfer_socket", "xfer_remote", "syscall", "access",
    "walk", "walk_psc", "page_fault", "file_fault", "zap_pte", "pte_update", "invlpg",
    "full_flush", "cr3_write", "context_switch", "irq_entry", "flush_func", "csd_ack",
    "ipi_send", "atomic", "smp_mb", "wakeup", "pipe", "invpcid", "csd_setup", "lru_lock",
    "invlpgb", "tlbsync", "rar", "invalidate_cycles", "invlpgb_max_pages",
};
/* ... a C-state (native.CSTATE_FIELDS) */
enum { S_RESIDENCY, S_FLUSHED, S_POLLING, S_WAKE_MIN, S_WAKE_MAX, S_EXIT_LATENCY, N_CSTATE };
static const char *const cstate_fields[N_CSTATE] = {
    "target_residency", "tlb_flushed", "polling", "wake_min", "wake_max", "exit_latency",
};
/* ... and a Knobs (native.KNOB_FIELDS) */
enum { K_LAZY_TLB, K_LAZY_CPUMASK, K_FLUSH_LAZY, K_FLUSH_LOCAL, K_FLUSH_WAIT, K_LAZY_REF, K_PV,
       K_IDLE_LEAVE, K_CEILING, K_BARRIER, K_READ_GEN, K_INIT_ASID, K_PTI, K_SCAN, K_RELEASE,
       K_CPUMASK, K_BROADCAST, K_TLBSYNC, K_LRU, K_TABLE_FREE, N_KNOBS };
static const char *const knob_fields[N_KNOBS] = {
    "lazy_tlb", "lazy_cpumask", "flush_lazy_cpus", "flush_local", "flush_wait", "lazy_mm_ref",
    "pv_flush", "idle_leave_mm", "flush_ceiling", "switch_mm_barrier", "read_mm_tlb_gen",
    "init_mm_asid", "pti", "lazy_mm_scan", "lazy_mm_release", "cpumask_update",
    "broadcast_flush", "tlbsync", "lru_drain", "table_free",
};
/* broadcast_flush: 'auto' (3) is resolved by Policy.knobs() and never reaches an engine */
static const i64 knob_max[N_KNOBS] = { 1, 1, 2, 1, 1, 3, 1, 1, MAX_CEILING, 1, 1, 1, 2, 1, 1,
                                       2, 2, 1, 1, 1 };

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

/* Arrays carved from one zeroed block, which is returned (to free): one
 * allocation per array costs more than a short run. */
struct array { void **field; size_t size, count; };
#define ARRAY(field, count) { (void **)&m->field, sizeof *m->field, (size_t)(count) }

static void *carve(struct machine *m, const struct array *arrays, size_t n)
{
    size_t i, total = 0;
    char *block, *p;
    for (i = 0; i < n; i++)
        total += (arrays[i].size * arrays[i].count + 15) & ~(size_t)15;
    block = p = xcalloc(m, total, 1);
    for (i = 0; i < n; i++) {
        *arrays[i].field = p;
        p += (arrays[i].size * arrays[i].count + 15) & ~(size_t)15;
    }
    return block;
}

static int parse_profile(struct machine *m, PyObject *prof, PyObject *cstates, PyObject *virt)
{
    i64 p[N_PROFILE], fields[N_CSTATE];
    int i, j;
    if (as_tuple(prof, N_PROFILE, "profile") < 0)
        return -1;
    for (i = 0; i < N_PROFILE; i++) {
        i64 lo = 0, hi = MAX_VALUE;
        if (i == P_CPUS || i == P_SMT || i == P_SOCKETS || i == P_CORES_PER_LLC)
            lo = 1, hi = MAX_CPUS;
        else if (i == P_CLOCK_MHZ || i == P_TLB_SETS || i == P_TLB_WAYS || i == P_PSC_ENTRIES)
            lo = 1, hi = 1 << 20;
        else if (i == P_PCID || i == P_MELTDOWN || i == P_INVPCID)
            hi = 1;
        else if (i == P_APIC)
            hi = APIC_KVM_PV;
        else if (i == P_WALK_SEVERITY)
            lo = SEV_SILENT, hi = SEV_HANG;
        else if (i == P_TABLE_FAIL)
            hi = 100;
        else if (i == P_INVLPGB_MAX_PAGES)
            lo = 1;
        if (as_int(PyTuple_GET_ITEM(prof, i), lo, hi, &p[i], "profile %s",
                   profile_fields[i]) < 0)
            return -1;
    }
    if (p[P_CPUS] % p[P_SMT] || (p[P_CPUS] / p[P_SMT]) % p[P_SOCKETS]
            || (p[P_CPUS] / p[P_SMT] / p[P_SOCKETS]) % p[P_CORES_PER_LLC]) {
        PyErr_SetString(PyExc_ValueError, "profile: smt must divide cpus, sockets the cores, "
                        "and cores_per_llc the cores of a socket");
        return -1;
    }
    m->ncpu = (int)p[P_CPUS];
    m->nwords = (m->ncpu + 63) / 64;
    m->smt = p[P_SMT];
    m->cores = p[P_CPUS] / p[P_SMT];
    m->cores_per_socket = m->cores / p[P_SOCKETS];
    m->cores_per_llc = p[P_CORES_PER_LLC];
    m->n_socket = p[P_SOCKETS];
    m->n_llc = m->cores / m->cores_per_llc;
    m->us = p[P_CLOCK_MHZ];                 /* cycles per microsecond */
    /* EEVDF's base slice, 0.75 ms scaled by 1 + ilog2(min(CPUs, 8)) (sched.py) */
    m->slice = 750000 * bit_length(min64(m->ncpu, 8)) * p[P_CLOCK_MHZ] / 1000;
    m->pcid = (int)p[P_PCID];
    m->invpcid = (int)p[P_INVPCID];
    m->pti = (int)p[P_MELTDOWN];            /* and-ed with the knob in parse_knobs() */
    m->apic_mode = (int)p[P_APIC];
    m->tlb_sets = p[P_TLB_SETS], m->tlb_ways = p[P_TLB_WAYS], m->psc_n = p[P_PSC_ENTRIES];
    m->tlb_set_mask = m->tlb_sets & (m->tlb_sets - 1) ? -1 : m->tlb_sets - 1;
    m->walk_span = 2 * p[P_WALK_INTERVAL];
    m->walk_severity = p[P_WALK_SEVERITY];
    m->watchdog = p[P_WATCHDOG];
    m->table_fail = p[P_TABLE_FAIL];
    m->ipi_jitter = p[P_IPI_JITTER];
    /* IPI delivery by distance level: the APIC fabric does not care about L3 domains */
    m->ipi_lat[0] = p[P_IPI_SMT];
    m->ipi_lat[1] = m->ipi_lat[2] = p[P_IPI_SOCKET];
    m->ipi_lat[3] = p[P_IPI_REMOTE];
    for (i = 0; i < 4; i++)
        m->xfer[i] = p[P_XFER_SMT + i];
    m->c_syscall = p[P_SYSCALL], m->c_access = p[P_ACCESS];
    m->c_walk = p[P_WALK], m->c_walk_psc = p[P_WALK_PSC];
    m->c_fault = p[P_PAGE_FAULT], m->c_fault_file = p[P_FILE_FAULT];
    m->c_zap = p[P_ZAP_PTE], m->c_pte = p[P_PTE_UPDATE];
    m->c_invlpg = p[P_INVLPG], m->c_full_flush = p[P_FULL_FLUSH];
    m->c_cr3 = p[P_CR3_WRITE], m->c_ctxsw = p[P_CONTEXT_SWITCH];
    m->c_irq = p[P_IRQ_ENTRY], m->c_flush_func = p[P_FLUSH_FUNC], m->c_csd = p[P_CSD_ACK];
    m->c_ipi_send = p[P_IPI_SEND], m->c_atomic = p[P_ATOMIC], m->c_mb = p[P_SMP_MB];
    m->c_wakeup = p[P_WAKEUP], m->c_pipe = p[P_PIPE];
    m->c_invpcid = p[P_INVPCID_COST], m->c_csd_setup = p[P_CSD_SETUP];
    m->c_inval = p[P_INVALIDATE];    /* a store pays it per sharer beyond the first */
    m->c_lru_lock = p[P_LRU_LOCK];
    m->c_invlpgb = p[P_INVLPGB_COST], m->c_tlbsync = p[P_TLBSYNC_COST], m->c_rar = p[P_RAR_COST];
    m->invlpgb_max_pages = p[P_INVLPGB_MAX_PAGES];
    m->jiffy = p[P_CLOCK_MHZ] * 1000;      /* HZ=1000: one jiffy is 1 ms */

    if (as_tuple(cstates, -1, "cstates") < 0)
        return -1;
    m->ncstates = (int)PyTuple_GET_SIZE(cstates);
    {
        const struct array arrays[] = {
            ARRAY(cs_residency, m->ncstates), ARRAY(cs_flushed, m->ncstates),
            ARRAY(cs_polling, m->ncstates), ARRAY(cs_wake_min, m->ncstates),
            ARRAY(cs_wake_max, m->ncstates), ARRAY(cs_exit_latency, m->ncstates),
        };
        m->percstate = carve(m, arrays, sizeof arrays / sizeof arrays[0]);
    }
    for (i = 0; i < m->ncstates; i++) {
        PyObject *s = PyTuple_GET_ITEM(cstates, i);
        if (as_tuple(s, N_CSTATE, "a cstate (target_residency, tlb_flushed, polling, "
                     "wake_min, wake_max, exit_latency)") < 0)
            return -1;
        for (j = 0; j < N_CSTATE; j++)
            if (as_int(PyTuple_GET_ITEM(s, j), 0, j == S_FLUSHED || j == S_POLLING ? 1
                       : MAX_VALUE, &fields[j], "cstates[%d] %s", i, cstate_fields[j]) < 0)
                return -1;
        m->cs_residency[i] = fields[S_RESIDENCY];
        m->cs_flushed[i] = fields[S_FLUSHED];
        m->cs_polling[i] = fields[S_POLLING];
        m->cs_wake_min[i] = fields[S_WAKE_MIN];
        m->cs_wake_max[i] = fields[S_WAKE_MAX];
        m->cs_exit_latency[i] = fields[S_EXIT_LATENCY];
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
    m->k_read_gen = k[K_READ_GEN];
    m->k_init_asid = k[K_INIT_ASID];
    m->k_scan = k[K_SCAN];
    m->k_release = k[K_RELEASE];
    m->k_cpumask = k[K_CPUMASK];
    m->k_broadcast = k[K_BROADCAST];
    m->k_tlbsync = k[K_TLBSYNC];
    m->k_lru = k[K_LRU];
    m->k_table_free = k[K_TABLE_FREE];
    m->pv = m->virt && m->pv && k[K_PV];
    /* PTI: the knob, or on Meltdown-affected parts ('auto', the default).
     * Every entry from user mode and every return to it switches CR3. */
    m->pti = k[K_PTI] == PTI_ON || (k[K_PTI] == PTI_AUTO && m->pti);
    m->c_pti = m->pti ? 2 * m->c_cr3 : 0;
    m->c_syscall += m->c_pti;
    m->c_fault += m->c_pti;
    m->c_fault_file += m->c_pti;
    m->dedicated = m->k_init_asid == INIT_ASID_DEDICATED || !m->pcid;
    return 0;
}

/* A task's affinity: a tuple of distinct CPUs of the machine; NULL for () */
static int parse_affinity(struct machine *m, size_t i, PyObject *affinity)
{
    Py_ssize_t j, n;
    i64 x;
    if (as_tuple(affinity, -1, "a task's affinity") < 0)
        return -1;
    n = PyTuple_GET_SIZE(affinity);
    m->task_nallowed[i] = n;
    if (!n)
        return 0;
    m->task_allowed[i] = xcalloc(m, (size_t)m->nwords, sizeof(uint64_t));
    for (j = 0; j < n; j++) {
        if (as_int(PyTuple_GET_ITEM(affinity, j), 0, m->ncpu - 1, &x,
                   "task %zd affinity[%zd]", (Py_ssize_t)i, j) < 0)
            return -1;
        if (test_bit(m->task_allowed[i], (int)x)) {
            /* task.py sums 1 << cpu: a repeated CPU would set another bit */
            PyErr_Format(PyExc_ValueError, "task %zd: affinity names cpu%lld twice",
                         (Py_ssize_t)i, (long long)x);
            return -1;
        }
        set_bit(m->task_allowed[i], (int)x);
    }
    return 0;
}

/* A task's ops are a tuple of ints, or bytes of int64 words in native byte
 * order (native.run() packs them once per program). Checks every op once,
 * so the loop can trust them: known codes, arguments in range, page ranges
 * inside the task's mm, channels of the program, loops to an op index >= 0
 * (machine.py would raise an IndexError, or wrap a negative index, when it
 * got there). */
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
        PyObject *t = PyTuple_GET_ITEM(tasks, i), *ops;
        Py_ssize_t words;
        if (as_tuple(t, 5, "a task (mm, cpu, start, ops, affinity)") < 0)
            return -1;
        ops = PyTuple_GET_ITEM(t, 3);
        if (PyBytes_Check(ops)) {
            if (PyBytes_GET_SIZE(ops) % (4 * sizeof(i64))) {
                PyErr_Format(PyExc_ValueError, "task %zd: packed ops must be a multiple of 4 "
                             "int64 words", (Py_ssize_t)i);
                return -1;
            }
            words = PyBytes_GET_SIZE(ops) / (Py_ssize_t)sizeof(i64);
        } else {
            if (as_tuple(ops, -1, "a task's ops") < 0)
                return -1;
            words = PyTuple_GET_SIZE(ops);
            if (words % 4) {
                PyErr_Format(PyExc_ValueError, "task %zd: ops must be a multiple of 4 ints",
                             (Py_ssize_t)i);
                return -1;
            }
        }
        nops += (size_t)words;
    }
    m->ops = xcalloc(m, nops, sizeof(i64));
    {
        const struct array arrays[] = {
            ARRAY(task_off, m->ntasks), ARRAY(task_len, m->ntasks),
            ARRAY(task_tmpl, m->ntasks), ARRAY(task_mm, m->ntasks),
            ARRAY(task_pc, m->ntasks), ARRAY(task_done, m->ntasks),
            ARRAY(task_marks, 3 * m->ntasks), ARRAY(task_cpu, m->ntasks),
            ARRAY(task_nallowed, m->ntasks), ARRAY(task_allowed, m->ntasks),
        };
        m->pertask = carve(m, arrays, sizeof arrays / sizeof arrays[0]);
    }
    for (i = 0, nops = 0; i < m->ntasks; i++) {
        PyObject *t = PyTuple_GET_ITEM(tasks, i), *ops = PyTuple_GET_ITEM(t, 3);
        i64 tmpl, cpu, start, *op;
        if (as_int(PyTuple_GET_ITEM(t, 0), -1, (i64)m->ntmpl - 1, &tmpl, "task %zd mm",
                   (Py_ssize_t)i) < 0
                || as_int(PyTuple_GET_ITEM(t, 1), 0, m->ncpu - 1, &cpu, "task %zd cpu",
                          (Py_ssize_t)i) < 0
                || as_int(PyTuple_GET_ITEM(t, 2), -MAX_VALUE, MAX_VALUE, &start,
                          "task %zd start", (Py_ssize_t)i) < 0
                || parse_affinity(m, i, PyTuple_GET_ITEM(t, 4)) < 0)
            return -1;
        m->task_tmpl[i] = tmpl;
        m->task_mm[i] = -1;                 /* not started yet */
        m->task_done[i] = -1;
        m->task_marks[3 * i] = -1;
        m->task_cpu[i] = cpu;
        m->task_off[i] = (i64)nops;
        if (tmpl >= 0)
            m->tmpl_threads[tmpl] += 1;     /* clone() takes mm_users before it runs */
        if (PyBytes_Check(ops)) {
            /* native.run()'s packed form: int64 words in native byte order */
            i64 *words = &m->ops[nops];
            m->task_len[i] = PyBytes_GET_SIZE(ops) / (Py_ssize_t)sizeof(i64);
            memcpy(words, PyBytes_AS_STRING(ops), (size_t)m->task_len[i] * sizeof(i64));
            for (j = 0; j < m->task_len[i]; j++) {
                if (words[j] < -MAX_VALUE || words[j] > MAX_VALUE) {
                    PyErr_Format(PyExc_ValueError, "task %zd op %zd word %zd = %lld is out of "
                                 "range [%lld, %lld]", (Py_ssize_t)i, j / 4, j % 4,
                                 (long long)words[j], (long long)-MAX_VALUE,
                                 (long long)MAX_VALUE);
                    return -1;
                }
            }
        } else {
            m->task_len[i] = PyTuple_GET_SIZE(ops);
            for (j = 0; j < PyTuple_GET_SIZE(ops); j++)
                if (!in_range(PyTuple_GET_ITEM(ops, j), -MAX_VALUE, MAX_VALUE,
                              &m->ops[nops + j]))
                    return as_int(PyTuple_GET_ITEM(ops, j), -MAX_VALUE, MAX_VALUE,
                                  &m->ops[nops + j], "task %zd op %zd word %zd",
                                  (Py_ssize_t)i, j / 4, j % 4);
        }
        for (op = &m->ops[nops]; op < &m->ops[nops + j]; op += 4) {
            i64 code = op[0], first = op[1], npages = op[2];
            Py_ssize_t at = (Py_ssize_t)(op - &m->ops[nops]) / 4;
            int changes = code == OP_MADVISE || code == OP_MUNMAP || code == OP_MPROTECT;
            int touches = code == OP_ACCESS && tmpl >= 0 && npages > 0;
            if (code < OP_ACCESS || code > OP_RECLAIM) {
                PyErr_Format(PyExc_ValueError, "task %zd op %zd: unknown op code %lld",
                             (Py_ssize_t)i, at, (long long)code);
                return -1;
            }
            if ((changes && first < 0)
                    || (touches && (first < 0 || first + npages > m->tmpl_pages[tmpl]))) {
                PyErr_Format(PyExc_ValueError, "task %zd op %zd: pages %lld+%lld are outside "
                             "its mm", (Py_ssize_t)i, at, (long long)first,
                             (long long)npages);
                return -1;
            }
            if ((code == OP_BLOCK || code == OP_WAKE) && (first < 0 || first >= (i64)m->nchan)) {
                PyErr_Format(PyExc_ValueError, "task %zd op %zd: channel %lld does not exist "
                             "(the program has %zd)", (Py_ssize_t)i, at, (long long)first,
                             (Py_ssize_t)m->nchan);
                return -1;
            }
            if (code == OP_RECLAIM && (op[3] < 0 || op[3] >= (i64)m->ntmpl || first < 0)) {
                /* machine.py would raise an IndexError, or wrap a negative
                 * index; pages past the mm's end are clipped, as there */
                PyErr_Format(PyExc_ValueError, "task %zd op %zd: reclaim of pages %lld+%lld "
                             "of mm template %lld", (Py_ssize_t)i, at, (long long)first,
                             (long long)npages, (long long)op[3]);
                return -1;
            }
            if (code == OP_LOOP && first < 0) {
                PyErr_Format(PyExc_ValueError, "task %zd op %zd: a loop to op %lld",
                             (Py_ssize_t)i, at, (long long)first);
                return -1;
            }
        }
        nops += (size_t)j;
        /* Core.__init__'s last loop: the task wakes at its start */
        insort(m, &m->timers[cpu], start);
        push(m, start, (int)cpu, EV_WAKE, (i64)i, WAKE_TIMER);
    }
    return 0;
}

/* x2APIC ID as Profile.apicid(): socket, core and thread fields, each
 * rounded up to a power of two */
static i64 apicid(const struct machine *m, int cpu)
{
    i64 core = m->core[cpu], thread = cpu / m->cores;
    int thread_bits = bit_length(m->smt - 1), core_bits = bit_length(m->cores_per_socket - 1);
    return ((core / m->cores_per_socket) << (core_bits + thread_bits))
        | ((core % m->cores_per_socket) << thread_bits) | thread;
}

/* Core.__init__ */
static int machine_init(struct machine *m, PyObject *args)
{
    PyObject *prof, *cstates, *virt, *knobs, *mm_pages, *tasks, *channels, *warmup, *window,
        *seed_obj;
    struct mm init_mm = { 0 };
    uint64_t seed;
    i64 nchan, max_apicid = 0;
    size_t ch;
    int c, a;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOO:run", &prof, &cstates, &virt, &knobs, &mm_pages,
                          &tasks, &channels, &warmup, &window, &seed_obj))
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
    if (as_int(channels, 0, INT32_MAX, &nchan, "channels") < 0
            || as_int(warmup, 0, MAX_VALUE, &m->warmup, "warmup") < 0
            || as_int(window, 0, MAX_VALUE, &m->window, "window") < 0)
        return -1;
    m->nchan = (size_t)nchan;
    m->rng = stream_state(seed, STREAM_MACHINE);

    /* per-CPU state (cpu_tlbstate and friends) and the scratch arrays */
    {
        const struct array arrays[] = {
        ARRAY(core, m->ncpu),
        ARRAY(llc, m->ncpu),
        ARRAY(socket, m->ncpu),
        ARRAY(apicid, m->ncpu),
        ARRAY(loaded_mm, m->ncpu),
        ARRAY(loaded_asid, m->ncpu),
        ARRAY(is_lazy, m->ncpu),
        ARRAY(ctx_id, m->ncpu * NR_HW_ASIDS),
        ARRAY(ctx_gen, m->ncpu * NR_HW_ASIDS),
        ARRAY(next_asid, m->ncpu),
        ARRAY(cur, m->ncpu),
        ARRAY(active_mm, m->ncpu),
        ARRAY(lazy_ref, m->ncpu),
        ARRAY(hazard, m->ncpu),
        ARRAY(drop_mm, m->ncpu),
        ARRAY(cstate, m->ncpu),
        ARRAY(wakes_pending, m->ncpu),
        ARRAY(lazy_line, m->ncpu),
        ARRAY(info_line, m->ncpu),
        ARRAY(csq_line, m->ncpu),
        ARRAY(hazard_line, m->ncpu),
        ARRAY(drop_line, m->ncpu),
        ARRAY(rq_line, m->ncpu),
        ARRAY(in_handler, m->ncpu),
        ARRAY(ipi_pending, m->ncpu),
        ARRAY(in_idle, m->ncpu),
        ARRAY(idle_pos, m->ncpu),
        ARRAY(idle_since, m->ncpu),
        ARRAY(idle_hist, m->ncpu * INTERVALS),
        ARRAY(irqs_off_until, m->ncpu),
        ARRAY(irq_busy, m->ncpu),
        ARRAY(step_token, m->ncpu),
        ARRAY(step_at, m->ncpu),
        ARRAY(hung, m->ncpu),
        ARRAY(hung_at, m->ncpu),
        ARRAY(run_since, m->ncpu),
        ARRAY(qs_at, m->ncpu),
        ARRAY(csd_unlock, m->ncpu),
        ARRAY(runq, m->ncpu),
        ARRAY(handling, m->ncpu),
        ARRAY(timers, m->ncpu),
        ARRAY(pv_pending, m->ncpu),
        ARRAY(csdq, m->ncpu),
        ARRAY(vwin, m->ncpu),
        ARRAY(vrng, m->ncpu),
        ARRAY(vlast, m->ncpu),
        ARRAY(vlast_set, m->ncpu),
        ARRAY(hw, m->ncpu),
        ARRAY(tlbstate_line, m->ncpu),
        ARRAY(rar_action_line, m->ncpu),
        ARRAY(irq_cycles, m->ncpu),
        ARRAY(irq_start, m->ncpu),
        ARRAY(tlbsync_at, m->ncpu),
        ARRAY(lru_batch, m->ncpu),
        ARRAY(rings, m->ncpu * RING),
        ARRAY(rpos, m->ncpu),
        ARRAY(rlen, m->ncpu),
        ARRAY(ipis_received, m->ncpu),
        ARRAY(seen, m->ncpu * N_VKINDS),
        ARRAY(ran, m->nwords),
        ARRAY(targets, m->ncpu),
        ARRAY(cpus, m->ncpu),
        ARRAY(newly, m->ncpu),
        ARRAY(group, m->ncpu),
        ARRAY(group_count, m->ncpu),
        ARRAY(group_start, m->ncpu + 1),
        ARRAY(group_order, m->ncpu),
        ARRAY(line_ids, 2 * m->ncpu),
        ARRAY(held, m->nwords),
        ARRAY(batch, m->nwords),
        };
        m->percpu = carve(m, arrays, sizeof arrays / sizeof arrays[0]);
    }
    for (c = 0; c < m->ncpu; c++) {
        /* Linux enumeration: CPUs 0..cores-1 are the first thread of every
         * core, socket by socket; their SMT siblings follow (Profile.core_of) */
        m->core[c] = (int32_t)(c % m->cores);
        m->llc[c] = (int32_t)(m->core[c] / m->cores_per_llc);
        m->socket[c] = (int32_t)(m->core[c] / m->cores_per_socket);
        m->apicid[c] = (int32_t)apicid(m, c);
        max_apicid = max64(max_apicid, m->apicid[c]);
        for (a = 0; a < NR_HW_ASIDS; a++)
            m->ctx_id[c * NR_HW_ASIDS + a] = -1;
        if (m->dedicated) {
            m->loaded_asid[c] = m->pcid ? INIT_ASID : 0;
        } else {
            /* boot: init_mm loaded in ASID 0 (cpu_tlbstate = { .next_asid = 1 }) */
            m->loaded_asid[c] = 0;
            m->next_asid[c] = 1;
            m->ctx_id[c * NR_HW_ASIDS] = INIT_MM;
            m->ctx_gen[c * NR_HW_ASIDS] = 1;
        }
        m->cur[c] = -1;               /* the idle task */
        m->cstate[c] = -1;            /* executing (C0) */
        m->step_at[c] = -1;
        m->pv_pending[c] = -1;
        m->lazy_line[c] = m->info_line[c] = m->csq_line[c] = -1;
        m->hazard_line[c] = m->drop_line[c] = m->rq_line[c] = -1;
        m->tlbstate_line[c] = m->rar_action_line[c] = -1;
        for (a = 0; a < INTERVALS; a++)
            m->idle_hist[c * INTERVALS + a] = -1;
        if (m->virt)
            m->vrng[c] = stream_state(seed, STREAM_VCPU + (uint64_t)c);
    }
    m->group_of = xcalloc(m, (size_t)(max_apicid / 16 + 1), sizeof(int32_t));
    for (a = 0; a <= max_apicid / 16; a++)
        m->group_of[a] = -1;

    /* global ASIDs: handed out in order after the hardware ASIDs, from a pool
     * of MAX_ASID_AVAILABLE - TLB_NR_DYN_ASIDS - 1 (tlb.py init_tlb) */
    m->gasid_lock = new_line(m);
    m->gasid_next = NR_HW_ASIDS;
    m->gasid_available = GLOBAL_ASIDS;
    m->rar_payload_line = new_line(m);      /* the RAR payload-slot bitmap */

    /* pipes: bytes written and not read, sleeping readers, the pipe's lock */
    m->chan_tokens = xcalloc(m, m->nchan, sizeof(i64));
    m->chan_waiters = xcalloc(m, m->nchan, sizeof *m->chan_waiters);
    m->chan_line = xcalloc(m, m->nchan, sizeof(int32_t));
    for (ch = 0; ch < m->nchan; ch++)
        m->chan_line[ch] = new_line(m);

    /* init_mm and its four lines */
    PUSH(m, m->mms, init_mm);
    m->mms.v[0].gen = 1, m->mms.v[0].count = 1, m->mms.v[0].users = 1;
    m->mms.v[0].mask = xcalloc(m, (size_t)m->nwords, sizeof(uint64_t));
    m->mms.v[0].line = new_line(m);
    new_line(m);
    new_line(m);
    new_line(m);
    m->next_ctx = 1;
    /* the LRU: one lruvec lru_lock line per node (socket) */
    m->lru_line = xcalloc(m, (size_t)m->n_socket, sizeof(int32_t));
    for (a = 0; a < m->n_socket; a++)
        m->lru_line[a] = new_line(m);

    if (parse_tasks(m, mm_pages, tasks) < 0)
        return -1;
    /* one epoch per hardware ASID, and per global ASID the run may hand out */
    m->n_asids = NR_HW_ASIDS + (i64)m->ntmpl;
    m->gasid_end = m->n_asids;
    m->tlb_epoch = xcalloc(m, (size_t)m->ncpu * (size_t)m->n_asids, sizeof(i64));
    m->psc_epoch = xcalloc(m, (size_t)m->ncpu * (size_t)m->n_asids, sizeof(i64));
    /* a throughput workload: count from warm-up's end, stop at the window's */
    m->stop = m->window ? m->warmup + m->window : -1;
    m->measuring = !m->window;
    if (m->window) {
        m->snap_received = xcalloc(m, m->ncpu, sizeof(i64));
        push(m, m->warmup, 0, EV_WINDOW, 0, 0);
    }
    return 0;
}

static void machine_free(struct machine *m)
{
    size_t i;
    int c;
    free(m->percstate);
    for (c = 0; c < m->ncpu; c++) {
        if (m->csd_unlock)
            free(m->csd_unlock[c]);
        if (m->runq)
            free(m->runq[c].v);
        if (m->handling)
            free(m->handling[c].v);
        if (m->timers)
            free(m->timers[c].v);
        if (m->csdq)
            free(m->csdq[c].v);
        if (m->vwin)
            free(m->vwin[c].v);
        if (m->hw)
            free(m->hw[c]);
    }
    if (m->lru_batch)
        for (c = 0; c < m->ncpu; c++)
            free(m->lru_batch[c]);
    free(m->percpu), free(m->group_of);
    free(m->tlb_epoch), free(m->psc_epoch), free(m->lru_line);
    free(m->bcasts.v), free(m->free_bcasts.v);
    for (i = 0; i < m->lines.n; i++) {
        free(m->lines.v[i].v);
        free(m->lines.v[i].holders);
    }
    free(m->lines.v);
    for (i = 0; m->chan_waiters && i < m->nchan; i++)
        free(m->chan_waiters[i].v);
    free(m->chan_tokens), free(m->chan_waiters), free(m->chan_line);
    for (i = 0; i < m->mms.n; i++) {
        struct mm *M = &m->mms.v[i];
        i64 block;
        for (block = 0; M->blocks && block < (M->npages + BLOCK - 1) / BLOCK; block++)
            free(M->blocks[block]);
        free(M->blocks), free(M->tables), free(M->mask);
    }
    free(m->mms.v);
    for (i = 0; i < m->tables.n; i++) {
        free(m->tables.v[i].cachers);
        free(m->tables.v[i].frees.v);
    }
    free(m->tables.v), free(m->table_pool.v);
    for (i = 0; i < m->rcu_pending.n; i++)
        free(m->rcu_pending.v[m->rcu_pending.head + i].tables.v);
    free(m->rcu_pending.v);
    for (i = 0; m->task_allowed && i < m->ntasks; i++)
        free(m->task_allowed[i]);
    free(m->ops), free(m->pertask);
    free(m->tmpl_pages), free(m->tmpl_mm), free(m->tmpl_threads);
    free(m->snap_received);
    free(m->flush_lat.v);
    for (i = 0; i < MAX_VIOLATIONS; i++)
        free(m->violations[i].trace);
    for (i = 0; i < m->calls.n; i++) {      /* live or not, slots keep their buffers */
        free(m->calls.v[i].snap.v);
        free(m->calls.v[i].tables.v);
        free(m->calls.v[i].rest.v);
        free(m->calls.v[i].targets.v);
        free(m->calls.v[i].need.v);
    }
    free(m->calls.v), free(m->free_calls.v), free(m->heap.v);
    free(m->snap.v), free(m->freed_tables.v), free(m->extra.v);
    free(m);
}

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
/* Core.raw_result(); Py_BuildValue releases its "N" arguments on failure */
static PyObject *raw_result(struct machine *m)
{
    static const char *const names[N_COUNTERS] = {
        "ipis", "ipis_to_idle", "ipis_to_lazy", "cr3_writes", "full_flushes", "invlpg",
        "tlb_misses", "atomic_contention", "idle_wakeups", "ops", "page_faults", "spec_walks",
        "switch_mm_barriers", "resched_ipis", "icr_writes", "invpcid", "invlpgb",
        "rar_requests", "flush_cycles", "lru_locks",
    };
    i64 cnt[N_COUNTERS], end = 0;
    PyObject *counts;
    size_t i, ndone = 0;
    int finished, k;
    counters(m, cnt);
    if (m->stop >= 0) {
        /* a throughput workload: what happened inside the measured window */
        if (m->snapshot) {
            for (k = 0; k < N_COUNTERS; k++)
                cnt[k] -= m->snap_counters[k];
            for (i = 0; i < (size_t)m->ncpu; i++)
                m->ipis_received[i] -= m->snap_received[i];
        }
        end = m->stop;
        finished = m->stopped;
    } else {
        for (i = 0; i < m->ntasks; i++)
            if (m->task_done[i] >= 0)
                end = ndone++ ? max64(end, m->task_done[i]) : m->task_done[i];
        finished = ndone == m->ntasks;
        if (!(finished && ndone))
            end = m->now;
    }
    counts = PyDict_New();
    for (k = 0; counts && k < N_COUNTERS; k++) {
        PyObject *v = PyLong_FromLongLong(cnt[k]);
        if (!v || PyDict_SetItemString(counts, names[k], v) < 0)
            Py_CLEAR(counts);
        Py_XDECREF(v);
    }
    return Py_BuildValue(
        "{s:L,s:O,s:N,s:L,s:L,s:N,s:N,s:N,s:N,s:N,s:N}",
        "end", (long long)end,
        "finished", finished ? Py_True : Py_False,
        "counters", counts,
        "window", (long long)m->window,
        "window_marks", (long long)m->window_marks,
        "flush_latency", int_list(m->flush_lat.v, m->flush_lat.n),
        "ipis_received", int_list(m->ipis_received, (size_t)m->ncpu),
        "marks", marks_list(m),
        "task_pc", int_list(m->task_pc, m->ntasks),
        "violation_counts", int_list(m->violation_counts, N_VKINDS),
        "violations", violations_list(m));
}


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

/* 0: the run finished; -1: out of memory; 1: stopped by a signal handler
 * that raised (KeyboardInterrupt), whose exception is set */
static int loop_or_oom(struct machine *m)
{
    if (setjmp(m->oom))
        return -1;
    return run_loop(m) < 0 ? 1 : 0;
}

/* threading.main_thread().ident, read at import: the thread that runs
 * Python's signal handlers */
static unsigned long main_thread_ident;

/* run_loop() runs without the GIL and asks this every POLL_EVERY events.
 * On the main thread: take the GIL, let Python run the handlers of the
 * signals that arrived (SIGINT's raises KeyboardInterrupt), and let go of it
 * again; so Ctrl-C stops a long run, which then frees everything as any
 * failed run does. Another thread runs no handlers, and does not wait for
 * the GIL (up to sys.getswitchinterval()) for nothing. */
int stop_requested(struct machine *m)
{
    int rc;
    if (!m->main_thread)
        return 0;
    PyEval_RestoreThread(m->py_thread);
    rc = PyErr_CheckSignals();
    m->py_thread = PyEval_SaveThread();
    return rc < 0;
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
        m->main_thread = PyThread_get_thread_ident() == main_thread_ident;
        m->py_thread = PyEval_SaveThread();     /* Py_BEGIN_ALLOW_THREADS */
        rc = loop_or_oom(m);
        PyEval_RestoreThread(m->py_thread);     /* Py_END_ALLOW_THREADS */
        if (rc < 0)
            PyErr_NoMemory();
        else if (rc == 0)
            result = raw_result(m);
    }
    machine_free(m);
    return result;
}

PyDoc_STRVAR(run_doc,
"run(profile, cstates, virt, knobs, mm_pages, tasks, channels, warmup, window, seed)\n"
"-> dict\n\n"
"Machine(...).run() of engine/machine.py in C; use pytest_tlbperf.engine.native.run(),\n"
"which flattens a Profile, Knobs and Program into these tuples of ints. Signal\n"
"handlers run while it does: Ctrl-C stops it with KeyboardInterrupt.");

static PyMethodDef native_methods[] = {
    {"run", native_run, METH_VARARGS, run_doc},
    {NULL, NULL, 0, NULL},
};

static int add_abi(PyObject *module)
{
    /* The constants this file hard-codes, for tests to compare with
     * engine/abi.py, engine/prng.py and the engine modules that define
     * them (core, hw, smp, sched, idle), and its input bounds. */
    static const struct { const char *name; long long value; } abi[] = {
        {"OP_ACCESS", OP_ACCESS}, {"OP_COMPUTE", OP_COMPUTE}, {"OP_MADVISE", OP_MADVISE},
        {"OP_MUNMAP", OP_MUNMAP}, {"OP_MPROTECT", OP_MPROTECT}, {"OP_SLEEP", OP_SLEEP},
        {"OP_YIELD", OP_YIELD}, {"OP_MIGRATE", OP_MIGRATE}, {"OP_MARK", OP_MARK},
        {"OP_MEMBARRIER", OP_MEMBARRIER}, {"OP_EXIT", OP_EXIT}, {"OP_BLOCK", OP_BLOCK},
        {"OP_WAKE", OP_WAKE}, {"OP_LOOP", OP_LOOP}, {"OP_RECLAIM", OP_RECLAIM},
        {"EV_STEP", EV_STEP}, {"EV_WAKE", EV_WAKE}, {"EV_IPI", EV_IPI},
        {"EV_CALL_DONE", EV_CALL_DONE}, {"EV_SPEC_WALK", EV_SPEC_WALK},
        {"EV_WATCHDOG", EV_WATCHDOG}, {"EV_WINDOW", EV_WINDOW}, {"EV_CSD", EV_CSD},
        {"EV_BROADCAST", EV_BROADCAST}, {"EV_QUEUE", EV_QUEUE}, {"EV_SEND", EV_SEND},
        {"CALL_FLUSH", CALL_FLUSH}, {"CALL_UNLAZY", CALL_UNLAZY},
        {"CALL_MEMBARRIER", CALL_MEMBARRIER}, {"CALL_CHECK", CALL_CHECK},
        {"CALL_SYNC", CALL_SYNC},
        {"CONT_STEP", CONT_STEP}, {"CONT_EXIT_MMAP", CONT_EXIT_MMAP},
        {"CONT_EXIT_FREE", CONT_EXIT_FREE}, {"CONT_HAZPTR", CONT_HAZPTR},
        {"CONT_TABLE_SYNC", CONT_TABLE_SYNC},
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
        {"READ_GEN_ALWAYS", READ_GEN_ALWAYS}, {"READ_GEN_WHEN_NEEDED", READ_GEN_WHEN_NEEDED},
        {"INIT_ASID_DYNAMIC", INIT_ASID_DYNAMIC},
        {"INIT_ASID_DEDICATED", INIT_ASID_DEDICATED},
        {"PTI_AUTO", PTI_AUTO}, {"PTI_ON", PTI_ON}, {"PTI_OFF", PTI_OFF},
        {"SCAN_MM_CPUMASK", SCAN_MM_CPUMASK}, {"SCAN_ALL_CPUS", SCAN_ALL_CPUS},
        {"RELEASE_HANDOFF", RELEASE_HANDOFF}, {"RELEASE_SYNC_IPI", RELEASE_SYNC_IPI},
        {"MASK_EAGER", MASK_EAGER}, {"MASK_LAZY", MASK_LAZY},
        {"MASK_LAZY_UNTRIMMED", MASK_LAZY_UNTRIMMED},
        {"BROADCAST_NONE", BROADCAST_NONE}, {"BROADCAST_INVLPGB", BROADCAST_INVLPGB},
        {"BROADCAST_RAR", BROADCAST_RAR},
        {"TLBSYNC_BEFORE_RETURN", TLBSYNC_BEFORE_RETURN}, {"TLBSYNC_SKIP", TLBSYNC_SKIP},
        {"LRU_DRAIN_ON_ZAP", LRU_DRAIN_ON_ZAP}, {"LRU_DRAIN_BATCH_FULL", LRU_DRAIN_BATCH_FULL},
        {"TABLE_FREE_AFTER_FLUSH", TABLE_FREE_AFTER_FLUSH},
        {"TABLE_FREE_RCU", TABLE_FREE_RCU},
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
        {"TR_PV_DEFER", TR_PV_DEFER}, {"TR_EXIT", TR_EXIT}, {"TR_BLOCK", TR_BLOCK},
        {"TR_WAKEUP", TR_WAKEUP}, {"TR_RESCHED", TR_RESCHED},
        {"TR_BROADCAST", TR_BROADCAST}, {"TR_GLOBAL_ASID", TR_GLOBAL_ASID},
        {"TR_TLBSYNC", TR_TLBSYNC},
        {"STREAM_MACHINE", STREAM_MACHINE}, {"STREAM_VCPU", STREAM_VCPU},
        {"TLB_NR_DYN_ASIDS", TLB_NR_DYN_ASIDS}, {"INIT_ASID", INIT_ASID},
        {"NR_HW_ASIDS", NR_HW_ASIDS}, {"INIT_MM", INIT_MM},
        {"PAGES_PER_TABLE", PAGES_PER_TABLE}, {"TLB_FLUSH_ALL", TLB_FLUSH_ALL},
        {"RING", RING}, {"MAX_VIOLATIONS", MAX_VIOLATIONS},
        {"LOAD_PARALLELISM", LOAD_PARALLELISM}, {"INTERVALS", INTERVALS},
        {"GLOBAL_ASIDS", GLOBAL_ASIDS}, {"GLOBAL_ASID_THRESHOLD", GLOBAL_ASID_THRESHOLD},
        {"HZ", HZ}, {"FOLIO_BATCH", FOLIO_BATCH},
        {"APIC_CLUSTER", APIC_CLUSTER}, {"APIC_PHYSICAL", APIC_PHYSICAL},
        {"APIC_KVM_PV", APIC_KVM_PV}, {"BORROWED", BORROWED}, {"COUNTED", COUNTED},
        {"WAKE_ENQUEUE", WAKE_ENQUEUE}, {"WAKE_TIMER", WAKE_TIMER},
        {"WAKE_POLLED", WAKE_POLLED}, {"WAKE_IPI", WAKE_IPI},
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

/* The field names, in the order run() reads them, for tests to compare
 * with native.PROFILE_FIELDS, CSTATE_FIELDS and KNOB_FIELDS. */
static int add_names(PyObject *module, const char *attr, const char *const *names, int n)
{
    PyObject *t = PyTuple_New(n);
    int i;
    for (i = 0; t && i < n; i++) {
        PyObject *s = PyUnicode_FromString(names[i]);
        if (!s) {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(t, i, s);
    }
    if (!t || PyModule_AddObject(module, attr, t) < 0) {
        Py_XDECREF(t);
        return -1;
    }
    return 0;
}

static int native_exec(PyObject *module)
{
    PyObject *threading = PyImport_ImportModule("threading"), *main, *ident;
    if (!threading)
        return -1;
    main = PyObject_CallMethod(threading, "main_thread", NULL);
    Py_DECREF(threading);
    if (!main)
        return -1;
    ident = PyObject_GetAttrString(main, "ident");
    Py_DECREF(main);
    if (!ident)
        return -1;
    main_thread_ident = PyLong_AsUnsignedLong(ident);
    Py_DECREF(ident);
    if (PyErr_Occurred())
        return -1;
    if (add_names(module, "PROFILE_FIELDS", profile_fields, N_PROFILE) < 0
            || add_names(module, "CSTATE_FIELDS", cstate_fields, N_CSTATE) < 0
            || add_names(module, "KNOB_FIELDS", knob_fields, N_KNOBS) < 0)
        return -1;
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

/*
 * tlbperf-runner -- the host backend's workloads on the running kernel
 * (DESIGN §9). Built with the package as a small executable next to this
 * file; pytest_tlbperf/host/runner.py starts it, one process per run, and
 * reads one JSON object from its stdout.
 *
 * Why a separate process and not an extension module: Ctrl-C, a crash or
 * the watchdog end the runner and never pytest; pinning threads with
 * sched_setaffinity() changes nothing in the caller; perf counters opened
 * with `inherit` count the runner's threads and nothing else; and a kernel
 * developer can run the same binary by hand under perf or ftrace.
 *
 * The workloads mirror will-it-scale (github.com/antonblanchard/
 * will-it-scale, tests/tlb_flush{1,2,3}.c, tests/context_switch1.c) and
 * seed 002's loop; they are written afresh, not copied:
 *
 *   tlb_flush1        each thread: a MAP_PRIVATE mapping of its own sparse
 *                     temporary file; write a page, madvise(MADV_DONTNEED)
 *                     it, read it back (0: the private copy is gone); one
 *                     iteration per page, then munmap and map again.
 *   tlb_flush2        the same on MAP_PRIVATE|MAP_ANONYMOUS memory (1 MiB,
 *                     as will-it-scale).
 *   tlb_flush3        the same on a MAP_SHARED file mapping (the read finds
 *                     the 1 again: DONTNEED only unmapped the page).
 *   context_switch1   pairs of threads ping-pong one byte over two pipes;
 *                     2 iterations per round trip, counted by the first
 *                     thread of the pair. The partner is pinned to the SMT
 *                     sibling of the first thread's CPU (same core), or to
 *                     the same CPU where the core has no sibling.
 *   madvise_dontneed  seed 002: thread i loops madvise(MADV_DONTNEED) of
 *                     its own page of one shared anonymous region and a
 *                     write that faults it back in.
 *   munmap_storm      each thread maps 4 MiB of anonymous memory, writes 8
 *                     pages of its 2 MiB-aligned middle, reads 16 pages
 *                     every thread shares, and unmaps it all: the middle's
 *                     page table is freed, so the flush has freed_tables
 *                     set and reaches lazy CPUs too (v4.20 and later).
 *
 * Every thread of one run belongs to this one process (one mm), so each
 * madvise/munmap flushes the CPUs the other threads run on: that is the
 * TLB shootdown under test. Anonymous memory is madvise(MADV_NOHUGEPAGE)d:
 * a transparent huge page would replace the 512 faults and the page table
 * the loops are about by one.
 *
 * Sampling is will-it-scale's (main.c): each task bumps a counter in its
 * own 128-byte slot (two cache lines: the adjacent-line prefetcher does
 * not drag a neighbour's counter along); the main thread sleeps, then
 * reads every slot once per window. A warm-up comes first; boundary 0 ends
 * it and window k runs from boundary k-1 to k. At each boundary the main
 * thread also reads the CAL/TLB/RES lines of /proc/interrupts, the cpu
 * lines of /proc/stat, getrusage(RUSAGE_SELF) and the perf counters; the
 * Python side turns the differences into metrics, and into the share of
 * its CPUs the runner got (other load and a hypervisor's steal show
 * there).
 *
 * Bounds: a window is 1 ms..10 s, the warm-up at most 60 s, at most 120
 * windows; an alarm() kills the runner 30 s after the planned end. Memory
 * per thread: tlb_flush1/3 a file of --file-mb (default 16 MiB, at most
 * 128; tlb_flush3 dirties all of it in the page cache), tlb_flush2 1 MiB,
 * munmap_storm 4 MiB, madvise_dontneed 8 pages, context_switch1 two pipes.
 *
 * SIGINT, SIGTERM and SIGHUP are blocked in every thread and taken by the
 * main thread in sigtimedwait(), so Ctrl-C ends the current wait at once:
 * the runner prints the windows it completed with "interrupted": true and
 * exits 130. Workers are not joined: exit() takes them down, as
 * will-it-scale's kill_tasks() does.
 *
 * Other modes: `costs` measures what `tlbperf profile --from-host` writes
 * (syscall, page fault, membarrier IPI round trip, the 1-thread seed 002
 * loop, a pipe round trip on one CPU); `cpuid` prints the CPUID bits the
 * kernel's /proc/cpuinfo may not show (INVLPGB on older kernels, the
 * hypervisor's signature and KVM's PV TLB flush feature).
 *
 * Exit status: 0 done, 130 interrupted (partial JSON on stdout), 2 bad
 * arguments, 3 the workload failed (message on stderr).
 */

#define _GNU_SOURCE
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/membarrier.h>
#include <linux/perf_event.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define RUNNER_VERSION 1
#define MAX_TASKS 1024
#define SLOT_BYTES 128
#define MAX_WINDOWS 120
#define MAX_WINDOW_MS 10000
#define MAX_WARMUP_MS 60000
#define MAX_FILE_MB 128
#define WATCHDOG_SLACK_S 30
#define ANON_FLUSH2_BYTES (1UL << 20)          /* will-it-scale tlb_flush2.c */
#define STORM_MAP_BYTES (4UL << 20)
#define STORM_PMD_BYTES (2UL << 20)
#define STORM_TOUCH_PAGES 8
#define HOT_PAGES 16
#define MADVISE_STRIDE_PAGES 8                 /* workloads.py: page = 8 * i */

/* KVM paravirt CPUID leaf 0x40000001 EAX bits (arch/x86/include/uapi/asm/kvm_para.h) */
#define KVM_FEATURE_STEAL_TIME 5
#define KVM_FEATURE_PV_TLB_FLUSH 9
#define KVM_FEATURE_PV_SEND_IPI 11

enum workload { W_TLB_FLUSH1, W_TLB_FLUSH2, W_TLB_FLUSH3, W_CONTEXT_SWITCH1,
                W_MADVISE_DONTNEED, W_MUNMAP_STORM, W_NONE };
static const char *const workload_names[] = {
    "tlb_flush1", "tlb_flush2", "tlb_flush3", "context_switch1", "madvise_dontneed",
    "munmap_storm" };

struct slot {
    _Alignas(SLOT_BYTES) _Atomic uint64_t iterations;
};

struct task {
    int index;               /* counting task: 0..ntasks-1; partner: -1 */
    int pair;                /* context_switch1: the pair a partner serves */
    int cpu;
    struct slot *slot;
    int pipe_in, pipe_out;   /* context_switch1 */
    pthread_t thread;
};

static struct {
    enum workload workload;
    int ntasks;              /* tasks that count (pairs for context_switch1) */
    int cpus[MAX_TASKS], partners[MAX_TASKS], npartners;
    long warmup_ms, window_ms, windows, file_mb;
    const char *tmpdir;
    int perf;
} opt = { .workload = W_NONE, .warmup_ms = 1000, .window_ms = 1000, .windows = 5,
          .file_mb = 16, .perf = 1 };

static long page_size;
static atomic_int stop;
static atomic_int failed;
static char failure[512];
static pthread_barrier_t start_line;
static pthread_t main_thread;
static char *shared_region;             /* madvise_dontneed pages, munmap_storm hot set */

/* ------------------------------------------------------------- helpers */

static void usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("tlbperf-runner: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

/* A worker's failure: the first one is kept, and the main thread is woken
 * (SIGUSR1 is in the set it waits for) to report it and exit 3. */
static void fail(const char *fmt, ...)
{
    int expected = 0;
    if (atomic_compare_exchange_strong(&failed, &expected, 1)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(failure, sizeof(failure), fmt, ap);
        va_end(ap);
        atomic_store(&stop, 1);
        pthread_kill(main_thread, SIGUSR1);
    }
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static long parse_long(const char *what, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end)
        usage_error("%s: %s is not an integer", what, s);
    if (v < lo || v > hi)
        usage_error("%s: %ld is outside %ld..%ld", what, v, lo, hi);
    return v;
}

/* "0,2,5" -> cpus; the Python side has already checked them against the
 * online CPUs, this only refuses what cannot be a CPU number. */
static int parse_cpus(const char *what, const char *s, int *out)
{
    int n = 0;
    char *copy = strdup(s), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == MAX_TASKS)
            usage_error("%s: more than %d CPUs", what, MAX_TASKS);
        out[n++] = (int)parse_long(what, tok, 0, CPU_SETSIZE - 1);
    }
    free(copy);
    if (n == 0)
        usage_error("%s: no CPU given", what);
    return n;
}

static void pin_self(int cpu, const char *who, int index)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0) {
        fail("cannot pin %s %d to CPU %d: %s (offline, or outside this process's "
             "cpuset)", who, index, cpu, strerror(errno));
        return;
    }
    /* sched_setaffinity() migrates the calling thread before it returns */
    if (sched_getcpu() != cpu)
        fail("%s %d runs on CPU %d after pinning it to CPU %d", who, index, sched_getcpu(),
             cpu);
}

static void no_huge_pages(void *addr, size_t len)
{
    /* EINVAL where THP is not configured: then there is nothing to refuse */
    if (madvise(addr, len, MADV_NOHUGEPAGE) != 0 && errno != EINVAL)
        fail("madvise(MADV_NOHUGEPAGE): %s", strerror(errno));
}

static inline void bump(struct task *t, uint64_t by)
{
    /* one writer per slot: a relaxed load and store, no locked RMW */
    uint64_t v = atomic_load_explicit(&t->slot->iterations, memory_order_relaxed);
    atomic_store_explicit(&t->slot->iterations, v + by, memory_order_relaxed);
}

static inline int stopping(void)
{
    return atomic_load_explicit(&stop, memory_order_relaxed);
}

/* ----------------------------------------------------------- workloads */

static int temp_file(size_t size)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/tlbperf-runner.XXXXXX", opt.tmpdir);
    int fd = mkstemp(path);
    if (fd < 0) {
        fail("cannot create a temporary file in %s: %s", opt.tmpdir, strerror(errno));
        return -1;
    }
    unlink(path);
    if (ftruncate(fd, (off_t)size) != 0) {
        fail("cannot size a temporary file in %s to %zu bytes: %s", opt.tmpdir, size,
             strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* tlb_flush1/2/3: touch, DONTNEED, check, one iteration per page */
static void tlb_flush_loop(struct task *t)
{
    int anon = opt.workload == W_TLB_FLUSH2;
    int shared = opt.workload == W_TLB_FLUSH3;
    size_t size = anon ? ANON_FLUSH2_BYTES : (size_t)opt.file_mb << 20;
    char expect = shared ? 1 : 0;
    int fd = anon ? -1 : temp_file(size);
    int flags = (shared ? MAP_SHARED : MAP_PRIVATE) | (anon ? MAP_ANONYMOUS : 0);

    pthread_barrier_wait(&start_line);
    if (!anon && fd < 0)
        return;
    while (!stopping()) {
        char *addr = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, fd, 0);
        if (addr == MAP_FAILED) {
            fail("%s: mmap of %zu bytes: %s", workload_names[opt.workload], size,
                 strerror(errno));
            return;
        }
        if (anon)
            no_huge_pages(addr, size);
        for (size_t off = 0; off < size && !stopping(); off += (size_t)page_size) {
            volatile char *p = addr + off;
            *p = 1;
            if (madvise(addr + off, (size_t)page_size, MADV_DONTNEED) != 0) {
                fail("%s: madvise(MADV_DONTNEED): %s", workload_names[opt.workload],
                     strerror(errno));
                return;
            }
            if (*p != expect) {
                fail("%s: thread %d read %d after MADV_DONTNEED, expected %d",
                     workload_names[opt.workload], t->index, *p, expect);
                return;
            }
            bump(t, 1);
        }
        munmap(addr, size);
    }
}

/* seed 002: madvise(MADV_DONTNEED) of the thread's page, then a write */
static void madvise_loop(struct task *t)
{
    char *page = shared_region + (size_t)t->index * MADVISE_STRIDE_PAGES * (size_t)page_size;
    volatile char *p = page;
    pthread_barrier_wait(&start_line);
    *p = 1;
    while (!stopping()) {
        if (madvise(page, (size_t)page_size, MADV_DONTNEED) != 0) {
            fail("madvise_dontneed: madvise(MADV_DONTNEED): %s", strerror(errno));
            return;
        }
        *p = 1;
        bump(t, 1);
    }
}

/* map, touch the 2 MiB-aligned middle, read the shared hot set, unmap */
static void munmap_storm_loop(struct task *t)
{
    volatile char sink = 0;
    pthread_barrier_wait(&start_line);
    while (!stopping()) {
        char *addr = mmap(NULL, STORM_MAP_BYTES, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (addr == MAP_FAILED) {
            fail("munmap_storm: mmap of 4 MiB: %s", strerror(errno));
            return;
        }
        no_huge_pages(addr, STORM_MAP_BYTES);
        uintptr_t middle = ((uintptr_t)addr + STORM_PMD_BYTES - 1) & ~(STORM_PMD_BYTES - 1);
        for (int i = 0; i < STORM_TOUCH_PAGES; i++)
            ((volatile char *)middle)[(size_t)i * (size_t)page_size] = 1;
        for (int i = 0; i < HOT_PAGES; i++)
            sink += ((volatile char *)shared_region)[(size_t)i * (size_t)page_size];
        if (munmap(addr, STORM_MAP_BYTES) != 0) {
            fail("munmap_storm: munmap: %s", strerror(errno));
            return;
        }
        bump(t, 1);
    }
    (void)sink;
}

static void pipe_byte(int fd, int write_it, const char *what)
{
    char c = 0;
    ssize_t r;
    do {
        r = write_it ? write(fd, &c, 1) : read(fd, &c, 1);
    } while (r < 0 && errno == EINTR);
    if (r != 1)
        fail("context_switch1: %s: %s", what, r < 0 ? strerror(errno) : "end of file");
}

static void context_switch_task(struct task *t)
{
    pthread_barrier_wait(&start_line);
    while (!stopping() && !atomic_load_explicit(&failed, memory_order_relaxed)) {
        pipe_byte(t->pipe_out, 1, "write to partner");
        pipe_byte(t->pipe_in, 0, "read from partner");
        bump(t, 2);
    }
}

static void context_switch_partner(struct task *t)
{
    pthread_barrier_wait(&start_line);
    for (;;) {
        pipe_byte(t->pipe_in, 0, "partner read");
        pipe_byte(t->pipe_out, 1, "partner write");
    }
}

static void *task_main(void *arg)
{
    struct task *t = arg;
    pin_self(t->cpu, t->index < 0 ? "the partner of pair" : "thread",
             t->index < 0 ? t->pair : t->index);
    if (atomic_load(&failed)) {
        pthread_barrier_wait(&start_line);
        return NULL;
    }
    switch (opt.workload) {
    case W_TLB_FLUSH1: case W_TLB_FLUSH2: case W_TLB_FLUSH3:
        tlb_flush_loop(t);
        break;
    case W_MADVISE_DONTNEED:
        madvise_loop(t);
        break;
    case W_MUNMAP_STORM:
        munmap_storm_loop(t);
        break;
    case W_CONTEXT_SWITCH1:
        if (t->index < 0)
            context_switch_partner(t);
        else
            context_switch_task(t);
        break;
    default:
        break;
    }
    return NULL;
}

/* ---------------------------------------------------------- counters */

enum { PERF_DTLB, PERF_FAULTS, NPERF };
static const char *const perf_names[NPERF] = { "dtlb_misses", "page_faults" };
static int perf_fd[NPERF] = { -1, -1 };
static int perf_errno[NPERF];
static int perf_user_only[NPERF];

/* Opened on the main thread before any worker exists, with `inherit`: the
 * workers' counts are summed into this fd (perf_event_read_value() walks
 * child_list). Where perf_event_paranoid forbids counting the kernel,
 * count user space only and say so. */
static void perf_open(int which, uint32_t type, uint64_t config)
{
    struct perf_event_attr a;
    memset(&a, 0, sizeof(a));
    a.size = sizeof(a);
    a.type = type;
    a.config = config;
    a.inherit = 1;
    a.exclude_hv = 1;
    int fd = (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
    if (fd < 0 && (errno == EACCES || errno == EPERM)) {
        a.exclude_kernel = 1;
        fd = (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
        if (fd >= 0)
            perf_user_only[which] = 1;
    }
    perf_fd[which] = fd;
    perf_errno[which] = fd < 0 ? errno : 0;
}

static uint64_t perf_read(int which)
{
    uint64_t v = 0;
    if (perf_fd[which] >= 0 && read(perf_fd[which], &v, sizeof(v)) != (ssize_t)sizeof(v))
        return 0;
    return v;
}

/* Some lines of a /proc file, raw: the Python side parses them
 * (pytest_tlbperf/host/procfs.py). From /proc/interrupts the header and the
 * CAL, TLB and RES rows -- on a big machine the whole file is hundreds of
 * KiB; from /proc/stat the cpu lines (steal time: what the hypervisor took
 * from each vCPU). */
static int wanted_line(const char *path, const char *label, int first)
{
    if (!strcmp(path, "/proc/stat"))
        return !strncmp(label, "cpu", 3);
    return first || !strncmp(label, "CAL:", 4) || !strncmp(label, "TLB:", 4) ||
           !strncmp(label, "RES:", 4);
}

static char *proc_lines(const char *path)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || !buf) {
        if (fd >= 0)
            close(fd);
        free(buf);
        return NULL;
    }
    for (;;) {
        if (len + 4096 > cap) {
            char *bigger = realloc(buf, cap *= 2);
            if (!bigger) {
                free(buf);
                close(fd);
                return NULL;
            }
            buf = bigger;
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = 0;
    char *out = malloc(len + 1), *w = out;
    if (!out) {
        free(buf);
        return NULL;
    }
    int first = 1;
    for (char *line = buf; *line;) {
        char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) + 1 : strlen(line);
        const char *label = line;
        while (*label == ' ')
            label++;
        if (wanted_line(path, label, first)) {
            memcpy(w, line, n);
            w += n;
        }
        first = 0;
        line += n;
    }
    *w = 0;
    free(buf);
    return out;
}

struct boundary {
    uint64_t t_ns;
    uint64_t *iterations;
    long nvcsw, nivcsw, minflt, majflt;
    uint64_t cpu_ns;                    /* user + system time of all threads */
    uint64_t perf[NPERF];
    char *interrupts, *stat;
};

static struct boundary *boundaries;
static int nboundaries;

static void sample(struct slot *slots)
{
    struct boundary *b = &boundaries[nboundaries];
    b->t_ns = now_ns();
    for (int i = 0; i < opt.ntasks; i++)
        b->iterations[i] = atomic_load_explicit(&slots[i].iterations, memory_order_relaxed);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    b->nvcsw = ru.ru_nvcsw;
    b->nivcsw = ru.ru_nivcsw;
    b->minflt = ru.ru_minflt;
    b->majflt = ru.ru_majflt;
    b->cpu_ns = (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ULL +
                (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ULL;
    for (int k = 0; k < NPERF; k++)
        b->perf[k] = perf_read(k);
    b->interrupts = proc_lines("/proc/interrupts");
    b->stat = proc_lines("/proc/stat");
    nboundaries++;
}

/* ------------------------------------------------------------- output */

static void json_string(const char *s)
{
    putchar('"');
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void json_ints(const int *v, int n)
{
    putchar('[');
    for (int i = 0; i < n; i++)
        printf("%s%d", i ? "," : "", v[i]);
    putchar(']');
}

static void print_run(int interrupted)
{
    printf("{\"format\":\"tlbperf-runner\",\"version\":%d,\"workload\":", RUNNER_VERSION);
    json_string(workload_names[opt.workload]);
    printf(",\"tasks\":%d,\"cpus\":", opt.ntasks);
    json_ints(opt.cpus, opt.ntasks);
    printf(",\"partners\":");
    json_ints(opt.partners, opt.npartners);
    printf(",\"warmup_ms\":%ld,\"window_ms\":%ld,\"windows\":%ld,\"file_mb\":%ld,"
           "\"page_size\":%ld,\"interrupted\":%s,\"perf\":{",
           opt.warmup_ms, opt.window_ms, opt.windows, opt.file_mb, page_size,
           interrupted ? "true" : "false");
    for (int k = 0; k < NPERF; k++)
        printf("%s\"%s\":{\"ok\":%s,\"errno\":%d,\"user_only\":%s}", k ? "," : "",
               perf_names[k], perf_fd[k] >= 0 ? "true" : "false", perf_errno[k],
               perf_user_only[k] ? "true" : "false");
    printf("},\"boundaries\":[");
    for (int i = 0; i < nboundaries; i++) {
        struct boundary *b = &boundaries[i];
        printf("%s{\"t_ns\":%llu,\"iterations\":[", i ? "," : "", (unsigned long long)b->t_ns);
        for (int k = 0; k < opt.ntasks; k++)
            printf("%s%llu", k ? "," : "", (unsigned long long)b->iterations[k]);
        printf("],\"nvcsw\":%ld,\"nivcsw\":%ld,\"minflt\":%ld,\"majflt\":%ld,"
               "\"cpu_ns\":%llu,\"perf\":{", b->nvcsw, b->nivcsw, b->minflt, b->majflt,
               (unsigned long long)b->cpu_ns);
        for (int k = 0; k < NPERF; k++)
            printf("%s\"%s\":%llu", k ? "," : "", perf_names[k],
                   (unsigned long long)b->perf[k]);
        printf("},\"interrupts\":");
        if (b->interrupts)
            json_string(b->interrupts);
        else
            fputs("null", stdout);
        printf(",\"stat\":");
        if (b->stat)
            json_string(b->stat);
        else
            fputs("null", stdout);
        putchar('}');
    }
    puts("]}");
    fflush(stdout);
}

/* -------------------------------------------------------------- main */

static sigset_t waited;

/* Sleep until `deadline` (CLOCK_MONOTONIC ns): 0 on time, 1 interrupted
 * (SIGINT/SIGTERM/SIGHUP), -1 a worker failed (SIGUSR1). */
static int wait_until(uint64_t deadline)
{
    for (;;) {
        uint64_t now = now_ns();
        if (now >= deadline)
            return 0;
        uint64_t left = deadline - now;
        struct timespec ts = { (time_t)(left / 1000000000ULL), (long)(left % 1000000000ULL) };
        int sig = sigtimedwait(&waited, NULL, &ts);
        if (sig == SIGUSR1 || atomic_load(&failed))
            return -1;
        if (sig > 0)
            return 1;
        /* EAGAIN: the time is up (checked at the top); EINTR: try again */
    }
}

static int run_workload(void)
{
    int ntasks = opt.ntasks, nthreads = ntasks + opt.npartners;
    struct slot *slots = aligned_alloc(SLOT_BYTES, sizeof(struct slot) * (size_t)ntasks);
    struct task *tasks = calloc((size_t)nthreads, sizeof(struct task));
    boundaries = calloc((size_t)opt.windows + 1, sizeof(struct boundary));
    if (!slots || !tasks || !boundaries) {
        fprintf(stderr, "tlbperf-runner: out of memory\n");
        return 3;
    }
    for (long i = 0; i <= opt.windows; i++)
        if (!(boundaries[i].iterations = calloc((size_t)ntasks, sizeof(uint64_t)))) {
            fprintf(stderr, "tlbperf-runner: out of memory\n");
            return 3;
        }
    memset(slots, 0, sizeof(struct slot) * (size_t)ntasks);

    size_t region = (size_t)(ntasks * MADVISE_STRIDE_PAGES + HOT_PAGES) * (size_t)page_size;
    shared_region = mmap(NULL, region, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                         -1, 0);
    if (shared_region == MAP_FAILED) {
        fprintf(stderr, "tlbperf-runner: mmap of the shared region: %s\n", strerror(errno));
        return 3;
    }
    no_huge_pages(shared_region, region);
    memset(shared_region, 1, region);

    if (opt.perf) {
        perf_open(PERF_DTLB, PERF_TYPE_HW_CACHE,
                  PERF_COUNT_HW_CACHE_DTLB | (PERF_COUNT_HW_CACHE_OP_READ << 8) |
                  (PERF_COUNT_HW_CACHE_RESULT_MISS << 16));
        perf_open(PERF_FAULTS, PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS);
    } else {
        perf_errno[PERF_DTLB] = perf_errno[PERF_FAULTS] = -1;   /* --no-perf */
    }

    if (pthread_barrier_init(&start_line, NULL, (unsigned)nthreads + 1) != 0) {
        fprintf(stderr, "tlbperf-runner: pthread_barrier_init failed\n");
        return 3;
    }
    for (int i = 0; i < ntasks; i++) {
        tasks[i].index = i;
        tasks[i].cpu = opt.cpus[i];
        tasks[i].slot = &slots[i];
    }
    for (int i = 0; i < opt.npartners; i++) {
        int a[2], b[2];
        if (pipe2(a, O_CLOEXEC) != 0 || pipe2(b, O_CLOEXEC) != 0) {
            fprintf(stderr, "tlbperf-runner: pipe: %s\n", strerror(errno));
            return 3;
        }
        struct task *p = &tasks[ntasks + i];
        p->index = -1;
        p->pair = i;
        p->cpu = opt.partners[i];
        tasks[i].pipe_out = a[1];
        p->pipe_in = a[0];
        p->pipe_out = b[1];
        tasks[i].pipe_in = b[0];
    }
    for (int i = 0; i < nthreads; i++) {
        int err = pthread_create(&tasks[i].thread, NULL, task_main, &tasks[i]);
        if (err) {
            fprintf(stderr, "tlbperf-runner: cannot create thread %d of %d: %s\n", i + 1,
                    nthreads, strerror(err));
            return 3;
        }
    }
    pthread_barrier_wait(&start_line);
    if (atomic_load(&failed)) {
        fprintf(stderr, "tlbperf-runner: %s\n", failure);
        return 3;
    }

    uint64_t t0 = now_ns();
    int how = wait_until(t0 + (uint64_t)opt.warmup_ms * 1000000ULL);
    if (how == 0)
        sample(slots);
    for (long k = 1; how == 0 && k <= opt.windows; k++) {
        how = wait_until(t0 + (uint64_t)(opt.warmup_ms + k * opt.window_ms) * 1000000ULL);
        if (how == 0)
            sample(slots);
    }
    atomic_store(&stop, 1);
    if (how < 0 || atomic_load(&failed)) {
        fprintf(stderr, "tlbperf-runner: %s\n", failure);
        return 3;
    }
    print_run(how == 1);
    return how == 1 ? 130 : 0;
}

/* --------------------------------------------------------------- costs */

/* Costs are timed in CPU time, not wall time: on a shared machine a batch
 * is preempted, and the time other tasks ran is not this path's cost. A
 * KVM guest's steal time is left out too (update_rq_clock_task()). */
static uint64_t cpu_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

#define THREAD_NS() cpu_ns(CLOCK_THREAD_CPUTIME_ID)

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define BATCHES 7

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return v[n / 2];
}

static double cost_syscall(void)
{
    double v[BATCHES];
    const int n = 100000;
    for (int b = 0; b < BATCHES; b++) {
        uint64_t t = THREAD_NS();
        for (int i = 0; i < n; i++)
            syscall(SYS_getppid);
        v[b] = (double)(THREAD_NS() - t) / n;
    }
    return median(v, BATCHES);
}

/* write faults on fresh anonymous pages: exception, allocation, clearing
 * 4 KiB, PTE install -- what a profile's page_fault_cycles stands for */
static double cost_page_fault(void)
{
    double v[BATCHES];
    const size_t pages = 2048;
    for (int b = 0; b < BATCHES; b++) {
        size_t len = pages * (size_t)page_size;
        char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return -1;
        no_huge_pages(m, len);
        uint64_t t = THREAD_NS();
        for (size_t i = 0; i < pages; i++)
            ((volatile char *)m)[i * (size_t)page_size] = 1;
        v[b] = (double)(THREAD_NS() - t) / (double)pages;
        munmap(m, len);
    }
    return median(v, BATCHES);
}

static double cost_madvise_touch(void)
{
    double v[BATCHES];
    const int n = 20000;
    char *m = mmap(NULL, (size_t)page_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return -1;
    volatile char *p = m;
    *p = 1;
    for (int b = 0; b < BATCHES; b++) {
        uint64_t t = THREAD_NS();
        for (int i = 0; i < n; i++) {
            madvise(m, (size_t)page_size, MADV_DONTNEED);
            *p = 1;
        }
        v[b] = (double)(THREAD_NS() - t) / n;
    }
    munmap(m, (size_t)page_size);
    return median(v, BATCHES);
}

static atomic_int spinning, spin_stop;

static void *spinner(void *arg)
{
    pin_self(*(int *)arg, "spinner", 0);
    atomic_store(&spinning, 1);
    while (!atomic_load_explicit(&spin_stop, memory_order_relaxed))
        ;
    return NULL;
}

#define MEMBARRIER_CALLS 5000

static double cost_membarrier(void)
{
    double v[BATCHES];
    const int n = MEMBARRIER_CALLS;
    for (int b = 0; b < BATCHES; b++) {
        uint64_t t = THREAD_NS();
        for (int i = 0; i < n; i++)
            if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0)
                return -1;
        v[b] = (double)(THREAD_NS() - t) / n;
    }
    return median(v, BATCHES);
}

struct pingpong { int in, out, cpu; };

static void *pong(void *arg)
{
    struct pingpong *p = arg;
    pin_self(p->cpu, "pong", 0);
    char c;
    while (read(p->in, &c, 1) == 1 && write(p->out, &c, 1) == 1)
        ;
    return NULL;
}

/* a pipe round trip between two threads on one CPU: two context
 * switches, two writes, two reads (the CPU time of both threads) */
static double cost_pipe_round_trip(int cpu)
{
    int a[2], b[2];
    if (pipe(a) || pipe(b))
        return -1;
    struct pingpong p = { a[0], b[1], cpu };
    pthread_t th;
    if (pthread_create(&th, NULL, pong, &p))
        return -1;
    double v[BATCHES];
    const int n = 5000;
    char c = 0;
    for (int b_ = 0; b_ < BATCHES; b_++) {
        uint64_t t = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
        for (int i = 0; i < n; i++)
            if (write(a[1], &c, 1) != 1 || read(b[0], &c, 1) != 1)
                return -1;
        v[b_] = (double)(cpu_ns(CLOCK_PROCESS_CPUTIME_ID) - t) / n;
    }
    close(a[1]);
    pthread_join(th, NULL);
    close(a[0]);
    close(b[0]);
    close(b[1]);
    return median(v, BATCHES);
}

static int run_costs(void)
{
    int here = opt.cpus[0], there = opt.ntasks > 1 ? opt.cpus[1] : -1;
    pin_self(here, "costs", 0);
    if (atomic_load(&failed)) {
        fprintf(stderr, "tlbperf-runner: %s\n", failure);
        return 3;
    }
    double syscall_ns = cost_syscall();
    double fault_ns = cost_page_fault();
    double madvise_ns = cost_madvise_touch();
    double pipe_ns = cost_pipe_round_trip(here);
    double mb_self = -1, mb_ipi = -1;
    int mb_errno = 0;
    char *irq_before = NULL, *irq_after = NULL;
    char *stat_before = proc_lines("/proc/stat");
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) != 0) {
        mb_errno = errno;
    } else {
        mb_self = cost_membarrier();          /* no other thread of this mm runs */
        if (there >= 0) {
            pthread_t th;
            if (pthread_create(&th, NULL, spinner, &there) == 0) {
                while (!atomic_load(&spinning) && !atomic_load(&failed))
                    ;
                /* the CAL count of the remote CPU says how many calls did
                 * send an IPI: none while another task ran there */
                irq_before = proc_lines("/proc/interrupts");
                mb_ipi = atomic_load(&failed) ? -1 : cost_membarrier();
                irq_after = proc_lines("/proc/interrupts");
                atomic_store(&spin_stop, 1);
                pthread_join(th, NULL);
            }
        }
    }
    if (atomic_load(&failed)) {
        fprintf(stderr, "tlbperf-runner: %s\n", failure);
        return 3;
    }
    char *stat_after = proc_lines("/proc/stat");
    printf("{\"format\":\"tlbperf-runner-costs\",\"version\":%d,\"cpu\":%d,\"remote_cpu\":%d,"
           "\"syscall_ns\":%.1f,\"page_fault_ns\":%.1f,\"madvise_touch_ns\":%.1f,"
           "\"pipe_round_trip_ns\":%.1f,\"membarrier_self_ns\":%.1f,"
           "\"membarrier_ipi_ns\":%.1f,\"membarrier_calls\":%d,\"membarrier_errno\":%d",
           RUNNER_VERSION, here, there, syscall_ns, fault_ns, madvise_ns, pipe_ns, mb_self,
           mb_ipi, MEMBARRIER_CALLS * BATCHES, mb_errno);
    const char *names[] = { "interrupts_before", "interrupts_after", "stat_before",
                            "stat_after" };
    char *texts[] = { irq_before, irq_after, stat_before, stat_after };
    for (int i = 0; i < 4; i++) {
        printf(",\"%s\":", names[i]);
        if (texts[i])
            json_string(texts[i]);
        else
            fputs("null", stdout);
    }
    puts("}");
    return 0;
}

/* --------------------------------------------------------------- cpuid */

static int run_cpuid(void)
{
    unsigned a, b, c, d;
    char vendor[13] = "", hv[13] = "";
    int pcid = 0, invpcid = 0, invlpgb = 0, invlpgb_max = 0, hypervisor = 0;
    long kvm = -1;
    if (__get_cpuid(0, &a, &b, &c, &d)) {
        memcpy(vendor, &b, 4);
        memcpy(vendor + 4, &d, 4);
        memcpy(vendor + 8, &c, 4);
    }
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        pcid = (c >> 17) & 1;                 /* CPUID.01H:ECX.PCID[bit 17] */
        hypervisor = (c >> 31) & 1;           /* CPUID.01H:ECX[bit 31] */
    }
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d))
        invpcid = (b >> 10) & 1;              /* CPUID.(07H,0):EBX.INVPCID[bit 10] */
    if (__get_cpuid(0x80000008, &a, &b, &c, &d) && !strcmp(vendor, "AuthenticAMD")) {
        invlpgb = (b >> 3) & 1;               /* Fn8000_0008_EBX[3] INVLPGB */
        invlpgb_max = invlpgb ? (int)(d & 0xffff) + 1 : 0;
    }
    if (hypervisor) {
        __cpuid(0x40000000, a, b, c, d);
        memcpy(hv, &b, 4);
        memcpy(hv + 4, &c, 4);
        memcpy(hv + 8, &d, 4);
        if (!strcmp(hv, "KVMKVMKVM") && a >= 0x40000001) {
            __cpuid(0x40000001, a, b, c, d);
            kvm = (long)a;
        }
    }
    printf("{\"format\":\"tlbperf-runner-cpuid\",\"version\":%d,\"vendor\":", RUNNER_VERSION);
    json_string(vendor);
    printf(",\"pcid\":%s,\"invpcid\":%s,\"invlpgb\":%s,\"invlpgb_max_pages\":%d,"
           "\"hypervisor\":%s,\"hypervisor_signature\":", pcid ? "true" : "false",
           invpcid ? "true" : "false", invlpgb ? "true" : "false", invlpgb_max,
           hypervisor ? "true" : "false");
    json_string(hv);
    if (kvm >= 0)
        printf(",\"kvm_pv_tlb_flush\":%s,\"kvm_steal_time\":%s,\"kvm_pv_send_ipi\":%s",
               (kvm >> KVM_FEATURE_PV_TLB_FLUSH) & 1 ? "true" : "false",
               (kvm >> KVM_FEATURE_STEAL_TIME) & 1 ? "true" : "false",
               (kvm >> KVM_FEATURE_PV_SEND_IPI) & 1 ? "true" : "false");
    puts("}");
    return 0;
}

/* ---------------------------------------------------------------- args */

static void usage(void)
{
    fputs("usage: tlbperf-runner WORKLOAD --cpus LIST [--partners LIST] [--warmup-ms N]\n"
          "                      [--window-ms N] [--windows N] [--file-mb N] [--tmpdir DIR]\n"
          "                      [--no-perf]\n"
          "       tlbperf-runner costs --cpus CPU[,REMOTE_CPU]\n"
          "       tlbperf-runner cpuid\n"
          "WORKLOAD: tlb_flush1 tlb_flush2 tlb_flush3 context_switch1 madvise_dontneed "
          "munmap_storm\n", stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    page_size = sysconf(_SC_PAGESIZE);
    main_thread = pthread_self();
    opt.tmpdir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    if (argc < 2)
        usage();
    const char *mode = argv[1];
    if (!strcmp(mode, "cpuid"))
        return run_cpuid();
    int costs = !strcmp(mode, "costs");
    if (!costs) {
        for (int w = 0; w < W_NONE; w++)
            if (!strcmp(mode, workload_names[w]))
                opt.workload = (enum workload)w;
        if (opt.workload == W_NONE)
            usage_error("unknown workload %s", mode);
    }
    int ncpus = 0;
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(arg, "--no-perf")) {
            opt.perf = 0;
            continue;
        }
        if (!val)
            usage_error("%s needs a value", arg);
        i++;
        if (!strcmp(arg, "--cpus"))
            ncpus = parse_cpus("--cpus", val, opt.cpus);
        else if (!strcmp(arg, "--partners"))
            opt.npartners = parse_cpus("--partners", val, opt.partners);
        else if (!strcmp(arg, "--warmup-ms"))
            opt.warmup_ms = parse_long("--warmup-ms", val, 0, MAX_WARMUP_MS);
        else if (!strcmp(arg, "--window-ms"))
            opt.window_ms = parse_long("--window-ms", val, 1, MAX_WINDOW_MS);
        else if (!strcmp(arg, "--windows"))
            opt.windows = parse_long("--windows", val, 1, MAX_WINDOWS);
        else if (!strcmp(arg, "--file-mb"))
            opt.file_mb = parse_long("--file-mb", val, 1, MAX_FILE_MB);
        else if (!strcmp(arg, "--tmpdir"))
            opt.tmpdir = val;
        else
            usage_error("unknown option %s", arg);
    }
    if (ncpus == 0)
        usage_error("--cpus is required");
    opt.ntasks = ncpus;

    /* Signals: blocked everywhere (threads inherit the mask), taken by the
     * main thread in sigtimedwait(). A parent that dies sends SIGTERM. */
    sigemptyset(&waited);
    sigaddset(&waited, SIGINT);
    sigaddset(&waited, SIGTERM);
    sigaddset(&waited, SIGHUP);
    sigaddset(&waited, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &waited, NULL);
    prctl(PR_SET_PDEATHSIG, SIGTERM);

    if (costs) {
        alarm(120);
        return run_costs();
    }
    if (opt.workload == W_CONTEXT_SWITCH1) {
        if (opt.npartners != opt.ntasks)
            usage_error("context_switch1: --partners must name one CPU per --cpus entry "
                        "(%d given for %d pairs)", opt.npartners, opt.ntasks);
    } else if (opt.npartners) {
        usage_error("--partners is for context_switch1 only");
    }
    /* the watchdog: SIGALRM is not blocked, its default action ends us */
    alarm((unsigned)((opt.warmup_ms + opt.windows * opt.window_ms) / 1000 + WATCHDOG_SLACK_S));
    return run_workload();
}

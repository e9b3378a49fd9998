"""Workload builders (DESIGN §3.8). A builder returns a `Workload`; the engine
compiles it for a profile and a seed into a `Program`: plain op lists per
task, drawn from the seed's *workload* stream only, so every policy run
with the same seed executes the same per-task op sequence.

Each builder's docstring says which kernel behaviour it stresses and which
seed thread it speaks to. Defaults give a quick but meaningful run; every
parameter scales it up.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
from array import array

from .engine import abi
from .engine.prng import STREAM_WORKLOAD, Stream
from .errors import WorkloadError

__all__ = ["Workload", "Program", "TaskSpec", "ProgramBuilder", "TaskBuilder", "custom", "madvise_dontneed", "munmap_storm",
           "kernel_build", "idle_server", "context_switch", "exit_storm", "vm_overcommit",
           "tlb_flush1", "tlb_flush2", "tlb_flush3", "context_switch1", "hackbench",
           "page_reclaim", "BUILDERS"]

REGION = 512   # pages per page-table page (2 MiB)
_COMPILED_MAX = 64     # compiled programs kept (oldest dropped first)
_compiled: dict = {}
HOT_PAGES = 16

# Upper bounds of builder parameters, by parameter name (DEFAULT_LIMIT for a
# name not listed). They keep a run's memory bounded: a builder's program
# grows with its parameters, and the engines allocate per CPU and per page.
# MAX_OPS and MAX_PAGES bound what parameters cannot (their products, custom
# workloads) while the program is built.
PARAM_LIMITS = {"threads": 1 << 16, "cpus": 1 << 16, "workers": 1 << 16,
                "iterations": 1_000_000, "rounds": 1_000_000, "requests": 1_000_000,
                "jobs": 100_000, "processes": 100_000, "regions": 4096}
DEFAULT_LIMIT = 1_000_000
MAX_OPS = 1 << 22          # ops in one program (about 0.5 GB for the python engine)
MAX_PAGES = 1 << 23        # pages of all mm templates together (32 GiB of 4 KiB pages)
MAX_OP_VALUE = 1 << 44     # engine/_native.c MAX_VALUE: any op argument or start time


class TaskSpec:
    """One task: the mm template it runs in (-1: a kernel thread), the CPU it
    starts on, its start time in cycles, its ops (4 ints each) and the CPUs
    it may run on (`affinity`, empty: any), as sched_setaffinity() sets it.
    A compiled workload's ops are an array('q') (`Workload.compile`): 8
    bytes a word where a tuple takes 36, and the programs kept for reuse
    were most of a session's memory (issue 16)."""

    __slots__ = ("mm", "cpu", "start", "ops", "affinity")

    def __init__(self, mm: int, cpu: int, start: int, ops: tuple, affinity: tuple = ()):
        self.mm, self.cpu, self.start, self.ops = mm, cpu, start, ops
        self.affinity = affinity


class Program:
    """A compiled workload: mm templates (pages each), tasks, the number of
    channels (pipes) its tasks block and wake on, and -- for a throughput
    workload -- the measured window: the run stops at `warmup + window`
    (cycles), and counters, flush latencies and iterations are taken inside
    [warmup, warmup + window) only, as will-it-scale samples after its
    warm-up."""

    __slots__ = ("name", "mm_pages", "tasks", "channels", "warmup", "window", "_digest")

    def __init__(self, name: str, mm_pages: list, tasks: list, channels: int = 0,
                 warmup: int = 0, window: int = 0):
        self.name, self.mm_pages, self.tasks = name, mm_pages, tasks
        self.channels, self.warmup, self.window = channels, warmup, window
        self._digest = None

    def digest(self) -> str:
        """sha256 of the program's repr, 16 hex digits: what pairs a saved
        sample with this run's across commits (so its value never changes).
        Computed once per program: a compiled program is immutable and runs
        for every policy of a comparison (repr + sha256 of every op cost
        more than a native run, issue 16)."""
        if self._digest is None:
            h = hashlib.sha256()
            h.update(repr((self.mm_pages, self.channels, self.warmup, self.window)).encode())
            for t in self.tasks:
                h.update(repr((t.mm, t.cpu, t.start, tuple(t.ops), t.affinity)).encode())
            self._digest = h.hexdigest()[:16]
        return self._digest

    def validate(self, profile) -> None:
        if self.warmup < 0 or self.window < 0 or (self.warmup and not self.window):
            raise WorkloadError(f"{self.name}: a measured window needs window > 0 "
                                f"(warmup {self.warmup}, window {self.window} cycles)")
        if _valid(self, profile):
            return
        # something is wrong: go task by task, op by op, to name the first fault
        for i, t in enumerate(self.tasks):
            if not 0 <= t.cpu < profile.cpus:
                raise WorkloadError(f"{self.name}: task {i} starts on cpu{t.cpu}, but "
                                    f"{profile.name} has {profile.cpus} CPUs")
            if t.mm >= len(self.mm_pages):
                raise WorkloadError(f"{self.name}: task {i} names mm template {t.mm}")
            if any(not 0 <= c < profile.cpus for c in t.affinity) or \
                    (t.affinity and t.cpu not in t.affinity) or \
                    len(set(t.affinity)) != len(t.affinity):
                raise WorkloadError(f"{self.name}: task {i} affinity {list(t.affinity)} must "
                                    f"name distinct CPUs of {profile.name} and include its start "
                                    f"cpu{t.cpu}")
            pages = self.mm_pages[t.mm] if t.mm >= 0 else 0
            _check_words(self.name, i, t)
            for pc in range(0, len(t.ops), 4):
                code, a, b = t.ops[pc], t.ops[pc + 1], t.ops[pc + 2]
                where = f"{self.name}: task {i} op {pc // 4} ({abi.OP_NAMES.get(code, code)})"
                if code not in abi.OP_NAMES:
                    raise WorkloadError(f"{where}: unknown op code")
                if code in _PAGE_OPS and not (0 <= a and b >= 0 and a + b <= pages):
                    raise WorkloadError(f"{where}: pages {a}..{a + b} outside the task's "
                                        f"{pages}-page mm")
                if code == abi.OP_RECLAIM:
                    d = t.ops[pc + 3]
                    if not 0 <= d < len(self.mm_pages):
                        raise WorkloadError(f"{where}: names mm template {d}")
                    if not (0 <= a and b >= 0 and a + b <= self.mm_pages[d]):
                        raise WorkloadError(f"{where}: pages {a}..{a + b} outside mm template "
                                            f"{d}'s {self.mm_pages[d]} pages")
                if code == abi.OP_MIGRATE and not 0 <= a < profile.cpus:
                    raise WorkloadError(f"{where}: cpu{a} does not exist on {profile.name}")
                if code in (abi.OP_BLOCK, abi.OP_WAKE) and not 0 <= a < self.channels:
                    raise WorkloadError(f"{where}: channel {a} does not exist (the program "
                                        f"has {self.channels})")
                if code == abi.OP_LOOP and not (self.window and 0 <= a < pc // 4):
                    raise WorkloadError(f"{where}: a loop must jump back to an earlier op and "
                                        f"needs a measured window to end the run")


_PAGE_OPS = (abi.OP_ACCESS, abi.OP_MADVISE, abi.OP_MUNMAP, abi.OP_MPROTECT)


def _valid(program, profile) -> bool:
    """Every check of `Program.validate` passes, the ops checked a column
    at a time over all tasks: the built-in suites compile about three
    million ops, and checking them one by one in Python cost a fifth of a
    session (issue 16). False sends `validate` through the program task by
    task and op by op, to name the first fault as it always has."""
    import numpy as np
    cpus, mm_pages = profile.cpus, program.mm_pages
    pages, counts = [], []
    for t in program.tasks:
        if not 0 <= t.cpu < cpus or t.mm >= len(mm_pages) or len(t.ops) % 4:
            return False
        if any(not 0 <= c < cpus for c in t.affinity) or \
                (t.affinity and t.cpu not in t.affinity) or \
                len(set(t.affinity)) != len(t.affinity):
            return False
        try:
            if type(sum(t.ops, t.start)) is not int or not -MAX_OP_VALUE <= t.start <= \
                    MAX_OP_VALUE or (t.ops and not (-MAX_OP_VALUE <= min(t.ops)
                                                    and max(t.ops) <= MAX_OP_VALUE)):
                return False
        except TypeError:
            return False
        pages.append(mm_pages[t.mm] if t.mm >= 0 else 0)
        counts.append(len(t.ops) // 4)
    total = sum(counts)
    if not total:
        return True
    # words within 2^44: int64 holds them and their sums
    code, a, b, c = np.fromiter(itertools.chain.from_iterable(t.ops for t in program.tasks),
                                dtype=np.int64, count=4 * total).reshape(-1, 4).T
    if not np.isin(code, list(abi.OP_NAMES)).all():
        return False
    page = np.isin(code, _PAGE_OPS)
    limit = np.repeat(np.asarray(pages, dtype=np.int64), counts)
    if (page & ~((a >= 0) & (b >= 0) & (a + b <= limit))).any():
        return False
    reclaim = code == abi.OP_RECLAIM
    if reclaim.any():
        d = c[reclaim]
        if ((d < 0) | (d >= len(mm_pages))).any():
            return False
        ra, rb = a[reclaim], b[reclaim]
        if ((ra < 0) | (rb < 0) | (ra + rb > np.asarray(mm_pages, dtype=np.int64)[d])).any():
            return False
    if ((code == abi.OP_MIGRATE) & ~((a >= 0) & (a < cpus))).any():
        return False
    wake = (code == abi.OP_BLOCK) | (code == abi.OP_WAKE)
    if (wake & ~((a >= 0) & (a < program.channels))).any():
        return False
    loop = code == abi.OP_LOOP
    if loop.any():
        # a loop jumps back to an earlier op of its own task
        index = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        if not program.window or ((a[loop] < 0) | (a[loop] >= index[loop])).any():
            return False
    return True


def _check_words(name, i, task) -> None:
    """Pages, CPUs and cycles are integers (a float page number would index
    a list), none beyond 2^44 (the native engine's MAX_VALUE). Three passes
    in C over the ops (a float makes the sum a float; a non-number makes it
    raise); the Python loop finds the culprit only on error."""
    ops = task.ops
    try:
        ints = type(sum(ops, task.start)) is int
    except TypeError:
        ints = False
    if ints and (not ops or (-MAX_OP_VALUE <= min(ops) and max(ops) <= MAX_OP_VALUE)) \
            and -MAX_OP_VALUE <= task.start <= MAX_OP_VALUE:
        return
    words = (task.start,) + tuple(ops)
    bad = next(j for j, v in enumerate(words)
               if not isinstance(v, int) or not -MAX_OP_VALUE <= v <= MAX_OP_VALUE)
    what = "its start" if bad == 0 else \
        f"op {(bad - 1) // 4} ({abi.OP_NAMES.get(ops[(bad - 1) // 4 * 4], '?')})"
    raise WorkloadError(f"{name}: task {i} {what}: {words[bad]!r} is not an integer within "
                        f"2^44")


class TaskBuilder:
    """Records one task's ops; times are given in ns/us and stored in cycles."""

    def __init__(self, builder, mm, cpu, start, affinity=()):
        self.b, self.mm, self.cpu, self.start = builder, mm, cpu, start
        self.affinity = tuple(affinity)
        self.ops = []

    def _op(self, code, a=0, b=0, c=0):
        self.ops += (code, a, b, c)
        if len(self.ops) > 4 * MAX_OPS:     # ProgramBuilder.task() bounds the sum
            self.b.too_many_ops()
        return self

    def access(self, page, npages=1, write=True, file=False, shared=False):
        """Touch pages; a page not present faults (a file-backed mapping's
        fault goes through the page cache and costs file_fault_cycles). A
        write fault allocates a folio -- anonymous, or the COW copy of a
        private file page -- that goes onto the LRU; a shared mapping's
        page is the page-cache folio itself."""
        return self._op(abi.OP_ACCESS, page, npages,
                        int(write) | (2 if file else 0) | (4 if shared else 0))

    def compute_us(self, us):
        return self._op(abi.OP_COMPUTE, self.b.cycles(us * 1000))

    def compute_ns(self, ns):
        return self._op(abi.OP_COMPUTE, self.b.cycles(ns))

    def madvise(self, page, npages=1):
        return self._op(abi.OP_MADVISE, page, npages)

    def munmap(self, page, npages, free_tables=True):
        return self._op(abi.OP_MUNMAP, page, npages, int(free_tables))

    def mprotect(self, page, npages=1):
        return self._op(abi.OP_MPROTECT, page, npages)

    def sleep_us(self, us):
        return self._op(abi.OP_SLEEP, self.b.cycles(us * 1000))

    def yield_(self):
        return self._op(abi.OP_YIELD)

    def migrate(self, cpu):
        return self._op(abi.OP_MIGRATE, cpu)

    def mark(self):
        return self._op(abi.OP_MARK)

    def reclaim(self, mm, page, npages):
        """Reclaim (kswapd, try_to_unmap with a batched flush) unmaps `npages`
        of mm template `mm` from `page` on: one arch_tlbbatch_flush()."""
        return self._op(abi.OP_RECLAIM, page, npages, mm)

    def membarrier(self):
        return self._op(abi.OP_MEMBARRIER)

    def exit(self):
        return self._op(abi.OP_EXIT)

    def block(self, channel):
        """read(2) one byte from a pipe: sleep until a writer has put one there."""
        return self._op(abi.OP_BLOCK, channel)

    def wake(self, channel):
        """write(2) one byte to a pipe, waking its first sleeping reader."""
        return self._op(abi.OP_WAKE, channel)

    def here(self) -> int:
        """The index of the next op, for `loop`."""
        return len(self.ops) // 4

    def loop(self, to: int):
        """Jump back to op `to` (from `here()`): the task runs until the
        measured window ends."""
        return self._op(abi.OP_LOOP, to)


class ProgramBuilder:
    """What a build function gets: `mm(npages)` makes an mm template,
    `task(mm, cpu, start_us)` / `kthread(cpu, start_us)` a task to fill with
    ops, `rng` is the seed's workload stream."""

    def __init__(self, name, profile, seed):
        self.name, self.profile = name, profile
        self.rng = Stream(seed, STREAM_WORKLOAD)
        self.mm_pages = []
        self.tasks = []
        self._ops = []          # each task's op list, for MAX_OPS
        self.channels = 0
        self.warmup = self.window = 0

    def cycles(self, ns):
        return self.profile.cycles_from_ns(int(ns))

    def mm(self, npages):
        if isinstance(npages, bool) or not isinstance(npages, int) or npages < 0:
            raise WorkloadError(f"{self.name}: mm({npages!r}): pages must be an integer "
                                f">= 0")
        if sum(self.mm_pages) + npages > MAX_PAGES:
            raise WorkloadError(f"{self.name}: mm({npages}) makes {sum(self.mm_pages) + npages} "
                                f"pages in all mms, more than the {MAX_PAGES} a program may "
                                f"have")
        self.mm_pages.append(npages)
        return len(self.mm_pages) - 1

    def too_many_ops(self):
        raise WorkloadError(f"{self.name}: more than {MAX_OPS} ops in one program, the limit "
                            f"that keeps a run's memory bounded; use smaller parameters")

    def task(self, mm, cpu, start_us=0, affinity=()):
        if sum(map(len, self._ops)) > 4 * MAX_OPS:
            self.too_many_ops()
        t = TaskBuilder(self, mm, cpu, self.cycles(start_us * 1000), affinity)
        self.tasks.append(t)
        self._ops.append(t.ops)
        return t

    def kthread(self, cpu, start_us=0):
        return self.task(-1, cpu, start_us)

    def channel(self) -> int:
        """A new pipe (or futex word) for tasks to block and wake on."""
        self.channels += 1
        return self.channels - 1

    def measure(self, warmup_us, window_us):
        """Make this a throughput workload: warm up for `warmup_us`, then
        count iterations (marks) for `window_us` of simulated time."""
        self.warmup = self.cycles(warmup_us * 1000)
        self.window = self.cycles(window_us * 1000)

    def program(self):
        return Program(self.name, list(self.mm_pages),
                       [TaskSpec(t.mm, t.cpu, t.start, tuple(t.ops), t.affinity)
                        for t in self.tasks],
                       self.channels, self.warmup, self.window)


class Workload:
    """A named, parametrized workload. `compile(profile, seed)` gives the op
    program the engines run."""

    __slots__ = ("name", "params", "_build")

    def __init__(self, name, build, params):
        self.name, self._build, self.params = name, build, dict(params)

    def compile(self, profile, seed: int) -> Program:
        key = self.program_key(profile, seed)
        program = _compiled.get(key) if key is not None else None
        if program is None:
            b = ProgramBuilder(self.name, profile, seed)
            try:
                self._build(b, profile, **self.params)
            except WorkloadError:
                raise
            except Exception as exc:   # a custom build function's bug, named
                raise WorkloadError(f"workload {self!r}: building it for {profile.name} "
                                    f"raised {type(exc).__name__}: {exc}") from exc
            program = b.program()
            program.validate(profile)
            for t in program.tasks:         # validated: every word fits in int64
                t.ops = array("q", t.ops)
            if key is not None:
                _compiled[key] = program
                if len(_compiled) > _COMPILED_MAX:
                    del _compiled[next(iter(_compiled))]
        return program

    def program_key(self, profile, seed):
        """What the compiled program is a function of -- (builder, params,
        profile, seed) -- or None when that cannot be a key (a custom
        workload with unhashable parameters). Programs are immutable:
        every policy of a comparison reuses one compile."""
        key = (self.name, self._build, tuple(sorted(self.params.items())), profile.digest,
               seed)
        try:
            hash(key)
        except TypeError:          # a custom workload with unhashable parameters
            return None
        return key

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(self.params.items()))
        return f"{self.name}({args})"

    def __eq__(self, other):
        return isinstance(other, Workload) and (self.name, self.params) == (other.name,
                                                                              other.params)

    def __hash__(self):
        return hash((self.name, tuple(sorted(self.params.items()))))


def check_params(builder: str, **values) -> None:
    """A builder's parameters, checked where it is called: each is an int
    (not a bool or a float) from 1 to its PARAM_LIMITS bound, or None where
    the builder's own default is None ("as many as the profile has").

        def my_storm(threads: int = 4, iterations: int = 40) -> Workload:
            check_params("my_storm", threads=threads, iterations=iterations)
    """
    fn = globals().get(builder)
    defaults = {} if fn is None else {
        k: v.default for k, v in inspect.signature(fn).parameters.items()}
    for key, value in values.items():
        if value is None and key in defaults and defaults[key] is None:
            continue
        limit = PARAM_LIMITS.get(key, DEFAULT_LIMIT)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
            raise WorkloadError(f"{builder}: {key} must be an integer from 1 to {limit}, "
                                f"got {value!r}")


_positive = check_params


def _cpus(name, profile, wanted, default_cap):
    n = min(profile.cpus, default_cap) if wanted is None else wanted
    if n > profile.cpus:
        raise WorkloadError(f"{name}: asks for {n} CPUs, {profile.name} has {profile.cpus}")
    return n


def custom(name: str, build, **params) -> Workload:
    """A workload of your own: `build(b, profile, **params)` fills the
    ProgramBuilder `b`. Draw every random choice from `b.rng` so a seed
    fixes the workload for every policy.

        def pingpong(b, profile, rounds):
            mm = b.mm(512)
            for cpu in (0, 1):
                t = b.task(mm, cpu)
                for _ in range(rounds):
                    t.access(cpu * 8).madvise(cpu * 8)
        w = tp.workloads.custom("pingpong", pingpong, rounds=10)
    """
    if not callable(build):
        raise WorkloadError(f"custom workload {name!r}: build must be callable")
    return Workload(name, build, params)


# --------------------------------------------------------------------- builders

def madvise_dontneed(threads: int = 2, iterations: int = 200) -> Workload:
    """Seed 002's microbenchmark: each of `threads` threads of one process,
    on its own core, loops madvise(MADV_DONTNEED) of one page and a touch
    that faults it back in. Every madvise flushes one page on every other
    thread's CPU, so the per-iteration time (`madvise_ns`) is the flush
    round trip plus the IPIs the other threads send. It is the calibration
    workload of `haswell-4c` and what concurrent and async flushing speed up."""
    _positive("madvise_dontneed", threads=threads, iterations=iterations)
    return Workload("madvise_dontneed", _madvise_dontneed, {"threads": threads, "iterations": iterations})


def _madvise_dontneed(b, profile, threads, iterations):
    if threads > profile.cores:
        raise WorkloadError(f"madvise_dontneed: {threads} threads need {threads} cores, "
                            f"{profile.name} has {profile.cores}")
    mm = b.mm(REGION)
    for i in range(threads):
        page = 8 * i
        t = b.task(mm, i, start_us=b.rng.below(4000) / 1000)  # cpu i: core i
        t.access(page).mark()
        for _ in range(iterations):
            t.madvise(page).access(page).mark()


def munmap_storm(threads: int = 4, iterations: int = 40, regions: int = 4) -> Workload:
    """Threads of one process share `regions` 2 MiB regions: they touch
    windows of shared pages, madvise parts away and munmap whole regions
    (freeing their page tables) while siblings sleep and go lazy. It stresses
    flushes with freed tables, lazy CPUs in mm_cpumask and stale
    translations of shared pages (the oracle's stale_tlb): seed 002's rule
    that async flushing must not free tables, and seed 001's "propagate
    flushes everywhere that could have references to the flushed range"."""
    _positive("munmap_storm", threads=threads, iterations=iterations, regions=regions)
    return Workload("munmap_storm", _munmap_storm,
                    {"threads": threads, "iterations": iterations, "regions": regions})


def _munmap_storm(b, profile, threads, iterations, regions):
    n = _cpus("munmap_storm", profile, threads, threads)
    # region 0 holds a small hot set every thread reads (shared
    # metadata); the others are the storm's arenas
    mm = b.mm((regions + 1) * REGION)
    rng = b.rng
    for i in range(n):
        t = b.task(mm, i, start_us=rng.below(20))
        for _ in range(iterations):
            region = 1 + rng.below(regions)
            t.access(0, HOT_PAGES, write=False)
            t.access(region * REGION + rng.below(REGION - 8), 8)
            t.compute_us(rng.between(1, 4))
            roll = rng.below(100)
            if roll < 15:
                t.munmap((1 + rng.below(regions)) * REGION, REGION, free_tables=True)
            elif roll < 45:
                t.madvise(region * REGION + rng.below(REGION - 16), rng.between(1, 16))
            elif roll < 55:
                t.mprotect(region * REGION + rng.below(REGION - 4), 4)
            elif roll < 65:
                t.madvise(rng.below(HOT_PAGES), 1)
            if rng.below(100) < 25:
                t.sleep_us(rng.between(5, 60))


def kernel_build(jobs: int = 32, cpus: int | None = None) -> Workload:
    """`make -j`: short-lived single-threaded compiler processes that fault
    in memory, munmap (freeing page tables), block on I/O, get migrated by
    the load balancer and exit, with per-CPU kworkers waking in between.
    CPUs a job left behind stay lazily on its mm. This is the workload of the
    2017 report (seed 000: "hangs when building e.g. perf"): with v4.14-rc1's
    lazy mode those CPUs miss the flush that frees the tables and walk
    through them speculatively."""
    _positive("kernel_build", jobs=jobs, cpus=cpus)
    return Workload("kernel_build", _kernel_build, {"jobs": jobs, "cpus": cpus})


def _kernel_build(b, profile, jobs, cpus):
    n = _cpus("kernel_build", profile, cpus, 16)
    rng = b.rng
    for i in range(jobs):
        mm = b.mm(4 * REGION)
        cpu = rng.below(n)
        t = b.task(mm, cpu, start_us=rng.below(40 * jobs))
        for _ in range(rng.between(2, 4)):
            region = rng.below(4)
            t.access(region * REGION + rng.below(REGION - 64), rng.between(16, 64))
            t.compute_us(rng.between(20, 60))
            roll = rng.below(100)
            if roll < 50:
                t.munmap(rng.below(4) * REGION, REGION, free_tables=True)
            elif roll < 75:
                t.madvise(region * REGION + rng.below(REGION - 32), rng.between(1, 32))
            if rng.below(100) < 40:
                t.sleep_us(rng.between(30, 200))
            if rng.below(100) < 35:
                t.migrate(rng.below(n))
        t.exit()
    for cpu in range(n):
        k = b.kthread(cpu, start_us=rng.below(100))
        for _ in range(jobs // 4 + 2):
            k.sleep_us(rng.between(80, 300)).compute_us(rng.between(2, 8))


def idle_server(workers: int | None = None, requests: int = 30) -> Workload:
    """A request-driven server: one worker thread per CPU sleeps between
    requests long enough for deep C-states, then touches its buffer, works
    and madvises the buffer away (allocator purge); rarely it unmaps a chunk.
    Only exit frees page tables, so lazy CPUs get IPIs on every flush or
    almost never, depending on the policy. Sleeping workers' CPUs are idle *and* lazy on the server's mm, so
    whether flushes IPI lazy CPUs decides how many idle CPUs are woken and
    how long flushes wait for C-state exits (seed 001: "especially on
    systems with deep C states")."""
    _positive("idle_server", workers=workers, requests=requests)
    return Workload("idle_server", _idle_server, {"workers": workers, "requests": requests})


def _idle_server(b, profile, workers, requests):
    n = _cpus("idle_server", profile, workers, 16)
    mm = b.mm((n + 1) * REGION)
    rng = b.rng
    for i in range(n):
        own = (i + 1) * REGION
        t = b.task(mm, i, start_us=rng.below(500))
        for _ in range(requests):
            t.sleep_us(rng.between(200, 2000))
            t.access(rng.below(64), 4, write=False)          # shared state
            buf = own + rng.below(REGION - 16)
            t.access(buf, 8)
            t.compute_us(rng.between(10, 40))
            if rng.below(100) < 60:
                t.madvise(buf, rng.between(1, 8))
            if rng.below(100) < 4:
                # the allocator returns a chunk; its page table stays
                t.munmap(own + rng.below(REGION - 64), 64, free_tables=False)


def context_switch(cpus: int | None = None, warmup_us: int = 100,
                   window_us: int = 400) -> Workload:
    """Every CPU alternates a thread of one big process with a kworker (a
    lazy-TLB switch and back, each time), and every fourth CPU also runs a
    thread of a second process (a real mm switch: PCID/ASID reuse). Thread 0
    madvises every fifth round and unmaps every tenth. It measures what lazy
    mode saves (cr3_writes: seed 000's "switching to init_mm isn't so bad"
    with PCID) and what refcounting lazy mms costs: every lazy switch is an
    mmgrab/mmdrop on the one shared mm_count line (seed 003's hazard pointers
    remove that). A throughput workload: `ops_per_sec` counts the big
    process's rounds inside the window, after `warmup_us`."""
    _positive("context_switch", cpus=cpus, warmup_us=warmup_us, window_us=window_us)
    return Workload("context_switch", _context_switch,
                    {"cpus": cpus, "warmup_us": warmup_us, "window_us": window_us})


def _context_switch(b, profile, cpus, warmup_us, window_us):
    n = _cpus("context_switch", profile, cpus, profile.cpus)
    b.measure(warmup_us, window_us)
    big = b.mm(2 * REGION)
    other = b.mm(REGION)
    rng = b.rng
    for cpu in range(n):
        t = b.task(big, cpu, start_us=rng.below(10))
        k = b.kthread(cpu, start_us=rng.below(10))
        o = b.task(other, cpu, start_us=rng.below(10)) if cpu % 4 == 0 else None
        loops = [x.here() for x in (t, k, o) if x is not None]
        for r in range(10):
            t.access(rng.below(2 * REGION - 4), 4).compute_ns(rng.between(500, 2000))
            if cpu == 0 and r % 5 == 4:
                t.madvise(rng.below(REGION), 2)
                if r == 9:
                    t.munmap(REGION, REGION, free_tables=True)
            t.mark().yield_()
            k.compute_ns(rng.between(300, 1000)).yield_()
            if o is not None:
                o.access(rng.below(REGION - 4), 4).compute_ns(rng.between(500, 1500))
                o.yield_()
        for x, start in zip((t, k, o), loops):
            if x is not None:
                x.loop(start)


def exit_storm(processes: int = 24, threads: int = 4, cpus: int | None = None) -> Workload:
    """Short-lived multi-threaded processes whose threads exit one by one on
    different CPUs: each CPU a thread leaves goes idle, lazily borrowing the
    dying mm, until the last thread's exit_mmap and __mmdrop. Whatever keeps a
    lazily used mm alive (refcount, hazard pointer, shootdown IPIs) is on the
    line here; with no protection (lazy_mm_ref="none") the mm is freed under
    the lazy CPUs (seed 003's question of keeping an mm_struct from being
    freed at an inopportune time)."""
    _positive("exit_storm", processes=processes, threads=threads, cpus=cpus)
    return Workload("exit_storm", _exit_storm,
                    {"processes": processes, "threads": threads, "cpus": cpus})


def _exit_storm(b, profile, processes, threads, cpus):
    n = _cpus("exit_storm", profile, cpus, 16)
    if threads > n:
        raise WorkloadError(f"exit_storm: {threads} threads per process need {threads} "
                            f"CPUs, only {n} are used")
    rng = b.rng
    for p in range(processes):
        mm = b.mm(2 * REGION)
        start = rng.below(30 * processes)
        first = rng.below(n)
        for i in range(threads):
            t = b.task(mm, (first + i) % n, start_us=start + i)
            t.access(rng.below(2 * REGION - 16), 16)
            t.compute_us(rng.between(5, 40) + 10 * i)
            t.exit()


def vm_overcommit(threads: int | None = None, iterations: int = 20) -> Workload:
    """A multi-threaded process in a KVM guest whose vCPUs the host keeps
    preempting: threads madvise and munmap while siblings sleep. An IPI to a
    preempted vCPU waits for the host to run it again (milliseconds) unless
    the KVM PV TLB flush defers that vCPU's flush to its next VM entry (seed
    001: IPI service time "through the roof" for idle and preempted vCPUs)."""
    _positive("vm_overcommit", threads=threads, iterations=iterations)
    return Workload("vm_overcommit", _vm_overcommit, {"threads": threads, "iterations": iterations})


def _vm_overcommit(b, profile, threads, iterations):
    n = _cpus("vm_overcommit", profile, threads, profile.cpus)
    mm = b.mm((n + 1) * REGION)
    rng = b.rng
    for i in range(n):
        own = (i + 1) * REGION
        t = b.task(mm, i, start_us=rng.below(50))
        for _ in range(iterations):
            t.access(own + rng.below(REGION - 8), 8)
            t.compute_us(rng.between(20, 80))
            if rng.below(100) < 50:
                t.madvise(own + rng.below(REGION - 4), rng.between(1, 4))
            elif rng.below(100) < 10:
                t.munmap(own, REGION, free_tables=True)
            if rng.below(100) < 20:
                t.sleep_us(rng.between(100, 500))


# ------------------------------------------------- the benchmarks the field quotes

def _core_affinity(profile, i):
    """will-it-scale's pinning: task i to core i % cores, both SMT threads
    (hwloc's HWLOC_OBJ_CORE cpuset)."""
    core = i % profile.cores
    return tuple(core + k * profile.cores for k in range(profile.smt))


def tlb_flush1(threads: int = 4, warmup_us: int = 100, window_us: int = 400) -> Workload:
    """will-it-scale tests/tlb_flush1.c, threads mode ("TLB flush of separated
    file private mapping"): each of `threads` threads of one process, pinned
    to its own core, loops over its own private file mapping: write a page
    (a COW fault), madvise(MADV_DONTNEED) it (zap + a one-page flush that
    IPIs every other thread's CPU), read it back (a fault) -- one iteration.
    The benchmark of aa44284960d5, calibrated against its table on
    skylake-2s (`tlbperf calibrate`). Leaves out: the 128 MB mapping is a
    2 MiB one swept repeatedly, so its munmap every 32768 pages (0.2 s at one
    thread, outside any window the model runs) never happens; both faults are
    charged the profile's file_fault_cycles, whatever the page-cache work."""
    _positive("tlb_flush1", threads=threads, warmup_us=warmup_us, window_us=window_us)
    return Workload("tlb_flush1", _tlb_flush1,
                    {"threads": threads, "warmup_us": warmup_us, "window_us": window_us})


def tlb_flush2(threads: int = 4, warmup_us: int = 100, window_us: int = 400) -> Workload:
    """will-it-scale tests/tlb_flush2.c, threads mode ("TLB flush of anonymous
    memory private mapping"): as tlb_flush1 on a private anonymous 1 MB
    mapping, which every 256 pages is munmapped and mapped again. The
    benchmark of van Riel's INVLPGB series on milan-36c."""
    _positive("tlb_flush2", threads=threads, warmup_us=warmup_us, window_us=window_us)
    return Workload("tlb_flush2", _tlb_flush2,
                    {"threads": threads, "warmup_us": warmup_us, "window_us": window_us})


def tlb_flush3(threads: int = 4, warmup_us: int = 100, window_us: int = 400) -> Workload:
    """will-it-scale tests/tlb_flush3.c, threads mode ("TLB flush of separated
    file shared mapping"): as tlb_flush1 on a shared file mapping (the read
    after the madvise finds the page-cache page again). It differs from
    tlb_flush1 in the LRU: the write maps the page-cache folio instead of
    allocating a COW copy, so nothing goes through the per-CPU LRU batch;
    both charge file_fault_cycles per fault."""
    _positive("tlb_flush3", threads=threads, warmup_us=warmup_us, window_us=window_us)
    return Workload("tlb_flush3", _tlb_flush3,
                    {"threads": threads, "warmup_us": warmup_us, "window_us": window_us})


def _tlb_flush1(b, profile, threads, warmup_us, window_us):
    _tlb_flush(b, profile, threads, warmup_us, window_us, 1)


def _tlb_flush2(b, profile, threads, warmup_us, window_us):
    _tlb_flush(b, profile, threads, warmup_us, window_us, 2)


def _tlb_flush3(b, profile, threads, warmup_us, window_us):
    _tlb_flush(b, profile, threads, warmup_us, window_us, 3)


def _tlb_flush(b, profile, threads, warmup_us, window_us, variant):
    name = f"tlb_flush{variant}"
    if threads > profile.cores:
        raise WorkloadError(f"{name}: {threads} threads need {threads} cores (will-it-scale "
                            f"pins one per core), {profile.name} has {profile.cores}")
    b.measure(warmup_us, window_us)
    size = 256 if variant == 2 else REGION          # tlb_flush2: 1 MB; else a 2 MiB window
    mm = b.mm(threads * REGION)
    for i in range(threads):
        cpus = _core_affinity(profile, i)
        t = b.task(mm, cpus[0], start_us=b.rng.below(2000) / 1000, affinity=cpus)
        base = i * REGION
        top = t.here()
        file = variant != 2
        shared = variant == 3
        for page in range(base, base + size):
            t.access(page, write=True, file=file, shared=shared).madvise(page)
            t.access(page, write=False, file=file, shared=shared).mark()
        if variant == 2:
            t.munmap(base, size, free_tables=True)
        t.loop(top)


def context_switch1(pairs: int = 2, warmup_us: int = 500, window_us: int = 400) -> Workload:
    """will-it-scale tests/context_switch1.c, threads mode ("Context switch
    via pipes"): `pairs` pairs of threads of one process ping-pong a byte
    over two pipes. Pair i is pinned to core i % cores as will-it-scale pins
    it (both SMT threads; the helper thread inherits the affinity), so
    try_to_wake_up puts the partners on the two siblings and each CPU goes
    idle -- lazily on the process's mm -- every time its thread blocks: one
    lazy switch and one return per thread per round trip, i.e. mm_count
    traffic under lazy_mm_ref="refcount" (seed 003; Desnoyers' 2024 hazptr
    RFC measured it). Each round trip counts 2 iterations, as the source
    does. The warm-up is longer than tlb_flush's: the idle governor starts
    with no history and picks deep states until it has some; with a 100 us
    warm-up that is still inside the window (4 pairs on skylake-2s: +6%
    from a 400 to an 800 us window; with 400 us or more, under 1%). Leaves out: the
    pipe's data copy beyond the profile's pipe cost."""
    _positive("context_switch1", pairs=pairs, warmup_us=warmup_us, window_us=window_us)
    return Workload("context_switch1", _context_switch1,
                    {"pairs": pairs, "warmup_us": warmup_us, "window_us": window_us})


def _context_switch1(b, profile, pairs, warmup_us, window_us):
    if pairs > profile.cores:
        raise WorkloadError(f"context_switch1: {pairs} pairs need {pairs} cores (one pair "
                            f"per core), {profile.name} has {profile.cores}")
    b.measure(warmup_us, window_us)
    mm = b.mm(REGION)
    for i in range(pairs):
        cpus = _core_affinity(profile, i)
        ping, pong = b.channel(), b.channel()
        start = b.rng.below(2000) / 1000
        main = b.task(mm, cpus[0], start_us=start, affinity=cpus)
        child = b.task(mm, cpus[-1], start_us=start, affinity=cpus)
        top = main.here()
        main.wake(ping).block(pong).mark().mark().loop(top)
        top = child.here()
        child.block(ping).wake(pong).loop(top)


def hackbench(groups: int = 1, loops: int = 10) -> Workload:
    """hackbench (rt-tests hackbench.c; perf bench sched messaging), process
    mode: each group is 20 senders and 20 receivers, separate processes; every
    sender writes one 100-byte message to each of its group's receivers
    `loops` times, each receiver reads 20 x loops messages. The figure is the
    time it takes (`makespan_ns`; hackbench prints it as "Time:"). It stresses
    wake-ups (placement, idle wake-ups, reschedule IPIs) and real mm switches
    between processes (PCID/ASID reuse, lazy TLB on the way through idle).
    Defaults are smaller than hackbench's 10 groups x 100 loops, so a run
    stays quick; the parameters scale it up. Leaves out: socket buffer
    limits (a sender never blocks) and the startup barrier's fork phase
    (tasks start within 10 us of each other, spread over the CPUs as fork
    balancing spreads them)."""
    _positive("hackbench", groups=groups, loops=loops)
    return Workload("hackbench", _hackbench, {"groups": groups, "loops": loops})


FDS = 20    # hackbench's default senders and receivers per group


def _hackbench(b, profile, groups, loops):
    rng = b.rng
    cpu = 0
    for _ in range(groups):
        inbox = [b.channel() for _ in range(FDS)]
        for ch in inbox:
            r = b.task(b.mm(16), cpu % profile.cpus, start_us=rng.below(10))
            cpu += 1
            r.access(0, 4)
            for _ in range(FDS * loops):
                r.block(ch)
            r.exit()
        for _ in range(FDS):
            s = b.task(b.mm(16), cpu % profile.cpus, start_us=rng.below(10))
            cpu += 1
            s.access(0, 4)
            for _ in range(loops):
                for ch in inbox:
                    s.wake(ch)
            s.exit()


def page_reclaim(threads: int = 3, batches: int = 40, warmup_us: int = 50,
                 window_us: int = 400) -> Workload:
    """Reclaim under a multi-threaded process: `threads` threads, one per
    core, keep touching a 2 MiB working set of their process while a kswapd
    kernel thread on the next core unmaps 32 of its pages at a time
    (SWAP_CLUSTER_MAX, as mm/vmscan.c's shrink_folio_list() batches
    try_to_unmap() with TTU_BATCH_FLUSH) and flushes each batch with
    arch_tlbbatch_flush()
    -- IPIs to the process's CPUs, or with INVLPGB one flush of every PCID
    and no IPI (72a920eacd8a). The threads' faults bring the pages back.
    ops_per_sec counts the threads' sweeps; `ipis`, `flush_cpu_ns` and
    `tlb_misses` show what each flush costs where. Leaves out: page-out
    itself (the pages are simply unmapped) and the LRU scan that picks them."""
    _positive("page_reclaim", threads=threads, batches=batches, warmup_us=warmup_us,
              window_us=window_us)
    return Workload("page_reclaim", _page_reclaim,
                    {"threads": threads, "batches": batches, "warmup_us": warmup_us,
                     "window_us": window_us})


SWAP_CLUSTER_MAX = 32


def _page_reclaim(b, profile, threads, batches, warmup_us, window_us):
    if threads + 1 > profile.cores:
        raise WorkloadError(f"page_reclaim: {threads} threads and kswapd need {threads + 1} "
                            f"cores, {profile.name} has {profile.cores}")
    b.measure(warmup_us, window_us)
    mm = b.mm(REGION)
    for i in range(threads):
        cpus = _core_affinity(profile, i)
        t = b.task(mm, cpus[0], start_us=b.rng.below(2000) / 1000, affinity=cpus)
        top = t.here()
        for k in range(16):
            t.access(((i * 16 + k) * 32) % REGION, 32, write=k % 4 == 0)
        t.mark().loop(top)
    kswapd = b.kthread(_core_affinity(profile, threads)[0], start_us=warmup_us / 2)
    top = kswapd.here()
    for k in range(batches):
        first = (k * SWAP_CLUSTER_MAX * 7) % (REGION - SWAP_CLUSTER_MAX)
        kswapd.reclaim(mm, first, SWAP_CLUSTER_MAX).compute_us(5)
    kswapd.loop(top)


BUILDERS = {f.__name__: f for f in (madvise_dontneed, munmap_storm, kernel_build, idle_server,
                                    context_switch, exit_storm, vm_overcommit, tlb_flush1,
                                    tlb_flush2, tlb_flush3, context_switch1, hackbench,
                                    page_reclaim)}

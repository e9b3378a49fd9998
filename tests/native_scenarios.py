"""Hand-built programs shared by the native engine's differential tests and
its valgrind check (tests/native_memcheck.py)."""


def hang_chain(b, profile):
    """cpu1 runs a kthread lazily on mm, out of mm_cpumask; cpu0 frees a page
    table cpu1's PSC caches, cpu1's walk through it hangs it (AMD), and the
    shootdown IPIs of another mm's __mmdrop wait for it until the watchdog."""
    mm = b.mm(1024)
    b.task(mm, 0).access(0, 4).compute_us(20).munmap(0, 512).compute_us(300)
    b.task(mm, 1, start_us=5).access(8, 4).compute_us(5).yield_()
    b.kthread(1, start_us=6).compute_us(2000)
    other = b.mm(512)
    b.task(other, 2, start_us=100).access(0).compute_us(100).exit()


def membarrier_storm(b, profile, rounds):
    """Every CPU but 0 runs a thread of one mm for 100 s; the thread on CPU 0
    calls membarrier() `rounds` times, each an IPI to every other CPU: a long
    run (about 2 events per CPU per round) from a short program."""
    mm = b.mm(64)
    for cpu in range(1, profile.cpus):
        b.task(mm, cpu).access(cpu % 64).compute_us(10**8)
    storm = b.task(mm, 0)
    for _ in range(rounds):
        storm.membarrier()


def big_machine(profile):
    """`profile` grown to 1024 CPUs on 16 sockets, as tests/bench does."""
    return profile.with_changes(name=f"{profile.name}-1024",
                                topology={"cpus": 1024, "sockets": 16, "smt": 2})


def rar_trim(b, profile):
    """RAR on a global-ASID mm, then the once-a-second trim: the threads of
    process A on cpus 1-4 make A global at the first flush of the thread on
    cpu0 (task 0 in jiffy 0), the next flush moves them to the global ASID
    by IPI, the third is RAR. They exit, so the RAR request at 270 us finds
    cpus 2-4 idle (halted); cpu1 runs process B from 300 us on. The flushes
    after a second of simulated time trim A's mask: an IPI to cpu1, whose
    handler finds A not loaded and leaves the mask (the RAR RFC trims
    global-ASID mms too), and a flush of the global PCID on cpu0."""
    a, other = b.mm(512), b.mm(16)
    main = b.task(a, 0, affinity=(0,))
    main.access(0)
    for gap_us in (30, 30, 30, 150, 1_002_000, 5):
        main.compute_us(gap_us).access(0).madvise(0)
    main.exit()
    for cpu in range(1, 5):
        b.task(a, cpu, affinity=(cpu,)).access(8 * cpu, 4).compute_us(200).exit()
    b.task(other, 1, start_us=300, affinity=(1,)).access(0).compute_us(1_003_000).exit()


def invlpgb_ranges(b, profile, threads=6, pages=20):
    """`threads` threads of one process (enough for a global ASID) touch and
    madvise a `pages`-page range each: one INVLPGB per invlpgb_max_pages
    pages of a range up to the flush ceiling."""
    mm = b.mm(threads * 64)
    for i in range(threads):
        t = b.task(mm, i, affinity=(i,))
        for _ in range(30):
            t.access(i * 64, pages).madvise(i * 64, pages).compute_us(2)

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

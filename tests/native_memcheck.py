"""Leak and memory-error check of the native engine under valgrind
(`tox -e asan` runs it after the AddressSanitizer tests; needs valgrind).

The ASan run keeps leak detection off, because CPython itself does not free
everything at exit. This script covers leaks: it drives the native engine
through its paths -- every workload, violations with traces, hung CPUs whose
cross-calls stay in flight, vCPU preemption, membarrier, a run stopped by a
signal (Ctrl-C), and every kind of bad input, which fails after different
amounts of set-up -- in a child process under valgrind with the system
allocator (PYTHONMALLOC=malloc: then CPython has no definitely lost blocks of
its own). It fails if valgrind reports any definitely or indirectly lost
block, or any error whose stack goes through _native (the sources in
engine/_native/, or the built module).

    python tests/native_memcheck.py          # run under valgrind, check
    python tests/native_memcheck.py --child  # the scenarios alone
"""

import os
import re
import signal
import subprocess
import sys
import tempfile


def scenarios():
    import pytest_tlbperf as tp
    from native_scenarios import hang_chain, invlpgb_ranges, membarrier_storm, rar_trim
    from pytest_tlbperf.engine import abi, native
    from pytest_tlbperf.engine import _native

    class LazyShootdown(tp.Policy):
        lazy_cpumask, flush_lazy_cpus, lazy_mm_ref = "clear", "never", "shootdown"
        lazy_mm_scan = "all_cpus"       # its lazy CPUs left mm_cpumask
        cpumask_update, table_free = "eager", "after_flush"     # lazy_pcid's time

    class NoLazyRef(tp.Policy):
        lazy_mm_ref = "none"

    class SkipTlbsync(tp.Policy):
        tlbsync, table_free = "skip", "after_flush"

    def barriers(b, profile):
        mm = b.mm(64)
        for cpu in range(3):
            b.task(mm, cpu).access(cpu, 2).membarrier().mprotect(0, 8).membarrier().exit()

    W = tp.workloads
    runs = [(W.BUILDERS[name](), "haswell-4c", "mainline") for name in sorted(W.BUILDERS)]
    kvm = tp.profiles.get("kvm-guest-16")
    runs += [(W.kernel_build(jobs=8), "zen1-epyc", "lazy_pcid"),
             (W.custom("hang_chain", hang_chain), "zen1-epyc", LazyShootdown),
             (W.exit_storm(processes=6), "skylake-2s", NoLazyRef),
             (W.vm_overcommit(iterations=4), "kvm-guest-16", "async_flush"),
             (W.custom("barriers", barriers), "laptop-8c", "hazard_lazymm"),
             # hazptr's sync IPIs; table freeing through RCU and the sync broadcast
             (W.exit_storm(processes=6), "skylake-2s", "hazptr_lazymm"),
             (W.kernel_build(jobs=8),
              kvm.with_changes(name="kvm", memory={"table_batch_fail_percent": 50}),
              "mainline"),
             (W.context_switch1(pairs=4, warmup_us=10, window_us=50), "kvm-guest-16",
              "mainline"),
             (W.hackbench(loops=2), "zen1-epyc", "shootdown_lazymm"),
             (W.tlb_flush1(threads=8, warmup_us=10, window_us=50),
              tp.profiles.get("skylake-2s").with_changes(
                  name="s384", topology={"cpus": 384, "sockets": 2, "smt": 2,
                                         "cores_per_llc": 8}), "mainline")]
    # today's kernel: global ASIDs with INVLPGB (and without TLBSYNC), RAR and
    # its trim, reclaim's batched flush three ways, the LRU lock
    rar_part = tp.profiles.get("skylake-2s").with_changes(name="rar", rar=True, meltdown=False)
    runs += [(W.tlb_flush2(threads=8, warmup_us=20, window_us=100), "genoa-2s", "mainline"),
             (W.custom("invlpgb_ranges", invlpgb_ranges), "milan-36c", SkipTlbsync),
             (W.custom("rar_trim", rar_trim), rar_part, "rar"),
             (W.page_reclaim(threads=6, warmup_us=20, window_us=100), rar_part, "rar"),
             (W.page_reclaim(threads=6, warmup_us=20, window_us=100), "milan-36c", "mainline"),
             (W.page_reclaim(threads=6, warmup_us=20, window_us=100), "milan-36c",
              "mainline_v6_14"),
             (W.exit_storm(processes=6), "milan-36c", "mainline_v6_6")]
    for work, profile, policy in runs:
        prof = tp.profiles.get(profile) if isinstance(profile, str) else profile
        pol = tp.policies.get(policy) if isinstance(policy, str) else policy
        native.run(prof, pol().knobs(prof), work.compile(prof, 1), 1)

    # A signal handler that raises stops the run in the middle of the loop
    # (native.run polls for signals); it would take minutes under valgrind.
    class Stop(Exception):
        pass

    def stop(signum, frame):
        raise Stop

    prof = tp.profiles.get("skylake-2s")
    storm = W.custom("membarrier_storm", membarrier_storm, rounds=20_000).compile(prof, 0)
    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        native.run(prof, tp.Policy().knobs(prof), storm, 0)
    except Stop:
        pass
    else:
        raise AssertionError("the run was not stopped by the signal")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    prof = tp.profiles.get("haswell-4c")
    p, cstates, virt = native.flatten_profile(prof)
    knobs = native.flatten_knobs(tp.Policy().knobs(prof))
    mm_pages, tasks, *window = native.flatten_program(
        W.context_switch1(pairs=2, warmup_us=5, window_us=20).compile(prof, 0))
    packed = ((0, 0, 0, bytes(24), ()),)
    calls = [  # each fails a little later in the set-up than the one before
        (("x",) + p[1:], cstates, virt, knobs, mm_pages, tasks, *window),
        (p, ((1, 2),), virt, knobs, mm_pages, tasks, *window),
        (p, cstates, (25, 0, 1), knobs, mm_pages, tasks, *window),
        (p, cstates, virt, (5,) + knobs[1:], mm_pages, tasks, *window),
        (p, cstates, virt, knobs, mm_pages, tasks, -1, *window[1:]),
        (p, cstates, virt, knobs, (-1,), tasks, *window),
        (p, cstates, virt, knobs, mm_pages, tasks + ((0, 99, 0, (), ()),), *window),
        (p, cstates, virt, knobs, mm_pages, tasks + ((0, 0, 0, (), (1, 1)),), *window),
        (p, cstates, virt, knobs, mm_pages, tasks + packed, *window),
        (p, cstates, virt, knobs, mm_pages,
         tasks + ((0, 0, 0, (abi.OP_MARK, 0, "x", 0), ()),), *window),
        (p, cstates, virt, knobs, mm_pages,
         tasks + ((0, 0, 0, (abi.OP_ACCESS, 511, 2, 0), ()),), *window),
        (p, cstates, virt, knobs, mm_pages,
         tasks + ((0, 0, 0, (abi.OP_BLOCK, 9, 0, 0), ()),), *window),
        (p, cstates, virt, knobs, mm_pages,
         tasks + ((-1, 0, 0, (abi.OP_RECLAIM, 0, 8, 5), ()),), *window),
    ]
    for args in calls:
        try:
            _native.run(*args, 0)
        except (TypeError, ValueError):
            pass
        else:
            raise AssertionError(f"no error for {args}")


def main():
    if sys.argv[1:] == ["--child"]:
        scenarios()
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "valgrind.log")
        # --fullpath-after= names a frame's source by its whole path, so the
        # engine's frames say engine/_native/tlb.c, not just tlb.c
        cmd = ["valgrind", "--leak-check=full", "--show-leak-kinds=definite,indirect",
               "--num-callers=40", "--fullpath-after=", f"--log-file={log}", sys.executable,
               __file__, "--child"]
        child = subprocess.run(cmd, env={**os.environ, "PYTHONMALLOC": "malloc"})
        with open(log) as f:
            text = f.read()
    if child.returncode:
        print(text)
        print(f"the scenarios failed under valgrind (exit {child.returncode})")
        return 1
    lost = re.search(r"definitely lost: ([\d,]+) bytes.*\n.*indirectly lost: ([\d,]+) bytes",
                     text)
    leaked = [int(n.replace(",", "")) for n in lost.groups()] if lost else [0, 0]
    # an error record is a block of lines starting with "==pid== " up to a blank one
    records = re.split(r"\n==\d+== \n", text)
    ours = [r for r in records if "_native" in r and not r.lstrip("=0123456789 ").startswith(
        ("HEAP SUMMARY", "LEAK SUMMARY"))]
    if any(leaked) or ours:
        print("\n\n".join(ours) or text)
        print(f"valgrind: definitely lost {leaked[0]} bytes, indirectly lost {leaked[1]} "
              f"bytes, {len(ours)} record(s) through _native")
        return 1
    print("valgrind: no leaks, no errors through _native "
          f"({text.count('total heap usage')} process checked)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

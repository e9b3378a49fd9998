"""The native engine against the reference on random machines (issue 5):
profile variants with 1-256 CPUs, random LLC domains, TLB/PSC geometry,
PCID, PTI and INVPCID, INVLPGB (and its page limit) and RAR, APIC mode,
polling and non-polling C-states, virt, table-batch failures and
freed-table behaviour, the costs of INVLPGB, TLBSYNC, RAR and the LRU lock,
random knob combinations (the lazy mm_cpumask, broadcast flushes, TLBSYNC,
LRU drains, table freeing), and random workloads -- the built-in builders at
random sizes, and random op-level programs, which also reach ops no built-in
workload issues (membarrier, mprotect, explicit exit, out-of-range
migration, reclaim of another process's pages) and mix pipes (block/wake on
random channels), affinity, shared mappings, and loops inside measured
windows."""

import os

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import pytest_tlbperf as tp
from pytest_tlbperf.engine import abi, native
from pytest_tlbperf.engine.machine import Machine
from pytest_tlbperf.errors import PolicyError

if not native.available():
    if os.environ.get("TLBPERF_REQUIRE_NATIVE"):
        raise RuntimeError("TLBPERF_REQUIRE_NATIVE is set but the native engine is not built")
    pytest.skip("the native engine is not built", allow_module_level=True)

SETTINGS = settings(max_examples=250, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def machines(draw):
    """A built-in profile with its topology, TLB, PCID, broadcast flushes,
    speculation, APIC, C-states and virtualization redrawn."""
    base = tp.profiles.get(draw(st.sampled_from(tp.profiles.names())))
    smt = draw(st.sampled_from([1, 2, 4]))
    sockets = draw(st.sampled_from([1, 2, 4, 8]))
    per_socket = draw(st.integers(1, max(1, 256 // (smt * sockets))))
    per_llc = draw(st.sampled_from([d for d in range(1, per_socket + 1) if per_socket % d == 0]))
    ways = draw(st.sampled_from([1, 2, 4, 6, 8, 12, 16]))
    sets = draw(st.one_of(st.sampled_from([1, 16, 64, 128]), st.integers(1, 160)))
    virt = draw(st.booleans())
    # profile.raw is read-only (tuples); with_changes() takes lists
    cstates = [{k: list(v) if isinstance(v, tuple) else v for k, v in c.items()}
               | {"polling": draw(st.booleans())} for c in base.raw.get("cstates", [])]
    changes = {
        "topology": {"cpus": smt * sockets * per_socket, "sockets": sockets, "smt": smt,
                     "cores_per_llc": per_llc},
        "pcid": draw(st.sampled_from([True, True, True, False])),   # global ASIDs need it
        "meltdown": draw(st.booleans()),
        "invpcid": draw(st.booleans()),
        "invlpgb": draw(st.sampled_from([True, True, False])),
        "invlpgb_max_pages": draw(st.sampled_from([1, 2, 8, 64])),
        "rar": draw(st.sampled_from([True, True, False])),
        "tlb": {"entries": ways * sets, "ways": ways, "psc_entries": draw(st.integers(1, 48))},
        "speculation": {"walk_interval_ns": draw(st.integers(1, 20_000)),
                        "freed_table_walk": draw(st.sampled_from(["hang", "silent"]))},
        "ipi": {"jitter_ns": draw(st.sampled_from([0, 80, 1000])),
                "apic": draw(st.sampled_from(["cluster", "physical"]
                                             + (["kvm_pv"] if virt else [])))},
        "cache_line": {"llc_cycles": draw(st.integers(0, 400)),
                       "invalidate_cycles": draw(st.sampled_from([0, 0, 15, 120]))},
        "costs": {"csd_setup_cycles": draw(st.sampled_from([0, 0, 40])),
                  "invpcid_ns": draw(st.integers(0, 400)),
                  "invlpgb_ns": draw(st.integers(0, 400)),
                  "tlbsync_ns": draw(st.sampled_from([0, 300, 1500, 20_000])),
                  "rar_ns": draw(st.integers(0, 1000)),
                  "lru_lock_cycles": draw(st.sampled_from([0, 0, 200, 2000]))},
        "cstates": cstates,
    }
    if virt:
        percent = draw(st.integers(0, 95))
        # a vCPU runs at least 1 us between preemptions (profiles.MIN_VCPU_RUN_US)
        shortest = max(1, -(-percent // (100 - percent)))
        changes["virt"] = {"preempt_percent": percent,
                           "preempt_us": draw(st.integers(shortest, 4000)),
                           "pv_tlb_flush": draw(st.booleans())}
        changes["memory"] = {"table_batch_fail_percent": draw(st.sampled_from([0, 30, 100]))}
    return base.with_changes(name="random", **changes)


@st.composite
def policies(draw):
    knobs = {name: draw(st.sampled_from(values)) for name, values in abi.KNOB_VALUES.items()}
    knobs["flush_ceiling"] = draw(st.integers(0, 64))
    # the broadcast flushes twice as often as 'none' and 'auto' (knobs_on()
    # turns one the machine cannot do into 'none')
    knobs["broadcast_flush"] = draw(st.sampled_from(["none", "auto", "invlpgb", "invlpgb",
                                                     "rar", "rar"]))
    return type("RandomPolicy", (tp.Policy,), knobs)


@st.composite
def builder_workloads(draw, prof):
    cpus, cores = prof.cpus, prof.cores
    up = lambda n: st.integers(1, max(1, n))   # noqa: E731
    window = {"warmup_us": draw(st.integers(1, 40)), "window_us": draw(st.integers(1, 60))}
    choice = draw(st.sampled_from(sorted(tp.workloads.BUILDERS)))
    W = tp.workloads
    if choice == "madvise_dontneed":
        return W.madvise_dontneed(threads=draw(up(min(cores, 8))),
                                  iterations=draw(st.integers(1, 40)))
    if choice == "munmap_storm":
        return W.munmap_storm(threads=draw(up(min(cpus, 8))), iterations=draw(up(20)),
                              regions=draw(up(4)))
    if choice == "kernel_build":
        return W.kernel_build(jobs=draw(up(16)), cpus=draw(up(min(cpus, 16))))
    if choice == "idle_server":
        return W.idle_server(workers=draw(up(min(cpus, 8))), requests=draw(up(8)))
    if choice == "context_switch":
        return W.context_switch(cpus=draw(up(min(cpus, 16))), **window)
    if choice == "exit_storm":
        n = draw(up(min(cpus, 16)))
        return W.exit_storm(processes=draw(up(8)), threads=draw(up(min(n, 4))), cpus=n)
    if choice in ("tlb_flush1", "tlb_flush2", "tlb_flush3"):
        return W.BUILDERS[choice](threads=draw(up(min(cores, 8))), **window)
    if choice == "page_reclaim" and cores > 1:
        return W.page_reclaim(threads=draw(up(min(cores - 1, 8))), batches=draw(up(8)),
                              **window)
    if choice == "context_switch1":
        return W.context_switch1(pairs=draw(up(min(cores, 8))), **window)
    if choice == "hackbench":
        return W.hackbench(groups=draw(up(2)), loops=draw(up(3)))
    return W.vm_overcommit(threads=draw(up(min(cpus, 16))), iterations=draw(up(10)))


KINDS = ["access", "compute", "madvise", "munmap", "mprotect", "sleep", "yield", "migrate",
         "mark", "membarrier", "exit", "block", "wake", "loop", "reclaim"]


@st.composite
def random_programs(draw, prof):
    """Tasks with random ops on 1-3 small mms (page ranges inside them), 0-3
    pipes, random affinities, and -- in a measured window -- loops; half the
    time led by a process on 5 CPUs that flushes at once (a global ASID
    where the knobs give one)."""
    mm_pages = draw(st.lists(st.integers(1, 2048), min_size=1, max_size=3))
    channels = draw(st.integers(0, 3))
    window = draw(st.one_of(st.just(0), st.integers(1_000, 200_000)))
    warmup = draw(st.integers(0, 100_000)) if window else 0
    tasks = []
    if prof.cpus >= 5 and draw(st.booleans()):
        # a process on 5 CPUs whose first task flushes in the first jiffy:
        # consider_global_asid() gives it a global ASID (task 0, jiffy 0)
        cpus = draw(st.lists(st.integers(0, prof.cpus - 1), min_size=5, max_size=5,
                             unique=True))
        n = draw(st.integers(1, min(40, mm_pages[0])))
        ops = (abi.OP_ACCESS, 0, n, 1)
        for _ in range(draw(st.integers(1, 8))):
            ops += (abi.OP_MADVISE, 0, n, 0, abi.OP_COMPUTE, draw(st.integers(0, 30_000)), 0, 0,
                    abi.OP_ACCESS, 0, n, draw(st.integers(0, 7)))
        tasks.append(tp.workloads.TaskSpec(0, cpus[0], 0, ops))
        for cpu in cpus[1:]:
            page = draw(st.integers(0, mm_pages[0] - 1))
            tasks.append(tp.workloads.TaskSpec(0, cpu, draw(st.integers(0, 1000)), (
                abi.OP_ACCESS, page, 1, 1, abi.OP_COMPUTE, draw(st.integers(100_000, 2_000_000)),
                0, 0)))
    for _ in range(draw(st.integers(1, 8))):
        mm = draw(st.integers(-1, len(mm_pages) - 1))
        size = mm_pages[mm] if mm >= 0 else 512
        ops = []
        for _ in range(draw(st.integers(0, 16))):
            kind = draw(st.sampled_from(KINDS))
            first = draw(st.integers(0, size - 1))
            n = draw(st.integers(1, min(64, size - first)))
            if kind == "access":
                # flags: 1 write, 2 file-backed, 4 shared
                ops += (abi.OP_ACCESS, first, n, draw(st.integers(0, 7)))
            elif kind == "compute":
                ops += (abi.OP_COMPUTE, draw(st.integers(0, 20_000)), 0, 0)
            elif kind in ("madvise", "mprotect"):
                code = abi.OP_MADVISE if kind == "madvise" else abi.OP_MPROTECT
                ops += (code, first, draw(st.integers(1, 600)), 0)
            elif kind == "munmap":
                ops += (abi.OP_MUNMAP, draw(st.sampled_from([0, first])),
                        draw(st.integers(1, 1200)), int(draw(st.booleans())))
            elif kind == "sleep":
                ops += (abi.OP_SLEEP, draw(st.integers(0, 300_000)), 0, 0)
            elif kind == "yield":
                ops += (abi.OP_YIELD, 0, 0, 0)
            elif kind == "migrate":
                ops += (abi.OP_MIGRATE, draw(st.integers(-1, prof.cpus)), 0, 0)
            elif kind == "mark":
                ops += (abi.OP_MARK, 0, 0, 0)
            elif kind == "membarrier":
                ops += (abi.OP_MEMBARRIER, 0, 0, 0)
            elif kind == "exit":
                ops += (abi.OP_EXIT, 0, 0, 0)
            elif kind in ("block", "wake") and channels:
                code = abi.OP_BLOCK if kind == "block" else abi.OP_WAKE
                ops += (code, draw(st.integers(0, channels - 1)), 0, 0)
            elif kind == "reclaim":
                # kswapd (any task) unmapping a run of some process's pages
                tmpl = draw(st.integers(0, len(mm_pages) - 1))
                start = draw(st.integers(0, mm_pages[tmpl] - 1))
                ops += (abi.OP_RECLAIM, start, draw(st.integers(1, 64)), tmpl)
            elif kind == "loop" and window:
                # a loop body that takes time, so the window ends it
                ops += (abi.OP_COMPUTE, draw(st.integers(500, 5_000)), 0, 0)
                ops += (abi.OP_LOOP, draw(st.integers(0, len(ops) // 4 - 1)), 0, 0)
        cpu = draw(st.integers(0, prof.cpus - 1))
        others = draw(st.lists(st.integers(0, prof.cpus - 1), max_size=3))
        affinity = tuple(sorted({cpu, *others})) if draw(st.booleans()) else ()
        tasks.append(tp.workloads.TaskSpec(mm, cpu, draw(st.integers(0, 100_000)), tuple(ops),
                                           affinity))
    return tp.workloads.Program("random", mm_pages, tasks, channels, warmup, window)


def knobs_on(prof, policy):
    """The policy's knobs on the machine. A broadcast flush the machine
    cannot do (PolicyError: no INVLPGB or RAR, no PCID, INVLPGB under PTI)
    is tried without PTI, then becomes 'none'."""
    for changes in ({}, {"pti": False}, {"broadcast_flush": "none"}):
        try:
            return type("Resolved", (policy,), changes)().knobs(prof)
        except PolicyError:
            pass
    raise AssertionError("unreachable: 'none' needs no hardware")


def assert_same(prof, policy, program, seed):
    knobs = knobs_on(prof, policy)
    ref = Machine(prof, knobs, program, seed).run()
    got = native.run(prof, knobs, program, seed)
    assert got == ref, next(f"{key!r} differs: python {ref[key]!r}, native {got[key]!r}"
                            for key in ref if ref[key] != got[key])
    # what the examples reached (pytest --hypothesis-show-statistics)
    flushes = len(ref["flush_latency"])
    event(f"flushes: {'0' if not flushes else '1-9' if flushes < 10 else '10+'}")
    event(f"CPUs: {'1-16' if prof.cpus <= 16 else '17-64' if prof.cpus <= 64 else '65-256'}")
    for kind, n in zip(abi.VIOLATION_KINDS, ref["violation_counts"]):
        if n:
            event(f"violation: {kind}")
    if ref["counters"]["ipis"]:
        event("IPIs sent")
    if ref["counters"]["spec_walks"]:
        event("speculative walks")
    if ref["counters"]["resched_ipis"]:
        event("reschedule IPIs")
    event(f"broadcast_flush: {knobs.broadcast_flush}")
    for name in ("invlpgb", "rar_requests", "lru_locks"):
        if ref["counters"][name]:
            event(name)
    if ref["window"]:
        event(f"window: {'finished' if ref['finished'] else 'ran dry'}")


@pytest.mark.slow
@SETTINGS
@given(data=st.data(), policy=policies(), seed=st.integers(0, 2**64 + 5))
def test_random_machines_knobs_and_workload_sizes(data, policy, seed):
    prof = data.draw(machines())
    work = data.draw(builder_workloads(prof))
    assert_same(prof, policy, work.compile(prof, seed % 1000), seed)


@pytest.mark.slow
@SETTINGS
@given(data=st.data(), policy=policies(), seed=st.integers(0, 2**64 - 1))
def test_random_programs(data, policy, seed):
    prof = data.draw(machines())
    assert_same(prof, policy, data.draw(random_programs(prof)), seed)

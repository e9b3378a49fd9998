import pytest

import pytest_tlbperf as tp
from pytest_tlbperf.metrics import METRICS, percentile

CONTRACT = {"makespan_ns", "ops_per_sec", "flush_latency_ns_p50", "flush_latency_ns_p99",
            "madvise_ns", "ipis", "ipis_to_idle", "ipis_to_lazy", "cr3_writes",
            "full_flushes", "invlpg", "tlb_misses", "atomic_contention_ns", "idle_wakeups",
            "switch_mm_barrier_ns", "resched_ipis", "flush_cpu_ns", "invlpgb"}


HOST_ONLY = {"tlb_shootdowns", "context_switches", "page_faults"}


def test_registry_is_the_contract():
    assert set(METRICS) == CONTRACT | HOST_ONLY
    assert {m for m, spec in METRICS.items() if spec.backends == ("host",)} == HOST_ONLY
    assert METRICS["ops_per_sec"].better == "higher"
    assert all(m.better == "lower" for name, m in METRICS.items() if name != "ops_per_sec")
    assert METRICS["flush_latency_ns_p99"].unit == "ns"


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50 and percentile(values, 99) == 99
    assert percentile([7], 99) == 7 and percentile([], 50) == 0


def test_madvise_ns_only_where_iterations_are_marked():
    r = tp.run(tp.workloads.madvise_dontneed(iterations=20), "haswell-4c")
    assert r.metrics["madvise_ns"] > 0
    assert "madvise_ns" not in tp.run(tp.workloads.exit_storm(processes=2), "haswell-4c").metrics
    assert set(r.metrics) == CONTRACT - {"ops_per_sec"}


def test_ops_per_sec_only_for_throughput_workloads():
    """will-it-scale's figure needs a measured window; a finite workload has
    none (ops / makespan would let one straggler decide it)."""
    r = tp.run(tp.workloads.tlb_flush1(threads=2, window_us=100), "skylake-2s")
    assert r.metrics["ops_per_sec"] > 0 and "madvise_ns" not in r.metrics
    assert "ops_per_sec" not in tp.run(tp.workloads.kernel_build(jobs=4), "skylake-2s").metrics


@pytest.mark.parametrize("make, profile, window_us", [
    (lambda w: tp.workloads.tlb_flush1(threads=8, window_us=w), "skylake-2s", 400),
    # tlb_flush2 munmaps its 1 MB every 256 loops (~0.7 ms per thread here):
    # a window has to span a few of those periods
    (lambda w: tp.workloads.tlb_flush2(threads=8, window_us=w), "milan-36c", 2000),
    (lambda w: tp.workloads.context_switch1(pairs=4, window_us=w), "skylake-2s", 400),
])
def test_ops_per_sec_is_a_steady_state_figure(make, profile, window_us):
    """Issue 10: counted inside the window after the warm-up, the figure
    does not depend on how long the window is -- doubling it moves the
    mean over three seeds by less than 3%."""
    def mean(window):
        return sum(tp.run(make(window), profile, "mainline", seed=s).metrics["ops_per_sec"]
                   for s in range(3)) / 3
    assert abs(mean(2 * window_us) / mean(window_us) - 1) < 0.03

"""Today's kernel on the machines of van Riel's series: the lazy mm_cpumask
(v6.14; hackbench on "an AMD Milan system with 36 cores", 209954cbc7d0) and
broadcast flushing with global ASIDs (v6.15, INVLPGB + TLBSYNC; will-it-scale
tlb_flush2_threads, 4afeb0ed1753), plus reclaim's batched flush, which
INVLPGB turns into one broadcast (72a920eacd8a). A patch to these paths shows
here as flush CPU time, IPIs and throughput on milan-36c and genoa-2s."""

import pytest

import pytest_tlbperf as tp

MACHINES = ["milan-36c", "genoa-2s"]


@pytest.mark.tlbperf(profiles=MACHINES, metrics=["ops_per_sec", "flush_cpu_ns", "ipis"])
@pytest.mark.parametrize("threads", [4, 16])
def test_tlb_flush2(tlbperf, threads):
    tlbperf(tp.workloads.tlb_flush2(threads=threads, window_us=200))


@pytest.mark.tlbperf(profiles=MACHINES, metrics=["ops_per_sec", "flush_cpu_ns", "ipis",
                                                 "tlb_misses"])
def test_page_reclaim(tlbperf):
    tlbperf(tp.workloads.page_reclaim(threads=8, window_us=200))


@pytest.mark.tlbperf(profiles=["milan-36c"], metrics=["makespan_ns", "ipis", "ipis_to_idle"])
def test_hackbench(tlbperf):
    tlbperf(tp.workloads.hackbench(groups=2, loops=10))

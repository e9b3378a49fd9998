"""Seed 002: the madvise(DONTNEED)+touch loop on the calibration machine,
where concurrent and async flushing were measured."""

import pytest

import pytest_tlbperf as tp


@pytest.mark.tlbperf(profiles=["haswell-4c"], metrics=["madvise_ns", "flush_latency_ns_p50"])
@pytest.mark.parametrize("threads", [1, 2, 4])
def test_madvise_dontneed(tlbperf, threads):
    tlbperf(tp.workloads.madvise_dontneed(threads=threads))

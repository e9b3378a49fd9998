"""Freed page tables and shared translations under a storm of munmaps: seed
002's rule that an async flush must not free tables, seed 001's 'propagate
flushes everywhere'."""

import pytest

import pytest_tlbperf as tp


@pytest.mark.tlbperf(profiles=["skylake-2s", "zen1-epyc"],
                     metrics=["flush_latency_ns_p99", "ipis"])
def test_munmap_storm(tlbperf):
    tlbperf(tp.workloads.munmap_storm())

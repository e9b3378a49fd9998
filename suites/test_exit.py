"""Seed 003: keeping a lazily used mm alive at exit -- refcounts, hazard
pointers or shootdown IPIs."""

import pytest

import pytest_tlbperf as tp


@pytest.mark.tlbperf(profiles=["skylake-2s"], metrics=["ipis", "makespan_ns"])
def test_exit_storm(tlbperf):
    tlbperf(tp.workloads.exit_storm())

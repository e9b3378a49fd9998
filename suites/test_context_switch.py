"""Seeds 000/001/003: what lazy mode saves (CR3 writes) and what refcounting
lazy mms costs on a big machine (mm_count contention)."""

import pytest

import pytest_tlbperf as tp


@pytest.mark.tlbperf(profiles=["skylake-2s"],
                     metrics=["cr3_writes", "atomic_contention_ns", "makespan_ns"])
def test_context_switch(tlbperf):
    tlbperf(tp.workloads.context_switch())

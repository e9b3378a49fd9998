"""Seeds 000/001/003: what lazy mode saves (CR3 writes), what refcounting
lazy mms costs on a big machine (mm_count contention), and what the explicit
post-switch barrier that replaces mmdrop()'s costs (switch_mm_barrier_ns)."""

import pytest

import pytest_tlbperf as tp


@pytest.mark.tlbperf(profiles=["skylake-2s"],
                     metrics=["cr3_writes", "atomic_contention_ns", "switch_mm_barrier_ns"])
def test_context_switch(tlbperf):
    tlbperf(tp.workloads.context_switch())

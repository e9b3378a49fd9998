"""Seeds 000/001: the 2017 hang. A kernel build on the AMD part whose
speculative walks through freed page tables hang, and on Intel, where they
are silent but still wrong."""

import pytest

import pytest_tlbperf as tp


@pytest.mark.tlbperf(profiles=["zen1-epyc", "skylake-2s"], shows=["freed_table_walk"],
                     metrics=["ipis", "makespan_ns"])
def test_kernel_build(tlbperf):
    tlbperf(tp.workloads.kernel_build())

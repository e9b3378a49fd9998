"""Seeds 003/004: does the policy keep the full barrier membarrier() needs
after the rq->curr store on the scheduler's switch path? Checked on an
x86-TSO litmus checker with the barriers the policy's knobs imply; a
reachable forbidden outcome is a membarrier_order violation."""

import pytest


@pytest.mark.tlbperf(profiles=["skylake-2s"])
def test_membarrier_ordering(tlbperf):
    tlbperf.membarrier()

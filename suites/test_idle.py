"""Seed 001: IPIs to lazy CPUs are paid in C-state exits on machines with
deep idle states, and in host scheduling delays for idle vCPUs."""

import pytest

import pytest_tlbperf as tp


@pytest.mark.tlbperf(profiles=["skylake-2s", "laptop-8c", "kvm-guest-16"],
                     metrics=["flush_latency_ns_p99", "ipis_to_idle"])
def test_idle_server(tlbperf):
    tlbperf(tp.workloads.idle_server())

"""Seed 001: flush IPIs to preempted vCPUs on an overcommitted host, with and
without KVM's paravirtual flush."""

import pytest

import pytest_tlbperf as tp


@pytest.mark.tlbperf(profiles=["kvm-guest-16"], metrics=["flush_latency_ns_p99", "ipis"])
def test_vm_overcommit(tlbperf):
    tlbperf(tp.workloads.vm_overcommit())

"""kernel/smp.c and PTI on hand-built programs (issue 11): how many ICR
writes one flush costs in each APIC mode, PTI's double invalidation of a
user page, and page-table freeing by RCU with tlb_remove_table_sync_one()
when the batch page cannot be allocated."""

import pytest

import pytest_tlbperf as tp
from pytest_tlbperf import profiles
from pytest_tlbperf.engine.machine import Machine

TARGETS = list(range(1, 41))      # skylake-2s: 27 cores of socket 0, 13 of socket 1


def _one_flush_to(targets):
    """Threads of one process run on cpu0 and on `targets`; cpu0 madvises
    one page once, while every other thread computes (not lazy). Counters
    are taken in a window around that flush only."""
    def build(b, profile):
        b.measure(40, 80)
        mm = b.mm(512)
        b.task(mm, 0, affinity=(0,)).access(0).compute_us(50).madvise(0).compute_us(20)
        for x in targets:
            b.task(mm, x, affinity=(x,)).access(8).compute_us(200)
    return tp.workloads.custom("one_flush", build)


def _raw(work, prof, policy="mainline_v6_6", seed=0):
    knobs = tp.policies.resolve(policy).knobs(prof)
    m = Machine(prof, knobs, work.compile(prof, seed), seed)
    return m.run()


@pytest.mark.parametrize("profile, apic, span, targets", [
    ("skylake-2s", "cluster", 16, TARGETS), ("skylake-2s", "physical", 1, TARGETS),
    ("kvm-guest-16", "kvm_pv", 128, list(range(1, 16)))])
def test_icr_writes_per_apic_mode(profile, apic, span, targets):
    """send_call_function_ipi_mask(): x2APIC cluster mode writes the ICR
    once per cluster of 16 APIC IDs, physical mode once per target, and KVM's
    PV send-IPI makes one hypercall per window of 128 APIC IDs."""
    prof = profiles.get(profile).with_changes(ipi={"apic": apic})
    if prof.virt:
        prof = prof.with_changes(virt={"preempt_percent": 0})
    raw = _raw(_one_flush_to(targets), prof)
    groups = {prof.apicid(x) // span for x in targets}
    assert raw["counters"]["ipis"] == len(targets)
    assert raw["counters"]["icr_writes"] == len(groups)
    assert len(groups) == {"cluster": 6, "physical": 40, "kvm_pv": 1}[apic]


@pytest.mark.parametrize("pti, invpcid", [(True, True), (True, False), (False, True)])
def test_pti_double_invalidation(pti, invpcid):
    """With PTI a user page lives in two PCIDs: flush_tlb_func's INVLPG
    covers the kernel one, and the user one needs INVPCID per page -- or,
    without INVPCID, a full flush of the user PCID at the next return to
    user mode (invalidate_user_asid)."""
    class Pti(tp.policies.get("mainline_v6_6")):
        pass
    Pti.pti = pti
    has = profiles.get("haswell-4c").with_changes(invpcid=invpcid)
    work = _one_flush_to([1, 2, 3])
    raw = _raw(work, has, Pti)
    flushing_cpus = 4          # cpu0 locally, three targets
    assert raw["counters"]["invlpg"] == flushing_cpus
    assert raw["counters"]["invpcid"] == (flushing_cpus if pti and invpcid else 0)
    class NoPti(Pti):
        pti = False
    base = _raw(work, has, NoPti)
    if pti and not invpcid:
        assert raw["counters"]["full_flushes"] == base["counters"]["full_flushes"] + flushing_cpus


@pytest.mark.parametrize("fail_percent, sync_ipis", [(0, 0), (100, 15)])
def test_table_free_by_rcu_and_sync_ipi(fail_percent, sync_ipis):
    """A PV-flush guest frees page tables with tlb_remove_table(): after an
    RCU grace period; when the batch page cannot be allocated,
    tlb_remove_table_sync_one() IPIs every other CPU and waits first."""
    def build(b, profile):
        b.measure(20, 60)
        mm = b.mm(2048)
        b.task(mm, 0, affinity=(0,)).access(0, 4).compute_us(30).munmap(0, 512) \
            .compute_us(30)
        b.task(mm, 1, affinity=(1,)).access(1024, 4).compute_us(100)
    kvm = profiles.get("kvm-guest-16").with_changes(
        memory={"table_batch_fail_percent": fail_percent},
        virt={"preempt_percent": 0})
    raw = _raw(tp.workloads.custom("unmap", build), kvm, "mainline")
    flush_ipis = 1                       # the munmap's flush to cpu1
    assert raw["counters"]["ipis"] == flush_ipis + sync_ipis
    r = tp.run(tp.workloads.custom("unmap", build), kvm, "mainline", seed=0)
    assert not r.violations

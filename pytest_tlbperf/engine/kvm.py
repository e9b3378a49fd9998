"""arch/x86/kernel/kvm.c: the paravirtual TLB flush of a KVM guest
(858a43aae236, v4.16). kvm_flush_tlb_multi() sends no IPI to a vCPU the host
has preempted: it sets KVM_VCPU_FLUSH_TLB in the vCPU's steal-time record and
the host flushes that vCPU's TLB before its next VM entry.
"""

from __future__ import annotations

from . import abi


class Kvm:
    """The PV flush; mixed into Machine."""

    def init_kvm(self):
        self.pv_pending = [-1] * self.ncpu   # KVM_VCPU_FLUSH_TLB: flush at this VM entry

    def kvm_flush_tlb_multi(self, c, cid, call, targets, t):
        """A preempted vCPU gets no IPI: the host flushes it at its next VM
        entry (record_steal_time() sees KVM_VCPU_FLUSH_TLB); the others go
        through native_flush_tlb_multi()'s cross-call."""
        running = []
        for x in targets:
            resume = self.preempted_until(x, t)
            if resume:
                self.pv_pending[x] = max(self.pv_pending[x], resume)
                self.ring(c, abi.TR_PV_DEFER, x, call.mm)
            else:
                running.append(x)
        return self.smp_call_function_many(c, cid, call, running, t)

    def vcpu_sync(self, c):
        """VM entry after a PV-deferred flush: the host flushes first."""
        if self.pv_pending[c] >= 0 and self.now >= self.pv_pending[c]:
            self.pv_pending[c] = -1
            self.flush_everything(c)
            self.n_full_flushes += 1

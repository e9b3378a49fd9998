/*
 * kvm.c -- arch/x86/kernel/kvm.c: the paravirtual TLB flush of a KVM guest
 * (858a43aae236, "KVM: X86: use paravirtualized TLB Shootdown", v4.16;
 * KVM_FEATURE_PV_TLB_FLUSH). kvm_flush_tlb_multi() sends no IPI to a
 * preempted vCPU but marks it (KVM_VCPU_FLUSH_TLB); the host flushes it at
 * its next VM entry (record_steal_time()), which vcpu_sync() models.
 */

#include "machine.h"

/* vcpu_sync() is static inline in machine.h: every step and every interrupt calls it. */

/* With KVM's PV flush, a preempted vCPU gets no IPI: the host flushes it at
 * its next VM entry (record_steal_time() sees KVM_VCPU_FLUSH_TLB); the others
 * go through native_flush_tlb_multi()'s cross-call. The kernel clears every
 * preempted vCPU from the mask first, as here: each is asked at the time
 * the flush starts. The running ones are compacted in place in m->targets. */
i64 kvm_flush_tlb_multi(struct machine *m, int c, int slot, size_t ntargets, i64 t)
{
    size_t i, nrunning = 0;
    for (i = 0; i < ntargets; i++) {
        int x = m->targets[i];
        i64 resume = preempted_until(m, x, t);
        if (resume) {
            m->pv_pending[x] = max64(m->pv_pending[x], resume);
            ring(m, c, TR_PV_DEFER, x, m->calls.v[slot].mm);
        } else {
            m->targets[nrunning++] = x;
        }
    }
    return smp_call_function_many(m, c, slot, m->targets, nrunning, t);
}

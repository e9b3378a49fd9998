"""arch/x86/mm/tlb.c: the kernel paths a TLB patch changes, each named after
its counterpart -- switch_mm_irqs_off, enter_lazy_tlb, choose_new_asid,
leave_mm, flush_tlb_mm_range, native_flush_tlb_multi, flush_tlb_func --
and the cpu_tlbstate they keep per CPU (loaded_mm, loaded_mm_asid, is_lazy,
ctxs[] with each ASID's ctx_id and tlb_gen, next_asid).

Each takes the CPU it runs on and the time `t` (cycles) at which it starts,
and returns the time at which it is done: costs are charged by advancing
`t`, state changes take effect at once.
"""

from __future__ import annotations

from . import abi
from .abi import CALL_FLUSH
from .core import INIT_ASID, INIT_MM, NR_HW_ASIDS, TLB_FLUSH_ALL, TLB_NR_DYN_ASIDS
from .smp import Call


class FlushInfo:
    """What `Policy.should_flush_cpu(cpu, info)` is told about a flush."""

    __slots__ = ("mm", "start", "npages", "new_tlb_gen", "freed_tables", "initiator",
                 "is_lazy", "default")

    def __init__(self, mm, start, npages, new_tlb_gen, freed_tables, initiator, is_lazy,
                 default):
        self.mm, self.start, self.npages = mm, start, npages
        self.new_tlb_gen, self.freed_tables = new_tlb_gen, freed_tables
        self.initiator, self.is_lazy, self.default = initiator, is_lazy, default


class Tlb:
    """cpu_tlbstate and the paths of arch/x86/mm/tlb.c; mixed into Machine."""

    def init_tlb(self):
        n = self.ncpu
        self.lazy_line = [-1] * n      # cpu_tlbstate_shared: is_lazy, read by initiators
        self.loaded_mm = [INIT_MM] * n
        self.is_lazy = [0] * n
        self.ctx_id = [[-1] * NR_HW_ASIDS for _ in range(n)]
        self.ctx_gen = [[0] * NR_HW_ASIDS for _ in range(n)]
        self.dedicated = self.k_init_asid == abi.INIT_ASID_DEDICATED or not self.profile.pcid
        if self.dedicated:
            self.loaded_asid = [INIT_ASID if self.profile.pcid else 0] * n
            self.next_asid = [0] * n
        else:
            # boot: init_mm loaded in ASID 0 (cpu_tlbstate = { .next_asid = 1 })
            self.loaded_asid = [0] * n
            self.next_asid = [1] * n
            for c in range(n):
                self.ctx_id[c][0] = INIT_MM
                self.ctx_gen[c][0] = 1

    def cpumask_set_cpu(self, c, mm, t):
        t = self.atomic(c, self.mm_line(mm, 1), t)
        self.mm_mask[mm] |= 1 << c
        return t

    def cpumask_clear_cpu(self, c, mm, t):
        t = self.atomic(c, self.mm_line(mm, 1), t)
        self.mm_mask[mm] &= ~(1 << c)
        self.ring(c, abi.TR_CPUMASK_CLEAR, mm)
        return t

    def choose_new_asid(self, c, mm, next_tlb_gen):
        if not self.profile.pcid:
            return 0, True
        if mm == INIT_MM and self.dedicated:
            return INIT_ASID, False          # seed 001: "give init_mm its own dedicated ASID"
        ids = self.ctx_id[c]
        ctx = self.mm_ctx[mm]
        for asid in range(TLB_NR_DYN_ASIDS):
            if ids[asid] == ctx:
                return asid, self.ctx_gen[c][asid] < next_tlb_gen
        asid = self.next_asid[c]
        self.next_asid[c] += 1
        if asid >= TLB_NR_DYN_ASIDS:
            asid = 0
            self.next_asid[c] = 1
        return asid, True

    def switch_mm_irqs_off(self, c, nxt, t):
        prev = self.loaded_mm[c]
        was_lazy = self.is_lazy[c]
        if was_lazy:
            # cpu_tlbstate_shared.is_lazy is written only when it changes
            # (v5.13: "Do not make is_lazy dirty for no reason")
            self.is_lazy[c] = 0
            t = self.atomic(c, self.cpu_line(self.lazy_line, c), t, 0)
        if prev == nxt:
            if was_lazy and nxt != INIT_MM:
                # Leaving lazy mode on the same mm: catch up through tlb_gen.
                # (v4.14-rc1 had taken this CPU out of mm_cpumask; re-add it
                # before reading tlb_gen so no flush can be missed.)
                if not (self.mm_mask[nxt] >> c) & 1:
                    t = self.cpumask_set_cpu(c, nxt, t)
                t = self.read_line(c, self.mm_line(nxt, 2), t + self.c_mb)
                asid = self.loaded_asid[c]
                if self.ctx_gen[c][asid] < self.mm_gen[nxt]:
                    self.flush_asid(c, asid)
                    self.ctx_gen[c][asid] = self.mm_gen[nxt]
                    self.n_full_flushes += 1
                    self.n_cr3 += 1
                    t += self.c_full_flush
            return t
        # Stop remote flushes for the previous mm, start them for the next.
        if prev != INIT_MM and (self.mm_mask[prev] >> c) & 1:
            t = self.cpumask_clear_cpu(c, prev, t)
        if nxt != INIT_MM and not (self.mm_mask[nxt] >> c) & 1:
            t = self.cpumask_set_cpu(c, nxt, t)
        t = self.read_line(c, self.mm_line(nxt, 2), t)
        gen = self.mm_gen[nxt]
        asid, need_flush = self.choose_new_asid(c, nxt, gen)
        self.n_cr3 += 1
        if need_flush:
            self.flush_asid(c, asid)
            self.ctx_id[c][asid] = self.mm_ctx[nxt]
            self.ctx_gen[c][asid] = gen
            self.n_full_flushes += 1
            t += self.c_full_flush
        else:
            t += self.c_cr3
        self.loaded_mm[c] = nxt
        self.loaded_asid[c] = asid
        self.ring(c, abi.TR_SWITCH_MM, prev, nxt)
        if not need_flush:
            self.arm_walks(c)
        return t

    def force_init_mm(self, x):
        """Put CPU x on init_mm at no cost (the oracle's recovery after a
        use-after-free, so the rest of the run stays meaningful)."""
        self.loaded_mm[x] = INIT_MM
        self.is_lazy[x] = 0
        asid, need_flush = self.choose_new_asid(x, INIT_MM, self.mm_gen[INIT_MM])
        if need_flush:
            self.flush_asid(x, asid)
            self.ctx_id[x][asid] = self.mm_ctx[INIT_MM]
            self.ctx_gen[x][asid] = self.mm_gen[INIT_MM]
        self.loaded_asid[x] = asid

    def leave_mm(self, c, t):
        if self.loaded_mm[c] == INIT_MM:
            return t
        self.ring(c, abi.TR_LEAVE_MM, self.loaded_mm[c])
        return self.switch_mm_irqs_off(c, INIT_MM, t)

    def enter_lazy_tlb(self, c, t):
        mm = self.loaded_mm[c]
        if mm == INIT_MM:
            return t
        if self.k_lazy_tlb == abi.LAZY_SWITCH_TO_INIT:
            # seed 001: with PCID, switch to init_mm (own ASID, no flush) and
            # leave mm_cpumask: no lazy mode, no IPIs to lazy CPUs.
            return self.switch_mm_irqs_off(c, INIT_MM, t)
        self.is_lazy[c] = 1
        t = self.atomic(c, self.cpu_line(self.lazy_line, c), t, 0)
        self.ring(c, abi.TR_LAZY, mm)
        if self.k_lazy_cpumask == abi.CPUMASK_CLEAR:
            t = self.cpumask_clear_cpu(c, mm, t)    # v4.14-rc1 (94b1b03b519b)
        return t

    def flush_tlb_func(self, c, call, t):
        """Bring this CPU's TLB up to date with call.mm's tlb_gen, in the
        order of v5.13..v6.6: a remote CPU that switched to another mm
        returns first (so a lazy one on *another* mm is left alone), then
        init_mm, then lazy mode, then the generations."""
        mm = self.loaded_mm[c]
        t += self.c_flush_func
        if self.k_read_gen == abi.READ_GEN_ALWAYS:
            # before v6.0 the read sat in the declarations: every call pulls
            # the (contended) tlb_gen line of whatever mm is loaded
            t = self.read_line(c, self.mm_line(mm, 2), t)
        if c != call.initiator and call.mm != mm:
            return t                             # we switched away since
        if mm == INIT_MM:
            return t
        if self.is_lazy[c]:
            # "We need to at least flush our paging-structure cache ... just
            # switch to init_mm."
            self.ring(c, abi.TR_LEAVE_MM, mm)
            return self.switch_mm_irqs_off(c, INIT_MM, t)
        asid = self.loaded_asid[c]
        local_gen = self.ctx_gen[c][asid]
        if self.k_read_gen == abi.READ_GEN_WHEN_NEEDED:
            # aa44284960d5: "checking mm_tlb_gen unnecessarily would have
            # negative caching effects so avoid it"
            if call.new_gen <= local_gen:
                return t
            t = self.read_line(c, self.mm_line(mm, 2), t)
        mm_gen = self.mm_gen[mm]
        if local_gen >= mm_gen:
            return t                             # a concurrent flush caught us up
        if (call.npages != TLB_FLUSH_ALL and call.new_gen == local_gen + 1
                and call.new_gen == mm_gen):
            for page in range(call.start, call.start + call.npages):
                self.invlpg(c, asid, page)
            # INVLPG also drops every paging-structure-cache entry of the
            # current PCID (Intel SDM Vol. 3, 4.10.4.1).
            self.psc_epoch[c][asid] += 1
            self.n_invlpg += call.npages
            self.ctx_gen[c][asid] = call.new_gen
            t += self.c_invlpg * call.npages
            if self.pti:
                t = self.flush_user_asid(c, asid, call.npages, t)
            return t
        self.flush_asid(c, asid)
        self.n_full_flushes += 1
        self.ctx_gen[c][asid] = mm_gen
        return t + self.c_full_flush

    def flush_user_asid(self, c, asid, npages, t):
        """PTI: INVLPG flushed the kernel PCID; the user PCID holds the same
        pages (native_flush_tlb_one_user()). With INVPCID, flush each page
        there too -- the double invalidation; without it, invalidate_user_asid()
        marks the user PCID and the next return to user reloads CR3 without
        NOFLUSH, dropping every user entry (charged here, when it is marked)."""
        if self.invpcid:
            self.n_invpcid += npages
            return t + self.c_invpcid * npages
        self.flush_asid(c, asid)
        self.n_full_flushes += 1
        return t + self.c_full_flush

    def flush_tlb_mm_range(self, c, mm, start, npages, freed, snap, tables, task, cont, t):
        t0 = t
        t = self.atomic(c, self.mm_line(mm, 2), t)       # inc_mm_tlb_gen()
        self.mm_gen[mm] += 1
        # get_flush_tlb_info(): fill this CPU's flush_tlb_info for the targets
        # (the async RFC's "inline messages" copy it into each csd instead)
        if self.k_flush_wait != abi.WAIT_ACK:
            t = self.atomic(c, self.cpu_line(self.info_line, c), t, 0)
        cid = self.next_call
        self.next_call += 1
        call = self.calls[cid] = Call(CALL_FLUSH, c, mm, task, cont, t0)
        call.start = start
        call.npages = TLB_FLUSH_ALL if npages == TLB_FLUSH_ALL or npages > self.k_ceiling \
            else npages
        call.new_gen = self.mm_gen[mm]
        call.freed = freed
        call.snap = snap
        call.tables = tables
        # async flush is only safe when no page table is freed (seed 002, rule 1)
        call.wait_ack = self.k_flush_wait == abi.WAIT_ACK and not freed
        # Which CPUs in mm_cpumask get an IPI: lazy ones only when the knobs
        # say so (v4.20: only when tables are freed).
        t = self.read_line(c, self.mm_line(mm, 1), t)
        # native_flush_tlb_multi: on_each_cpu_mask() when every CPU in the
        # mask is flushed anyway, else on_each_cpu_cond_mask(), which reads
        # each CPU's cpu_tlbstate_shared.is_lazy line
        flush_all = (self.k_flush_lazy == abi.FLUSH_LAZY_ALWAYS
                     or (freed and self.k_flush_lazy == abi.FLUSH_LAZY_FREED))
        targets = []
        mask = self.mm_mask[mm] & ~(1 << c)
        while mask:
            low = mask & -mask
            x = low.bit_length() - 1
            mask ^= low
            if not flush_all or self.hook is not None:
                t = self.read_line(c, self.cpu_line(self.lazy_line, x), t)
            lazy = self.is_lazy[x]
            send = (not lazy or self.k_flush_lazy == abi.FLUSH_LAZY_ALWAYS
                    or (freed and self.k_flush_lazy == abi.FLUSH_LAZY_FREED))
            if self.hook is not None:
                info = FlushInfo(mm, start, None if call.npages == TLB_FLUSH_ALL else npages,
                                 call.new_gen, freed, c, bool(lazy), send)
                send = bool(self.hook(x, info))
            if send:
                targets.append(x)
            else:
                self.ring(c, abi.TR_SKIP, x, mm)
        local = self.loaded_mm[c] == mm
        if local and self.k_flush_local == abi.LOCAL_BEFORE_REMOTE:
            t = self.flush_tlb_func(c, call, t)
        t = self.native_flush_tlb_multi(c, cid, call, targets, t)
        if local and self.k_flush_local == abi.LOCAL_CONCURRENT:
            t = self.flush_tlb_func(c, call, t)
        self.ring(c, abi.TR_FLUSH, mm, call.pending)
        self.finish_sending(c, cid, call, t)

    def native_flush_tlb_multi(self, c, cid, call, targets, t):
        """Send the flush to every target; a KVM guest with the PV flush
        goes through kvm_flush_tlb_multi() instead (pv_ops.mmu.flush_tlb_multi)."""
        if self.pv:
            return self.kvm_flush_tlb_multi(c, cid, call, targets, t)
        return self.smp_call_function_many(c, cid, call, targets, t)

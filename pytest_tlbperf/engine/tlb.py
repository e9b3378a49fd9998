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
from .abi import EV_BROADCAST, EV_CALL_DONE
from .core import INIT_ASID, INIT_MM, NR_HW_ASIDS, TLB_FLUSH_ALL, TLB_NR_DYN_ASIDS
from .smp import Call

# MAX_ASID_AVAILABLE - TLB_NR_DYN_ASIDS - 1 with CONFIG_MITIGATION_PAGE_TABLE_ISOLATION
# (2046 - 6 - 1, d504d1247e36): the global ASIDs a distro kernel can hand out
GLOBAL_ASIDS = 2039
# consider_global_asid(): "Assign a global ASID if the process is active on
# 4 or more CPUs simultaneously" (4afeb0ed1753; fixed, it does not grow)
GLOBAL_ASID_THRESHOLD = 3
HZ = 1000


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
        # cpu_tlbstate.loaded_mm(_asid), which should_flush_tlb() and
        # finish_asid_transition() read from other CPUs
        self.tlbstate_line = [-1] * n
        # global ASIDs (broadcast_flush): handed out in order after the
        # hardware ASIDs; the pool is MAX_ASID_AVAILABLE - TLB_NR_DYN_ASIDS - 1
        self.gasid_lock = self.new_line()          # global_asid_lock
        self.gasid_next = NR_HW_ASIDS
        self.gasid_available = GLOBAL_ASIDS
        self.gasid_end = NR_HW_ASIDS + len(self.program.mm_pages)
        # broadcast invalidations in flight: id -> [asid (-1: every PCID),
        # first page, npages, call id (RAR: the targets' acks)]
        self.bcasts = {}
        self.next_bcast = 0
        self.rar_payload_line = self.new_line()    # the payload-slot bitmap
        self.rar_action_line = [-1] * n            # each CPU's action vector
        self.tlbsync_at = [0] * n                  # when this CPU's INVLPGBs are all done

    def cpumask_set_cpu(self, c, mm, t):
        t = self.atomic(c, self.mm_line(mm, 1), t)
        self.mm_mask[mm] |= 1 << c
        return t

    def cpumask_clear_cpu(self, c, mm, t):
        t = self.atomic(c, self.mm_line(mm, 1), t)
        self.mm_mask[mm] &= ~(1 << c)
        self.ring(c, abi.TR_CPUMASK_CLEAR, mm)
        return t

    def choose_new_asid(self, c, mm, next_tlb_gen, new_cpu=False):
        """(asid, need_flush). A global ASID (broadcast_flush) is the same on
        every CPU and kept up to date by the broadcasts, so it never needs a
        flush -- except with RAR on a CPU that was not in mm_cpumask, which
        the RAR flushes did not cover (the RAR RFC's `new_cpu`)."""
        if not self.profile.pcid:
            return 0, True
        gasid = self.mm_gasid[mm]
        if gasid:
            return gasid, new_cpu and self.k_broadcast == abi.BROADCAST_RAR
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
            asid = self.loaded_asid[c]
            gasid = self.mm_gasid[nxt]
            if gasid and asid != gasid:
                # the mm moved to a global ASID while this CPU ran it
                t = self.read_line(c, self.mm_line(nxt, 2), t)
                return self.load_new_mm(c, prev, nxt, self.mm_gen[nxt], t, False)
            if asid >= NR_HW_ASIDS:
                return t     # "Broadcast TLB invalidation keeps this ASID up to date"
            if was_lazy and nxt != INIT_MM:
                # Leaving lazy mode on the same mm: catch up through tlb_gen.
                # (v4.14-rc1 had taken this CPU out of mm_cpumask; re-add it
                # before reading tlb_gen so no flush can be missed.)
                if not (self.mm_mask[nxt] >> c) & 1:
                    t = self.cpumask_set_cpu(c, nxt, t)
                t = self.read_line(c, self.mm_line(nxt, 2), t + self.c_mb)
                if self.ctx_gen[c][asid] < self.mm_gen[nxt]:
                    self.flush_asid(c, asid)
                    self.ctx_gen[c][asid] = self.mm_gen[nxt]
                    self.n_full_flushes += 1
                    self.n_cr3 += 1
                    t += self.c_full_flush
            return t
        # Stop remote flushes for the previous mm (eager: before v6.14), start
        # them for the next (lazy: only if the bit is not already set).
        if (self.k_cpumask == abi.MASK_EAGER and prev != INIT_MM
                and (self.mm_mask[prev] >> c) & 1):
            t = self.cpumask_clear_cpu(c, prev, t)
        new_cpu = False
        if nxt != INIT_MM and not (self.mm_mask[nxt] >> c) & 1:
            t = self.cpumask_set_cpu(c, nxt, t)
            new_cpu = True
        t = self.read_line(c, self.mm_line(nxt, 2), t)
        return self.load_new_mm(c, prev, nxt, self.mm_gen[nxt], t, new_cpu)

    def load_new_mm(self, c, prev, nxt, gen, t, new_cpu):
        """choose_new_asid() and the CR3 write (load_new_mm_cr3)."""
        asid, need_flush = self.choose_new_asid(c, nxt, gen, new_cpu)
        self.n_cr3 += 1
        if need_flush:
            self.flush_asid(c, asid)
            if asid < NR_HW_ASIDS:
                self.ctx_id[c][asid] = self.mm_ctx[nxt]
                self.ctx_gen[c][asid] = gen
            self.n_full_flushes += 1
            t += self.c_full_flush
        else:
            t += self.c_cr3
        self.loaded_mm[c] = nxt
        self.loaded_asid[c] = asid
        # cpu_tlbstate.loaded_mm, which should_flush_tlb() reads remotely
        t = self.atomic(c, self.cpu_line(self.tlbstate_line, c), t, 0)
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
        order of v6.15 (v5.13..v6.6 had the same order, without the lazy
        mask and global ASIDs): a CPU that no longer runs call.mm returns
        first -- with the lazy mask it leaves mm_cpumask there, the initiator
        included (953753db887f) -- so a lazy CPU on *another* mm is left alone;
        then init_mm; then a CPU still on a dynamic ASID of an mm that moved
        to a global one reloads; a global ASID is kept up to date by the
        broadcasts (INVLPGB); then lazy mode; then the generations. A
        batched flush (reclaim) has no mm: it flushes whatever is loaded."""
        mm = self.loaded_mm[c]
        t += self.c_flush_func
        if self.k_read_gen == abi.READ_GEN_ALWAYS:
            # before v6.0 the read sat in the declarations: every call pulls
            # the (contended) tlb_gen line of whatever mm is loaded
            t = self.read_line(c, self.mm_line(mm, 2), t)
        if not call.any_mm and call.mm != mm:
            if self.k_cpumask != abi.MASK_EAGER:
                # "The CPU was left in the mm_cpumask of the target mm. Clear it."
                return self.cpumask_clear_cpu(c, call.mm, t)
            if c != call.initiator:
                return t                         # we switched away since
        if mm == INIT_MM:
            return t
        asid = self.loaded_asid[c]
        gasid = self.mm_gasid[mm]
        if gasid and asid != gasid:
            # "Reload the ASID if transitioning into or out of a global ASID"
            # -- before the lazy check, so a lazy CPU leaves lazy mode here
            # (v6.15; van Riel's May 2025 idle-race fix moves the lazy check first)
            return self.switch_mm_irqs_off(c, mm, t)
        if asid >= NR_HW_ASIDS and self.k_broadcast == abi.BROADCAST_INVLPGB:
            return t                   # "Broadcast ASIDs are always kept up to date with INVLPGB"
        if self.is_lazy[c]:
            # "We need to at least flush our paging-structure cache ... just
            # switch to init_mm."
            self.ring(c, abi.TR_LEAVE_MM, mm)
            return self.switch_mm_irqs_off(c, INIT_MM, t)
        if asid >= NR_HW_ASIDS:
            # RAR with a global ASID: flushes that get here are processed
            # (the trim IPIs); a full flush of the PCID
            self.flush_asid(c, asid)
            self.n_full_flushes += 1
            return t + self.c_full_flush
        local_gen = self.ctx_gen[c][asid]
        if self.k_read_gen == abi.READ_GEN_WHEN_NEEDED:
            # aa44284960d5: "checking mm_tlb_gen unnecessarily would have
            # negative caching effects so avoid it"
            if not call.any_mm and call.new_gen <= local_gen:
                return t
            t = self.read_line(c, self.mm_line(mm, 2), t)
        mm_gen = self.mm_gen[mm]
        if local_gen >= mm_gen:
            return t                             # a concurrent flush caught us up
        if (not call.any_mm and call.npages != TLB_FLUSH_ALL
                and call.new_gen == local_gen + 1 and call.new_gen == mm_gen):
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
        """v6.15's dispatch: an mm with a global ASID is flushed by broadcast
        (INVLPGB / RAR); otherwise other CPUs in mm_cpumask get IPIs, after
        which the mm may be given a global ASID; otherwise only this CPU
        flushes, if it runs the mm."""
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
        call.irq0 = self.irq_cycles[c]
        call.start = start
        call.npages = TLB_FLUSH_ALL if npages == TLB_FLUSH_ALL or npages > self.k_ceiling \
            else npages
        call.new_gen = self.mm_gen[mm]
        call.freed = freed
        call.snap = snap
        call.tables = tables
        # async flush is only safe when no page table is freed (seed 002, rule 1)
        call.wait_ack = self.k_flush_wait == abi.WAIT_ACK and not freed
        trim = False
        if self.mm_gasid[mm]:
            # the RAR RFC (v3) trims mm_cpumask of global-ASID mms too, with IPIs
            if self.k_broadcast == abi.BROADCAST_RAR and self.k_cpumask == abi.MASK_LAZY:
                trim = self.should_trim_cpumask(c, mm, t)
            if not trim:
                self.broadcast_tlb_flush(c, cid, call, t)
                return
        t = self.read_line(c, self.mm_line(mm, 1), t)
        if not self.mm_mask[mm] & ~(1 << c):
            # no other CPU in mm_cpumask: flush here if this CPU runs the mm
            if self.loaded_mm[c] == mm:
                t = self.flush_tlb_func(c, call, t)
            self.ring(c, abi.TR_FLUSH, mm, 0)
            self.finish_sending(c, cid, call, t)
            return
        if self.k_cpumask == abi.MASK_LAZY and not trim:
            trim = self.should_trim_cpumask(c, mm, t)
        t = self.flush_tlb_multi(c, cid, call, trim, t)
        # consider_global_asid() runs once flush_tlb_multi() returned
        call.consider = self.k_broadcast != abi.BROADCAST_NONE
        self.ring(c, abi.TR_FLUSH, mm, call.pending)
        self.finish_sending(c, cid, call, t)

    def should_trim_cpumask(self, c, mm, t):
        """6db2526c1d69: CPUs left in mm_cpumask that no longer run the mm are
        sent one flush (which clears their bit) at most once a second."""
        jiffies = t // self.jiffy
        if jiffies > self.mm_next_trim[mm]:
            self.mm_next_trim[mm] = jiffies + HZ
            return True
        return False

    def flush_tlb_multi(self, c, cid, call, trim, t):
        """native_flush_tlb_multi(): on_each_cpu_mask() -- every CPU in the
        mask, the local one included -- when page tables are freed or the mm
        is moving to a global ASID; else on_each_cpu_cond_mask() with the
        filter of the knobs: tlb_is_not_lazy (v4.20) or should_flush_tlb
        (v6.14: not lazy, and running the mm or trimming). The filter reads
        each CPU's cpu_tlbstate_shared.is_lazy line, and should_flush_tlb its
        cpu_tlbstate.loaded_mm line too. The local flush runs before the IPIs
        are sent or while they fly (flush_local)."""
        mm, freed = call.mm, call.freed
        lazy_mask = self.k_cpumask != abi.MASK_EAGER
        read_loaded = self.k_cpumask == abi.MASK_LAZY
        flush_all = (self.k_flush_lazy == abi.FLUSH_LAZY_ALWAYS
                     or (freed and self.k_flush_lazy == abi.FLUSH_LAZY_FREED)
                     or self.mm_transition[mm])
        targets = []
        mask = self.mm_mask[mm] & ~(1 << c)
        while mask:
            low = mask & -mask
            x = low.bit_length() - 1
            mask ^= low
            if not flush_all or self.hook is not None:
                t = self.read_line(c, self.cpu_line(self.lazy_line, x), t)
                if read_loaded and not self.is_lazy[x]:
                    t = self.read_line(c, self.cpu_line(self.tlbstate_line, x), t)
            send = flush_all or self.should_flush_tlb(x, mm, trim)
            if self.hook is not None:
                info = FlushInfo(mm, call.start,
                                 None if call.npages == TLB_FLUSH_ALL else call.npages,
                                 call.new_gen, freed, c, bool(self.is_lazy[x]), send)
                send = bool(self.hook(x, info))
            if send:
                targets.append(x)
            else:
                self.ring(c, abi.TR_SKIP, x, mm)
        if lazy_mask:
            # the local CPU goes through the same test when it is in the mask
            local = (self.mm_mask[mm] >> c) & 1 and (flush_all
                                                      or self.should_flush_tlb(c, mm, trim))
        else:
            local = self.loaded_mm[c] == mm
        if local and self.k_flush_local == abi.LOCAL_BEFORE_REMOTE:
            t = self.flush_tlb_func(c, call, t)
        t = self.native_flush_tlb_multi(c, cid, call, targets, t)
        if local and self.k_flush_local == abi.LOCAL_CONCURRENT:
            t = self.flush_tlb_func(c, call, t)
        return t

    def should_flush_tlb(self, x, mm, trim):
        """The remote filter: "Lazy TLB will get flushed at the next context
        switch"; with the lazy mask (v6.14) also a CPU that runs another mm
        is skipped, unless this flush trims the mask."""
        if self.is_lazy[x]:
            return False
        if self.k_cpumask != abi.MASK_LAZY:
            return True          # tlb_is_not_lazy()
        return self.loaded_mm[x] == mm or trim

    def native_flush_tlb_multi(self, c, cid, call, targets, t):
        """Send the flush to every target; a KVM guest with the PV flush
        goes through kvm_flush_tlb_multi() instead (pv_ops.mmu.flush_tlb_multi)."""
        if self.pv:
            return self.kvm_flush_tlb_multi(c, cid, call, targets, t)
        return self.smp_call_function_many(c, cid, call, targets, t)

    # -- global ASIDs and broadcast flushes (v6.15, the RAR RFC) ------------
    def consider_global_asid(self, c, task, mm, t):
        """After an IPI flush: "Check every once in a while" -- when the
        flushing thread's pid matches the jiffy (mod 32) -- whether more than
        3 CPUs run the mm and are not lazy; if so, use_global_asid()."""
        if (task & 31) != ((t // self.jiffy) & 31) or self.mm_gasid[mm]:
            return t
        mask = self.mm_mask[mm]
        if mask.bit_count() <= GLOBAL_ASID_THRESHOLD:
            return t
        lines, count = [], 0
        while mask:
            low = mask & -mask
            x = low.bit_length() - 1
            mask ^= low
            lines.append(self.cpu_line(self.tlbstate_line, x))
            if self.loaded_mm[x] != mm:
                continue
            lines.append(self.cpu_line(self.lazy_line, x))
            if not self.is_lazy[x]:
                count += 1
                if count > GLOBAL_ASID_THRESHOLD:
                    break
        t = self.read_lines(c, lines, t)
        if count <= GLOBAL_ASID_THRESHOLD:
            return t
        return self.use_global_asid(c, mm, t)

    def use_global_asid(self, c, mm, t):
        """Take global_asid_lock and give the mm the next global ASID; it is
        in transition until every CPU that runs it has reloaded CR3."""
        t = self.atomic(c, self.gasid_lock, t)
        if self.mm_gasid[mm] or not self.gasid_available or self.gasid_next >= self.gasid_end:
            return t
        asid = self.gasid_next
        self.gasid_next += 1
        self.gasid_available -= 1
        # mm_assign_global_asid(): asid_transition is set before the ASID is
        # published
        self.mm_transition[mm] = 1
        self.mm_gasid[mm] = asid
        t = self.atomic(c, self.mm_line(mm, 2), t, 0)
        self.ring(c, abi.TR_GLOBAL_ASID, asid, mm)
        return t

    def mm_free_global_asid(self, mm):
        """Process exit: the ASID goes back to the pool -- for reuse only
        after the wrap-around flush, which the model never reaches (a run
        would need more than 2039 multi-threaded processes)."""
        if self.mm_gasid[mm]:
            self.gasid_available += 1

    def broadcast_tlb_flush(self, c, cid, call, t):
        """Flush an mm with a global ASID without IPIs: INVLPGB per range of
        up to invlpgb_max_pages pages or the whole PCID (4afeb0ed1753), or
        RAR to the CPUs in mm_cpumask; then finish_asid_transition(); then
        TLBSYNC, which waits until this CPU's INVLPGBs reached every TLB."""
        mm = call.mm
        asid = self.mm_gasid[mm]
        if self.k_broadcast == abi.BROADCAST_RAR:
            t = self.rar_tlb_flush(c, cid, call, asid, t)
        else:
            n = (1 if call.npages == TLB_FLUSH_ALL
                 else -(-call.npages // self.profile.invlpgb_max_pages))
            t = self.invlpgb(c, asid, call.start, call.npages, n, t)
        t = self.finish_asid_transition(c, cid, call, asid, t)
        if self.k_broadcast == abi.BROADCAST_INVLPGB:
            t = self.tlbsync(c, mm, t)
        self.ring(c, abi.TR_FLUSH, mm, call.pending)
        self.finish_sending(c, cid, call, t)

    def invlpgb(self, c, asid, start, npages, count, t):
        """Issue `count` INVLPGBs; they reach every CPU's TLB tlbsync_ns after
        the last one is issued (asid -1: every PCID, invlpgb_flush_all_nonglobals)."""
        t += count * self.c_invlpgb
        self.n_invlpgb += count
        done = t + self.c_tlbsync
        bid = self.next_bcast
        self.next_bcast += 1
        self.bcasts[bid] = (asid, start, npages)
        self.push(done, c, EV_BROADCAST, bid, -1)
        self.tlbsync_at[c] = max(self.tlbsync_at[c], done)
        self.ring(c, abi.TR_BROADCAST, asid, npages)
        return t

    def tlbsync(self, c, mm, t):
        """TLBSYNC: wait until this CPU's INVLPGBs reached every TLB
        (tlbsync='skip' is the broken policy that returns without it)."""
        if self.k_tlbsync == abi.TLBSYNC_BEFORE_RETURN:
            t = max(t, self.tlbsync_at[c])
            self.ring(c, abi.TR_TLBSYNC, mm)
        return t

    def finish_asid_transition(self, c, cid, call, asid, t):
        """While a CPU that runs the mm is still on its old dynamic ASID, the
        broadcast does not cover it: flush the whole mm_cpumask by IPI (the
        handler reloads CR3 with the global ASID); once none is left, the
        transition is over."""
        mm = call.mm
        if not self.mm_transition[mm]:
            return t
        mask = self.mm_mask[mm]
        while mask:
            low = mask & -mask
            x = low.bit_length() - 1
            mask ^= low
            t = self.read_line(c, self.cpu_line(self.tlbstate_line, x), t)
            if self.loaded_mm[x] == mm and self.loaded_asid[x] != asid:
                return self.flush_tlb_multi(c, cid, call, False, t)
        self.mm_transition[mm] = 0
        return t

    def rar_tlb_flush(self, c, cid, call, asid, t):
        """The RAR RFC's rar_tlb_flush(): a payload slot, an action entry per
        target, one RAR IPI per APIC group to every CPU in mm_cpumask (lazy
        and stale ones too: "RAR flushes do not update the tlb_gen"); the
        targets' microcode invalidates and reports, with no interrupt; the
        initiator spins until each has. The local CPU flushes itself."""
        mm = call.mm
        targets = []
        mask = self.mm_mask[mm] & ~(1 << c)
        while mask:
            low = mask & -mask
            targets.append(low.bit_length() - 1)
            mask ^= low
        t = self.rar_send(c, cid, call, asid, call.start, call.npages, targets, t)
        if (self.mm_mask[mm] >> c) & 1:
            t = self.flush_pcid_local(c, asid, call.start, call.npages, t)
        return t

    def rar_send(self, c, cid, call, asid, start, npages, targets, t):
        if not targets:
            return t
        t = self.atomic(c, self.rar_payload_line, t)        # get_payload_slot()
        bid = self.next_bcast
        self.next_bcast += 1
        self.bcasts[bid] = [asid, start, npages, cid, len(targets)]
        for x in targets:
            t = self.atomic(c, self.cpu_line(self.rar_action_line, x), t, 0)
            call.pending += 1
            call.targets |= 1 << x
        self.n_rar += len(targets)
        return self.send_ipi_mask(c, targets, t, EV_BROADCAST, bid)   # native_send_rar_ipi()

    def flush_pcid_local(self, c, asid, start, npages, t):
        if npages == TLB_FLUSH_ALL or asid < 0:
            if asid < 0:
                self.flush_everything(c)
            else:
                self.flush_asid(c, asid)
            self.n_full_flushes += 1
            return t + self.c_full_flush
        for page in range(start, start + npages):
            self.invlpg(c, asid, page)
        self.psc_epoch[c][asid] += 1
        self.n_invlpg += npages
        return t + self.c_invlpg * npages

    def ev_broadcast(self, c, bid, invlpgb):
        """An INVLPGB reached every TLB (invlpgb -1), or a RAR reached CPU c."""
        rec = self.bcasts[bid]
        asid, start, npages = rec[0], rec[1], rec[2]
        if invlpgb < 0:
            del self.bcasts[bid]
            for x in range(self.ncpu):
                self.broadcast_invalidate(x, asid, start, npages)
            return
        # RAR: the target's microcode acts -- after its C-state exit if it
        # is halted (assumption), whatever its IRQ state
        x = c
        now = self.now
        begin = now
        if self.cstate[x] >= 0:
            begin += self.profile.cstates[self.cstate[x]].exit_latency
        end = begin + self.c_rar
        self.broadcast_invalidate(x, asid, start, npages)
        if self.cstate[x] < 0:
            busy = self.irq_busy[x]
            self.interrupted(x, now, end)
            if busy > now:
                self.irq_busy[x] = busy + self.c_rar
        self.n_flush_cycles += self.c_rar
        self.irq_cycles[x] += self.c_rar
        rec[4] -= 1
        if not rec[4]:
            del self.bcasts[bid]
        call = self.calls[rec[3]]
        arrival = end + self.xfer[self.dist(x, call.initiator)]
        call.done_at = max(call.done_at, arrival)
        call.pending -= 1
        if call.pending == 0:
            self.push(max(call.done_at, call.local_done), call.initiator, EV_CALL_DONE,
                      rec[3])

    def broadcast_invalidate(self, x, asid, start, npages):
        if asid < 0:
            self.flush_everything(x)
        elif npages == TLB_FLUSH_ALL:
            self.flush_asid(x, asid)
        else:
            for page in range(start, start + npages):
                self.invlpg(x, asid, page)
            self.psc_epoch[x][asid] += 1

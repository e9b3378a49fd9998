"""mm/: the mm_struct's life (exec, mmgrab/mmdrop, __mmdrop), page-table pages
(allocated per 2 MiB region from a pool shared by every mm and reused LIFO,
so a freed table soon holds someone else's entries), and the syscalls that
change PTEs and free page tables: madvise(MADV_DONTNEED), munmap, mprotect
(mm/madvise.c, mm/mmap.c, mm/mprotect.c) and exit_mmap(). Each ends in one
flush_tlb_mm_range() for its range (mmu_gather), and page-table pages go
back to the pool only once that flush has returned.
"""

from __future__ import annotations

from collections import deque

from . import abi
from .abi import (CALL_SYNC, CALL_UNLAZY, CONT_EXIT_FREE, CONT_EXIT_MMAP, CONT_HAZPTR, CONT_STEP,
                  CONT_TABLE_SYNC)
from .core import INIT_MM, PAGES_PER_TABLE, TLB_FLUSH_ALL
from .smp import Call
from .tlb import HZ

FOLIO_BATCH = 31     # PAGEVEC_SIZE: "31 pointers + header align the folio_batch"


class Mm:
    """mm_structs, page tables and the PTE-changing syscalls; mixed into Machine."""

    def init_mm(self):
        program = self.program
        # --- mm_structs (index 0 is init_mm) ------------------------------
        self.mm_ctx = [0]
        self.mm_gen = [1]
        self.mm_mask = [0]
        self.mm_count = [1]
        self.mm_users = [1]
        self.mm_present = [bytearray()]
        self.mm_ver = [[]]
        self.mm_ret = [[]]          # per page: newest version whose flush has returned
        self.mm_ret_at = [[]]       # ... when, and on which initiator (for traces)
        self.mm_tables = [[]]
        self.mm_gasid = [0]         # context.global_asid (0: none)
        self.mm_transition = [0]    # context.asid_transition
        self.mm_next_trim = [0]     # context.next_trim_cpumask, in jiffies
        self.mm_lru = [bytearray()]  # per page: its folio is on the LRU
        # four contended lines per mm: mm_count, mm_cpumask, context.tlb_gen,
        # mmap_lock
        self.mm_lines = [self.new_line()]
        self.new_line()
        self.new_line()
        self.new_line()
        self.next_ctx = 1
        # page-table pages: a pool shared by every mm, reused LIFO
        self.table_gen = []
        self.table_mm = []
        self.table_cachers = []     # bitmap of CPUs whose PSC may hold it
        self.table_frees = []       # per table, free number g: (time, cpu, mm) (traces)
        self.table_pool = []
        self.table_fail = self.profile.table_batch_fail_percent
        self.rcu_pending = deque()   # (queued at, tables, by): tables waiting for a grace period
        self.qs_at = [0] * self.ncpu  # when each CPU last passed a quiescent point
        self.tmpl_mm = [-1] * len(program.mm_pages)
        # clone() takes a thread's mm_users reference before it first runs:
        # a process's mm lives until every one of its threads has exited
        self.tmpl_threads = [0] * len(program.mm_pages)
        for t in program.tasks:
            if t.mm >= 0:
                self.tmpl_threads[t.mm] += 1
        # the LRU (modeled where the profile gives lru_lock_cycles): each CPU's
        # lru_add folio_batch of (mm, page, version) and one lruvec lru_lock
        # line per node (socket)
        self.lru_batch = [[] for _ in range(self.ncpu)]
        self.lru_line = [self.new_line() for _ in range(self.profile.sockets)]

    def mm_line(self, mm, which):
        """0: mm_count, 1: mm_cpumask, 2: context.tlb_gen, 3: mmap_lock."""
        return self.mm_lines[mm] + which

    def exec_mm(self, tmpl):
        npages = self.program.mm_pages[tmpl]
        mm = len(self.mm_ctx)
        self.mm_ctx.append(self.next_ctx)
        self.next_ctx += 1
        self.mm_gen.append(1)
        self.mm_mask.append(0)
        self.mm_count.append(1)     # one reference held on behalf of all users
        self.mm_users.append(self.tmpl_threads[tmpl])
        self.mm_present.append(bytearray(npages))
        self.mm_ver.append([0] * npages)
        self.mm_ret.append([0] * npages)
        self.mm_ret_at.append([None] * npages)
        self.mm_tables.append([-1] * ((npages + PAGES_PER_TABLE - 1) // PAGES_PER_TABLE))
        self.mm_gasid.append(0)
        self.mm_transition.append(0)
        # init_new_context(): the first trim at least a second after creation
        self.mm_next_trim.append(self.now // self.jiffy + HZ)
        self.mm_lru.append(bytearray(npages))
        self.mm_lines.append(self.new_line())
        self.new_line()
        self.new_line()
        self.new_line()
        self.tmpl_mm[tmpl] = mm
        return mm

    def mmap_lock(self, c, mm, t):
        """One atomic on the mmap_lock rwsem's count (down_read, up_read, ...).
        Readers do not exclude each other, so only the line's traffic is
        modeled; munmap's write lock does not wait for readers here. Faults
        take it too: before v6.4 they took mmap_lock, since then the VMA's
        lock -- the same single line when, as in will-it-scale, the threads'
        adjacent anonymous mappings merged into one VMA."""
        return self.atomic(c, self.mm_line(mm, 3), t)

    def alloc_table(self, mm, region):
        if self.table_pool:
            table = self.table_pool.pop()
        else:
            table = len(self.table_gen)
            self.table_gen.append(0)
            self.table_mm.append(0)
            self.table_cachers.append(0)
            self.table_frees.append([])
        self.table_mm[table] = mm
        self.mm_tables[mm][region] = table
        return table

    def tlb_remove_tables(self, c, call, now):
        """tlb_finish_mmu() freeing the gathered page-table pages once the
        flush returned. Natively they go back at once (tlb_remove_page). A
        guest with the PV flush uses tlb_remove_table() (its preempted vCPUs
        got no IPI): the tables wait for an RCU grace period -- every CPU
        that is not idle has passed a quiescent point -- unless the batch page
        cannot be allocated (memory.table_batch_fail_percent), when
        tlb_remove_table_sync_one() IPIs every other CPU and waits, then frees.
        Returns True when the initiator now waits for that IPI. Since v6.15
        (a37259732a7d) native kernels free tables by RCU too (table_free)."""
        if not self.pv and self.k_table_free == abi.TABLE_FREE_AFTER_FLUSH:
            for table in call.tables:
                self.free_table(c, table)
            return False
        if self.table_fail and self.rng.below(100) < self.table_fail:
            cid = self.next_call
            self.next_call += 1
            sync = self.calls[cid] = Call(CALL_SYNC, c, call.mm, call.task, CONT_TABLE_SYNC,
                                          now)
            sync.tables, sync.then = call.tables, call.cont
            sync.rest = call.rest
            t = self.smp_call_function_many(c, cid, sync,
                                            [x for x in range(self.ncpu) if x != c], now)
            self.finish_sending(c, cid, sync, t)
            return True
        self.rcu_pending.append((now, call.tables, c))
        return False

    def rcu_quiescent(self, c):
        """CPU c passed a quiescent point: free the tables whose grace period
        is over (every CPU not idle has passed one since they were queued)."""
        self.qs_at[c] = self.now
        while self.rcu_pending:
            since, tables, by = self.rcu_pending[0]
            for x in range(self.ncpu):
                if self.qs_at[x] < since and not self.in_idle[x]:
                    return
            self.rcu_pending.popleft()
            for table in tables:
                self.free_table(by, table)

    def free_table(self, c, table):
        """The flush returned: the page-table page goes back to the pool, and
        any PSC still pointing at it now points at garbage."""
        self.table_gen[table] += 1
        self.table_pool.append(table)
        self.table_frees[table].append((self.now, c, self.table_mm[table]))
        self.ring(c, abi.TR_TABLE_FREE, table, self.table_mm[table])
        mask = self.table_cachers[table]
        self.table_cachers[table] = 0
        while mask:
            low = mask & -mask
            x = low.bit_length() - 1
            mask ^= low
            if self.hung[x] or self.cstate[x] >= 0:
                continue
            for slot in range(self.psc_n):
                if self.psc_table[x][slot] == table and self.psc_stale(x, slot):
                    self.arm_walk(x, slot)

    def mmgrab(self, c, mm, t):
        self.mm_count[mm] += 1
        return self.atomic(c, self.mm_line(mm, 0), t)

    def mmdrop(self, c, mm, t):
        """Drop one mm_count reference; returns (t, reached zero)."""
        self.mm_count[mm] -= 1
        return self.atomic(c, self.mm_line(mm, 0), t), self.mm_count[mm] == 0

    def free_mm(self, c, mm):
        """__mmdrop() freeing the mm_struct (the oracle checks nobody still
        uses it)."""
        self.mm_free_global_asid(mm)
        self.oracle_mm_freed(c, mm)
        self.ring(c, abi.TR_MM_FREE, mm)

    def change_ptes(self, c, task, mm, code, first, npages, free_tables, t):
        """madvise(DONTNEED) / munmap / mprotect: change PTEs, then one
        flush_tlb_mm_range for the range (mmu_gather)."""
        t = self.mmap_lock(c, mm, t + self.c_syscall)
        zap = code != abi.OP_MPROTECT
        if zap and self.c_lru_lock and self.k_lru == abi.LRU_DRAIN_ON_ZAP:
            t = self.lru_add_drain(c, t)     # zap_page_range_single(), unmap_region()
        present, ver = self.mm_present[mm], self.mm_ver[mm]
        snap = []
        last = min(first + npages, len(present))
        for page in range(first, last):
            if present[page]:
                if code != abi.OP_MPROTECT:
                    present[page] = 0
                ver[page] += 1
                snap.append((page, ver[page]))
        t += (self.c_zap if zap else self.c_pte) * len(snap)
        if zap and self.c_lru_lock:
            t = self.lru_release(c, mm, [page for page, _ in snap], t)
        tables = []
        if code == abi.OP_MUNMAP and free_tables:
            # free_pgtables(): only page-table pages whose whole 2 MiB is unmapped
            mm_tables = self.mm_tables[mm]
            for region in range(-(-first // PAGES_PER_TABLE), last // PAGES_PER_TABLE):
                if mm_tables[region] >= 0:
                    tables.append(mm_tables[region])
                    mm_tables[region] = -1
        if not snap and not tables:
            self.schedule_step(c, self.mmap_lock(c, mm, t))
            return
        self.flush_tlb_mm_range(c, mm, first, last - first, bool(tables), snap, tables, task,
                                CONT_STEP, t)
        self.calls[self.next_call - 1].unlock = True     # mmap_read_unlock() after the flush

    def exit_mmap(self, c, task, mm, t):
        """The last user is gone: unmap everything and free every page table,
        with one flush (tlb_finish_mmu with freed_tables)."""
        present, ver = self.mm_present[mm], self.mm_ver[mm]
        if self.c_lru_lock:
            t = self.lru_add_drain(c, t)     # exit_mmap() drains whatever the knob
        zapped = []
        for page in range(len(present)):
            if present[page]:
                present[page] = 0
                ver[page] += 1
                zapped.append(page)
        t += self.c_zap * len(zapped)
        if self.c_lru_lock:
            t = self.lru_release(c, mm, zapped, t)
        tables = [table for table in self.mm_tables[mm] if table >= 0]
        self.mm_tables[mm] = [-1] * len(self.mm_tables[mm])
        # no snapshot: nothing can access a dead mm's pages any more
        self.flush_tlb_mm_range(c, mm, 0, TLB_FLUSH_ALL, True, (), tables, task,
                                CONT_EXIT_MMAP, t)

    def exit_mmap_done(self, c, task, mm, t):
        """__mmput() after exit_mmap()'s flush: release what the users shared."""
        if self.k_lazy_ref == abi.REF_HAZARD and self.k_release == abi.RELEASE_HANDOFF:
            t = self.mm_unlazy_mm_count(c, mm, t)
        # mmput() -> mmdrop() of the reference all users shared
        t, last = self.mmdrop(c, mm, t)
        if not last:
            self.exit_done(c, task, t)
            return
        self.mmdrop_free(c, task, mm, t)

    def mmdrop_free(self, c, task, mm, t):
        """__mmdrop(): the last reference is gone. Lazy users that hold no reference must
        be told first (cleanup_lazy_tlbs())."""
        if self.k_lazy_ref == abi.REF_SHOOTDOWN:
            # Piggin's MMU_LAZY_TLB_SHOOTDOWN (v6.4): on_each_cpu_mask() over
            # the CPUs that may use the mm lazily, this one included, wait=1
            cpus = self.lazy_mm_cpus(mm)
            cid = self.next_call
            self.next_call += 1
            call = self.calls[cid] = Call(CALL_UNLAZY, c, mm, task, CONT_EXIT_FREE, self.now)
            t = self.smp_call_function_many(c, cid, call, [x for x in cpus if x != c], t)
            if c in cpus:
                t = self.unlazy(c, mm, t)        # the local call runs while the IPIs fly
            self.finish_sending(c, cid, call, t)
            return
        if self.k_lazy_ref == abi.REF_HAZARD and self.k_release == abi.RELEASE_SYNC_IPI:
            # Desnoyers' 2024 RFC: hp_scan() every possible CPU's slot; each
            # CPU that still holds the mm gets two synchronous single-CPU
            # calls (do_shoot_lazy_tlb, do_check_lazy_tlb), one CPU at a time
            cpus = self.lazy_mm_cpus(mm)
            t = self.read_lines(c, [self.cpu_line(self.hazard_line, x) for x in cpus],
                                t + self.c_mb)
            matches = [x for x in cpus if self.hazard[x] == mm]
            self.hazptr_retire(c, task, mm, matches, t)
            return
        self.free_mm(c, mm)
        self.exit_done(c, task, t)

    def lazy_mm_cpus(self, mm):
        """The CPUs a non-refcounting teardown looks at (lazy_mm_scan)."""
        if self.k_scan == abi.SCAN_ALL_CPUS:
            return range(self.ncpu)
        mask, cpus = self.mm_mask[mm], []
        while mask:
            low = mask & -mask
            cpus.append(low.bit_length() - 1)
            mask ^= low
        return cpus

    def mm_unlazy_mm_count(self, c, mm, t):
        """Lutomirski's 2021 hazard-pointer teardown, in __mmput(): take
        references for every possible match, scan the CPUs (on x86
        mm_cpumask) and hand each CPU whose hazard still holds the mm an
        mm_count reference through its rq->drop_mm, which it drops at its
        next context switch; give back the rest. No IPI, no wait."""
        t = self.atomic(c, self.mm_line(mm, 0), t)          # atomic_add(drop_count)
        cpus = self.lazy_mm_cpus(mm)
        t = self.read_lines(c, [self.cpu_line(self.hazard_line, x) for x in cpus], t)
        for x in cpus:
            if self.hazard[x] != mm:
                continue
            t = self.atomic(c, self.cpu_line(self.drop_line, x), t)    # xchg(&rq->drop_mm)
            old = self.drop_mm[x]
            self.drop_mm[x] = mm
            self.mm_count[mm] += 1
            if old != INIT_MM:
                # we stole the reference the target had not dropped yet
                t, last = self.mmdrop(c, old, t)
                if last:
                    self.free_mm(c, old)
        return self.atomic(c, self.mm_line(mm, 0), t)        # atomic_sub(the rest)

    def hazptr_retire(self, c, task, mm, matches, t):
        """retire_lazy_mm_hp() for the first CPU left; the calls' completion
        continues with the next (CONT_HAZPTR), then frees the mm."""
        while matches and matches[0] == c:
            # smp_call_function_single() to oneself runs the functions here
            t = self.unlazy(c, mm, t)
            matches = matches[1:]
        if not matches:
            self.free_mm(c, mm)
            self.exit_done(c, task, t)
            return
        x = matches[0]
        cid = self.next_call
        self.next_call += 1
        call = self.calls[cid] = Call(CALL_UNLAZY, c, mm, task, CONT_HAZPTR, self.now)
        call.rest = matches
        t = self.smp_call_function_many(c, cid, call, [x], t)
        self.finish_sending(c, cid, call, t)

    # -- the LRU lock (mm/swap.c) ------------------------------------------
    def lru_cache_add(self, c, mm, page, t):
        """folio_add_lru(): a new anonymous folio goes into this CPU's
        lru_add batch; a full batch is moved to the LRU."""
        batch = self.lru_batch[c]
        batch.append((mm, page, self.mm_ver[mm][page]))
        if len(batch) >= FOLIO_BATCH:
            t = self.lru_add_drain(c, t)
        return t

    def lru_add_drain(self, c, t):
        """folio_batch_move_lru(): under lru_lock, put the batch's folios on
        the LRU; then drop the batch's references, which frees the folios
        that were zapped meanwhile -- taking lru_lock again to unlink them."""
        batch = self.lru_batch[c]
        if not batch:
            return t
        dead = 0
        for mm, page, ver in batch:
            if self.mm_present[mm][page] and self.mm_ver[mm][page] == ver:
                self.mm_lru[mm][page] = 1
            else:
                dead += 1
        t = self.lru_lock(c, len(batch), t)
        if dead:
            t = self.lru_lock(c, dead, t)
        batch.clear()
        return t

    def lru_release(self, c, mm, pages, t):
        """Zapped pages whose folios are on the LRU are freed off it in one
        batch under lru_lock (folios_put_refs); a folio still in a CPU's
        lru_add batch is freed when that batch drains."""
        on_lru = self.mm_lru[mm]
        n = 0
        for page in pages:
            if on_lru[page]:
                on_lru[page] = 0
                n += 1
        return self.lru_lock(c, n, t) if n else t

    def lru_lock(self, c, folios, t):
        """Take the node's lruvec->lru_lock for `folios` folios: the hold is
        lru_lock_cycles (the lruvec lines the holder pulls in) plus a list
        operation (an atomic's worth) per folio -- so batching 31 folios
        under one acquisition is what the lru_add_drain removal buys."""
        self.n_lru_locks += 1
        return self.atomic(c, self.lru_line[self.socket[c]], t,
                           self.c_lru_lock + self.c_atomic * folios)

    # -- reclaim (mm/rmap.c try_to_unmap with a TTU_BATCH_FLUSH batch) ------
    def reclaim(self, c, task, first, npages, tmpl, t):
        """kswapd unmaps a run of another process's pages
        (try_to_unmap_one + arch_tlbbatch_add_pending: one tlb_gen bump per
        page, the batch mask ORs in mm_cpumask), then arch_tlbbatch_flush():
        with INVLPGB one flush of every non-global PCID on every CPU, no
        IPIs (72a920eacd8a, 0b7eb55cb706); with RAR a full flush of the
        batch's CPUs; else IPIs to the batch's CPUs that are not lazy
        (should_flush_tlb with no mm)."""
        mm = self.tmpl_mm[tmpl]
        if mm < 0 or not self.mm_users[mm]:
            self.schedule_step(c, t)
            return
        present, ver = self.mm_present[mm], self.mm_ver[mm]
        snap = []
        for page in range(first, min(first + npages, len(present))):
            if present[page]:
                present[page] = 0
                ver[page] += 1
                snap.append((page, ver[page]))
                t = self.atomic(c, self.mm_line(mm, 2), t + self.c_zap)   # inc_mm_tlb_gen
                self.mm_gen[mm] += 1
        if not snap:
            self.schedule_step(c, t)
            return
        if self.c_lru_lock:
            t = self.lru_release(c, mm, [page for page, _ in snap], t)
        t = self.read_line(c, self.mm_line(mm, 1), t)
        batch = self.mm_mask[mm]
        cid = self.next_call
        self.next_call += 1
        call = self.calls[cid] = Call(abi.CALL_FLUSH, c, mm, task, CONT_STEP, t)
        call.any_mm = True
        call.snap = snap
        call.irq0 = self.irq_cycles[c]
        self.arch_tlbbatch_flush(c, cid, call, batch, t)

    def arch_tlbbatch_flush(self, c, cid, call, batch, t):
        if self.k_broadcast == abi.BROADCAST_INVLPGB:
            t = self.invlpgb(c, -1, 0, TLB_FLUSH_ALL, 1, t)     # invlpgb_flush_all_nonglobals
            t = self.tlbsync(c, call.mm, t)
        elif self.k_broadcast == abi.BROADCAST_RAR:
            targets = [x for x in range(self.ncpu) if (batch >> x) & 1 and x != c]
            t = self.rar_send(c, cid, call, -1, 0, TLB_FLUSH_ALL, targets, t)
            if (batch >> c) & 1:
                t = self.flush_pcid_local(c, -1, 0, TLB_FLUSH_ALL, t)
        else:
            targets = []
            for x in range(self.ncpu):
                if (batch >> x) & 1 and x != c:
                    t = self.read_line(c, self.cpu_line(self.lazy_line, x), t)
                    if not self.is_lazy[x]:
                        targets.append(x)
            t = self.native_flush_tlb_multi(c, cid, call, targets, t)
            if (batch >> c) & 1:
                t = self.flush_tlb_func(c, call, t)
        self.ring(c, abi.TR_FLUSH, call.mm, call.pending)
        self.finish_sending(c, cid, call, t)

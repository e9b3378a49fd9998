"""mm/: the mm_struct's life (exec, mmgrab/mmdrop, __mmdrop), page-table pages
(allocated per 2 MiB region from a pool shared by every mm and reused LIFO,
so a freed table soon holds someone else's entries), and the syscalls that
change PTEs and free page tables: madvise(MADV_DONTNEED), munmap, mprotect
(mm/madvise.c, mm/mmap.c, mm/mprotect.c) and exit_mmap(). Each ends in one
flush_tlb_mm_range() for its range (mmu_gather), and page-table pages go
back to the pool only once that flush has returned.
"""

from __future__ import annotations

from . import abi
from .abi import CALL_UNLAZY, CONT_EXIT_FREE, CONT_EXIT_MMAP, CONT_STEP
from .core import INIT_ASID, INIT_MM, PAGES_PER_TABLE, TLB_FLUSH_ALL
from .smp import Call


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
        # three contended lines per mm: mm_count, mm_cpumask, context.tlb_gen
        self.mm_lines = [self.new_line()]
        self.new_line()
        self.new_line()
        self.next_ctx = 1
        # page-table pages: a pool shared by every mm, reused LIFO
        self.table_gen = []
        self.table_mm = []
        self.table_cachers = []     # bitmap of CPUs whose PSC may hold it
        self.table_frees = []       # per table, free number g: (time, cpu, mm) (traces)
        self.table_pool = []
        self.tmpl_mm = [-1] * len(program.mm_pages)
        # clone() takes a thread's mm_users reference before it first runs:
        # a process's mm lives until every one of its threads has exited
        self.tmpl_threads = [0] * len(program.mm_pages)
        for t in program.tasks:
            if t.mm >= 0:
                self.tmpl_threads[t.mm] += 1

    def mm_line(self, mm, which):
        """0: mm_count, 1: mm_cpumask, 2: context.tlb_gen."""
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
        self.mm_lines.append(self.new_line())
        self.new_line()
        self.new_line()
        self.tmpl_mm[tmpl] = mm
        return mm

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
        """__mmdrop() freeing the mm_struct. The oracle's lazy_mm_use_after_free
        check: no CPU may still reference it, lazily or through CR3."""
        rec = (self.now, c, abi.TR_MM_FREE, mm, 0)
        for x in range(self.ncpu):
            if (self.active_mm[x] == mm and self.lazy_ref[x]) or self.loaded_mm[x] == mm:
                self.report(abi.V_LAZY_MM_UAF, abi.SEV_ERROR, x, (rec,))
                # The real CPU now runs on freed memory; the model drops the
                # dangling reference so the rest of the run stays meaningful.
                self.active_mm[x] = INIT_MM
                self.lazy_ref[x] = 0
                if self.loaded_mm[x] == mm:
                    self.loaded_mm[x] = INIT_MM
                    self.loaded_asid[x] = INIT_ASID if self.profile.pcid else 0
                    self.is_lazy[x] = 0
        self.ring(c, abi.TR_MM_FREE, mm)

    def change_ptes(self, c, task, mm, code, first, npages, free_tables, t):
        """madvise(DONTNEED) / munmap / mprotect: change PTEs, then one
        flush_tlb_mm_range for the range (mmu_gather)."""
        t += self.c_syscall
        present, ver = self.mm_present[mm], self.mm_ver[mm]
        snap = []
        last = min(first + npages, len(present))
        for page in range(first, last):
            if present[page]:
                if code != abi.OP_MPROTECT:
                    present[page] = 0
                ver[page] += 1
                snap.append((page, ver[page]))
        t += (self.c_pte if code == abi.OP_MPROTECT else self.c_zap) * len(snap)
        tables = []
        if code == abi.OP_MUNMAP and free_tables:
            # free_pgtables(): only page-table pages whose whole 2 MiB is unmapped
            mm_tables = self.mm_tables[mm]
            for region in range(-(-first // PAGES_PER_TABLE), last // PAGES_PER_TABLE):
                if mm_tables[region] >= 0:
                    tables.append(mm_tables[region])
                    mm_tables[region] = -1
        if not snap and not tables:
            self.schedule_step(c, t)
            return
        self.flush_tlb_mm_range(c, mm, first, last - first, bool(tables), snap, tables, task,
                                CONT_STEP, t)

    def exit_mmap(self, c, task, mm, t):
        """The last user is gone: unmap everything and free every page table,
        with one flush (tlb_finish_mmu with freed_tables)."""
        present, ver = self.mm_present[mm], self.mm_ver[mm]
        zapped = 0
        for page in range(len(present)):
            if present[page]:
                present[page] = 0
                ver[page] += 1
                zapped += 1
        t += self.c_zap * zapped
        tables = [table for table in self.mm_tables[mm] if table >= 0]
        self.mm_tables[mm] = [-1] * len(self.mm_tables[mm])
        # no snapshot: nothing can access a dead mm's pages any more
        self.flush_tlb_mm_range(c, mm, 0, TLB_FLUSH_ALL, True, (), tables, task,
                                CONT_EXIT_MMAP, t)

    def exit_mmap_done(self, c, task, mm, t):
        # mmput() -> mmdrop() of the reference all users shared
        t, last = self.mmdrop(c, mm, t)
        if not last:
            self.exit_done(c, task, t)
            return
        # __mmdrop(): lazy users that hold no reference must be told first
        if self.k_lazy_ref in (abi.REF_SHOOTDOWN, abi.REF_HAZARD):
            cid = self.next_call
            self.next_call += 1
            call = self.calls[cid] = Call(CALL_UNLAZY, c, mm, task, CONT_EXIT_FREE, self.now)
            # x86 clears a CPU from mm_cpumask when it leaves the mm, so the
            # CPUs that may still borrow it are all of them.
            for x in range(self.ncpu):
                if self.k_lazy_ref == abi.REF_HAZARD:
                    t = self.read_line(c, self.cpu_line(self.hazard_line, x), t)
                    if self.hazard[x] != mm:
                        continue
                if x == c:
                    t = self.unlazy(c, mm, t)
                else:
                    t = self.send_ipi(c, x, cid, call, t)
            self.finish_sending(c, cid, call, t)
            return
        self.free_mm(c, mm)
        self.exit_done(c, task, t)

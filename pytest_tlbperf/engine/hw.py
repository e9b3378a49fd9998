"""The hardware under the kernel: contended cache lines, the TLB and the
paging-structure cache (PSC) of every CPU, the MMU's page walk and its
speculative walks, and -- for KVM guests -- the host preempting vCPUs.

- A contended cache line has an owner and a free-at time: an atomic on it
  waits until the line is free and pays the transfer from the owner (same
  core / same socket / remote). Contention is emergent.
- The TLB is set-associative with a round-robin victim per set; an entry
  is valid while its epoch equals its ASID's epoch (a full flush of the
  ASID bumps the epoch). The PSC maps (ASID, 2 MiB region) to a
  page-table page, with the same epoch rule.
- Speculative walks are only scheduled through PSC entries that point at a
  freed page-table page: walks through live entries change nothing the
  oracle or the metrics can see. A walk is drawn at a uniform delay (mean:
  the profile's walk interval) after the entry became stale or the CPU
  woke up, and only happens while the CPU executes.
"""

from __future__ import annotations

from collections import deque

from . import abi
from .abi import EV_SPEC_WALK
from .core import NR_HW_ASIDS, PAGES_PER_TABLE
from .prng import STREAM_VCPU, Stream


class Hardware:
    """Cache lines, TLB, PSC, page walks, vCPU preemption; mixed into Machine."""

    def init_hw(self):
        P, n = self.profile, self.ncpu
        self.walk_span = 2 * P.walk_interval
        self.walk_severity = abi.SEV_HANG if P.freed_table_walk == "hang" else abi.SEV_SILENT
        self.tlb_sets = P.tlb_entries // P.tlb_ways
        self.tlb_ways = P.tlb_ways
        self.psc_n = P.psc_entries
        self.hung = [0] * n            # the CPU stopped answering (a walk hung it)
        self.hung_at = [0] * n
        ways = self.tlb_ways
        self.tlb_map = [dict() for _ in range(n)]
        self.tlb_key = [[-1] * (self.tlb_sets * ways) for _ in range(n)]
        self.tlb_ver = [[0] * (self.tlb_sets * ways) for _ in range(n)]
        self.tlb_ep = [[0] * (self.tlb_sets * ways) for _ in range(n)]
        self.tlb_rr = [[0] * self.tlb_sets for _ in range(n)]
        self.tlb_epoch = [[0] * NR_HW_ASIDS for _ in range(n)]
        # paging-structure cache: (asid, 2 MiB region) -> page-table page
        self.psc_map = [dict() for _ in range(n)]
        self.psc_key = [[-1] * self.psc_n for _ in range(n)]
        self.psc_table = [[0] * self.psc_n for _ in range(n)]
        self.psc_gen = [[0] * self.psc_n for _ in range(n)]
        self.psc_ep = [[0] * self.psc_n for _ in range(n)]
        self.psc_serial = [[0] * self.psc_n for _ in range(n)]
        self.psc_mm = [[0] * self.psc_n for _ in range(n)]   # for traces: owner and
        self.psc_at = [[0] * self.psc_n for _ in range(n)]   # time of the fill
        self.psc_rr = [0] * n
        self.psc_epoch = [[0] * NR_HW_ASIDS for _ in range(n)]
        self.serial = 0
        # the host's preemption windows of each vCPU (KVM guests)
        self.vwin = [deque() for _ in range(n)] if self.virt else None
        self.vrng = [Stream(self.seed, STREAM_VCPU + x) for x in range(n)] if self.virt else None
        self.vlast = [None] * n

    def dist(self, a, b):
        if self.core[a] == self.core[b]:
            return 0
        return 1 if self.socket[a] == self.socket[b] else 2

    def atomic(self, c, line, t):
        """A LOCK-prefixed RMW by CPU c on a contended cache line."""
        start = max(t, self.line_free[line])
        owner = self.line_owner[line]
        xfer = 0 if owner == c else self.xfer[1 if owner < 0 else self.dist(owner, c)]
        end = start + xfer + self.c_atomic
        self.n_contention += end - t - self.c_atomic
        self.line_owner[line] = c
        self.line_free[line] = end
        return end

    def read_line(self, c, line, t):
        owner = self.line_owner[line]
        return t if owner < 0 or owner == c else t + self.xfer[self.dist(owner, c)]

    def flush_asid(self, c, asid):
        self.tlb_epoch[c][asid] += 1
        self.psc_epoch[c][asid] += 1

    def flush_everything(self, c):
        for asid in range(NR_HW_ASIDS):
            self.flush_asid(c, asid)

    def tlb_fill(self, c, key, ver, epoch):
        m = self.tlb_map[c]
        slot = m.get(key)
        if slot is None:
            s = ((key >> 32) * 131 + (key & 0xFFFFFFFF)) % self.tlb_sets
            rr = self.tlb_rr[c]
            slot = s * self.tlb_ways + rr[s]
            rr[s] = (rr[s] + 1) % self.tlb_ways
            old = self.tlb_key[c][slot]
            if old >= 0:
                del m[old]
            m[key] = slot
            self.tlb_key[c][slot] = key
        self.tlb_ver[c][slot] = ver
        self.tlb_ep[c][slot] = epoch

    def invlpg(self, c, asid, page):
        slot = self.tlb_map[c].pop((asid << 32) | page, None)
        if slot is not None:
            self.tlb_key[c][slot] = -1

    def psc_fill(self, c, key, table):
        m = self.psc_map[c]
        slot = m.get(key)
        if slot is None:
            slot = self.psc_rr[c]
            self.psc_rr[c] = (slot + 1) % self.psc_n
            old = self.psc_key[c][slot]
            if old >= 0:
                del m[old]
            m[key] = slot
            self.psc_key[c][slot] = key
        self.psc_table[c][slot] = table
        self.psc_gen[c][slot] = self.table_gen[table]
        self.psc_ep[c][slot] = self.psc_epoch[c][key >> 32]
        self.serial += 1
        self.psc_serial[c][slot] = self.serial
        self.psc_mm[c][slot] = self.table_mm[table]
        self.psc_at[c][slot] = self.now
        self.table_cachers[table] |= 1 << c
        self.ring(c, abi.TR_PSC_FILL, table, self.table_mm[table])

    def psc_stale(self, c, slot):
        """Does this PSC entry, in the ASID CR3 holds now, point at a freed table?"""
        key = self.psc_key[c][slot]
        if key < 0:
            return False
        asid = key >> 32
        return (asid == self.loaded_asid[c] and self.psc_ep[c][slot] == self.psc_epoch[c][asid]
                and self.psc_gen[c][slot] != self.table_gen[self.psc_table[c][slot]])

    def arm_walk(self, c, slot):
        delay = 1 + self.rng.below(self.walk_span)
        self.push(self.now + delay, c, EV_SPEC_WALK, slot, self.psc_serial[c][slot])

    def arm_walks(self, c):
        """CPU c executes with CR3 on its loaded ASID: every stale PSC entry of
        that ASID is a speculative walk waiting to happen."""
        for slot in range(self.psc_n):
            if self.psc_stale(c, slot):
                self.arm_walk(c, slot)

    # -- vCPU preemption (KVM guests) ------------------------------------

    def ev_spec_walk(self, c, slot, serial):
        if self.hung[c] or self.psc_serial[c][slot] != serial:
            return
        self.vcpu_sync(c)
        if self.cstate[c] >= 0:
            return                  # halted: walks resume (re-armed) at wake-up
        if self.virt:
            resume = self.preempted_until(c, self.now)
            if resume:
                self.push(resume + 1 + self.rng.below(self.walk_span), c, EV_SPEC_WALK,
                          slot, serial)
                return
        if not self.psc_stale(c, slot):
            return
        self.n_spec_walks += 1
        table = self.psc_table[c][slot]
        self.freed_table_walk(c, slot, table)

    def page_walk(self, c, mm, asid, page, t):
        region = page // PAGES_PER_TABLE
        pkey = (asid << 32) | region
        slot = self.psc_map[c].get(pkey)
        hit = slot is not None and self.psc_ep[c][slot] == self.psc_epoch[c][asid]
        if hit and self.psc_gen[c][slot] != self.table_gen[self.psc_table[c][slot]]:
            self.freed_table_walk(c, slot, self.psc_table[c][slot])
            hit = False
            if self.hung[c]:
                return t
        if hit:
            t += self.c_walk_psc
        else:
            t += self.c_walk
            table = self.mm_tables[mm][region]
            if table < 0:
                table = self.alloc_table(mm, region)
            self.psc_fill(c, pkey, table)
        present = self.mm_present[mm]
        if not present[page]:
            present[page] = 1
            self.mm_ver[mm][page] += 1
            self.n_faults += 1
            t += self.c_fault
        self.tlb_fill(c, (asid << 32) | page, self.mm_ver[mm][page], self.tlb_epoch[c][asid])
        return t

    def vcpu_windows_until(self, c, t):
        """c's preemption windows, generated up to time t; those that ended
        before now are dropped. The windows are a function of (seed, cpu)
        only, never of the order of the queries."""
        win = self.vwin[c]
        while win and win[0][1] <= self.now:
            win.popleft()
        v = self.virt
        dur = v["preempt"]
        gap = dur * (100 - v["preempt_percent"]) // max(v["preempt_percent"], 1)
        rng = self.vrng[c]
        if self.vlast[c] is None:
            # Start in a random phase, so the share of preempted vCPUs is
            # stationary from time zero: a vCPU may begin preempted.
            start = rng.below(gap + dur) - dur
            win.append((start, start + dur))
            self.vlast[c] = start + dur
        while self.vlast[c] <= t:
            start = self.vlast[c] + rng.between(gap // 2, gap + gap // 2)
            end = start + rng.between(dur // 2, dur + dur // 2)
            win.append((start, end))
            self.vlast[c] = end
        return win

    def preempted_until(self, c, t):
        """If vCPU c is descheduled by the host at time t, when it runs again."""
        if not self.virt or self.virt["preempt_percent"] == 0:
            return 0
        for start, end in self.vcpu_windows_until(c, t):
            if start > t:
                break
            if t < end:
                return end
        return 0

    def stretch(self, c, start, end):
        """Work from start to end on vCPU c finishes later by every preemption
        window that falls inside it."""
        if self.virt["preempt_percent"] == 0:
            return end
        win = self.vcpu_windows_until(c, end)
        i = 0
        while i < len(win):
            ws, we = win[i]
            if ws >= end:
                break
            if we > start:
                end += we - max(ws, start)
                self.vcpu_windows_until(c, end)   # appends only: nothing ended since
            i += 1
        return end

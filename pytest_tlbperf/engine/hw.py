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

# misses a core keeps in flight (line-fill buffers: 10-12 on Intel client and
# server cores, more on Zen); assumption, one value for every profile
LOAD_PARALLELISM = 10


class PerCpu(dict):
    """Per-CPU state made at the CPU's first use, read as `state[cpu]` like
    the list it replaces: `make()` (or `make(cpu)` with by_cpu) builds a
    CPU's initial state, which is exactly what an untouched CPU holds."""

    __slots__ = ("make", "by_cpu")

    def __init__(self, make, by_cpu=False):
        super().__init__()
        self.make, self.by_cpu = make, by_cpu

    def __missing__(self, cpu):
        value = self[cpu] = self.make(cpu) if self.by_cpu else self.make()
        return value


def _domain_masks(domain_of) -> list:
    """For each CPU, the bitmap of CPUs in its domain (`domain_of[cpu]`)."""
    masks = {}
    for cpu, d in enumerate(domain_of):
        masks[d] = masks.get(d, 0) | 1 << cpu
    return [masks[d] for d in domain_of]


class Hardware:
    """Cache lines, TLB, PSC, page walks, vCPU preemption; mixed into Machine."""

    def init_hw(self):
        P, n = self.profile, self.ncpu
        # topology as bitmaps, for the cache-line rules
        self.n_llc = n // P.smt // P.cores_per_llc
        self.n_socket = P.sockets
        self.llc_cpus = [[] for _ in range(self.n_llc)]
        for x in range(n):
            self.llc_cpus[self.llc[x]].append(x)
        # each CPU's core, LLC and socket as a bitmap of CPUs: one pass per
        # domain, not per pair (a pair loop is a million steps at 1024 CPUs)
        self.mask_core = _domain_masks(self.core)
        self.mask_llc = _domain_masks(self.llc)
        self.mask_socket = _domain_masks(self.socket)
        self.line_book = []            # holds booked on each line: (start, end, cpu)
        self.line_last = []            # the holder before the first booked hold
        self.line_holders = []         # bitmap of CPUs whose caches hold a copy
        self.line_tail_llc = []        # per LLC domain / socket: the end of the last
        self.line_tail_socket = []     # hold taken from there (arbitration)
        self.walk_span = 2 * P.walk_interval
        self.walk_severity = abi.SEV_HANG if P.freed_table_walk == "hang" else abi.SEV_SILENT
        self.tlb_sets = P.tlb_entries // P.tlb_ways
        self.tlb_ways = P.tlb_ways
        self.psc_n = P.psc_entries
        self.hung = [0] * n            # the CPU stopped answering (a walk hung it)
        self.hung_at = [0] * n
        # A CPU's TLB and PSC are made at its first use (PerCpu): a 1024-CPU
        # machine running on 16 of them allocates 16 (the native engine does
        # the same, machine.h), so a flush costs what the CPUs in use cost.
        entries, sets, psc = self.tlb_sets * self.tlb_ways, self.tlb_sets, self.psc_n
        self.tlb_map = PerCpu(dict)
        self.tlb_key = PerCpu(lambda: [-1] * entries)
        self.tlb_ver = PerCpu(lambda: [0] * entries)
        self.tlb_ep = PerCpu(lambda: [0] * entries)
        self.tlb_rr = PerCpu(lambda: [0] * sets)
        # one epoch per hardware ASID, and per global ASID the run may hand out
        self.n_asids = asids = NR_HW_ASIDS + len(self.program.mm_pages)
        self.tlb_epoch = PerCpu(lambda: [0] * asids)
        # paging-structure cache: (asid, 2 MiB region) -> page-table page
        self.psc_map = PerCpu(dict)
        self.psc_key = PerCpu(lambda: [-1] * psc)
        self.psc_table = PerCpu(lambda: [0] * psc)
        self.psc_gen = PerCpu(lambda: [0] * psc)
        self.psc_ep = PerCpu(lambda: [0] * psc)
        self.psc_serial = PerCpu(lambda: [0] * psc)
        self.psc_mm = PerCpu(lambda: [0] * psc)    # for traces: owner and
        self.psc_at = PerCpu(lambda: [0] * psc)    # time of the fill
        self.psc_rr = [0] * n
        self.psc_epoch = PerCpu(lambda: [0] * asids)
        self.serial = 0
        # the host's preemption windows of each vCPU (KVM guests)
        seed = self.seed
        self.vwin = PerCpu(deque) if self.virt else None
        self.vrng = PerCpu(lambda x: Stream(seed, STREAM_VCPU + x), by_cpu=True) \
            if self.virt else None
        self.vlast = [None] * n

    # -- cache lines ------------------------------------------------------
    def dist(self, a, b):
        """0: same core, 1: same last-level cache, 2: same socket, 3: remote."""
        if self.core[a] == self.core[b]:
            return 0
        if self.llc[a] == self.llc[b]:
            return 1
        return 2 if self.socket[a] == self.socket[b] else 3

    def new_line(self):
        """A kernel cache line CPUs contend for; returns its id."""
        self.line_book.append([])
        self.line_last.append(-1)
        self.line_holders.append(0)
        self.line_tail_llc.append([0] * self.n_llc)
        self.line_tail_socket.append([0] * self.n_socket)
        return len(self.line_book) - 1

    def cpu_line(self, lines, x):
        """x's line in a per-CPU array of lines, made at its first use."""
        line = lines[x]
        if line < 0:
            line = lines[x] = self.new_line()
        return line

    def farthest(self, c, holders):
        """Distance level from c to the farthest CPU in the bitmap, -1 if none."""
        if holders & ~self.mask_socket[c]:
            return 3
        if holders & ~self.mask_llc[c]:
            return 2
        if holders & ~self.mask_core[c]:
            return 1
        return 0 if holders else -1

    def nearest(self, c, holders):
        """Distance level from c to the nearest CPU in the bitmap; a line no
        cache holds comes from memory, charged as a same-socket transfer."""
        if holders & self.mask_core[c]:
            return 0
        if holders & self.mask_llc[c]:
            return 1
        if holders & self.mask_socket[c] or not holders:
            return 2
        return 3

    def atomic(self, c, line, t, op=None):
        """A LOCK-prefixed RMW (or, with op=0, a store) by CPU c at time t: it
        needs the line exclusive, for a transfer plus `op` cycles."""
        return self.book(c, line, t, self.c_atomic if op is None else op, True)

    def read_line(self, c, line, t):
        """A plain load by c: free while c holds a copy at t; a miss brings
        the line from the nearest copy and c shares it from then on."""
        if (self.holders_at(line, t) >> c) & 1:
            return t
        return self.book(c, line, t, 0, False)

    def holders_at(self, line, t):
        """Who has a copy at time t: the holders after the holds that are
        over, then every booked hold that started by t, in order (a store
        leaves only its CPU, a load adds its CPU)."""
        book = self.line_book[line]
        self.forget_holds(line, book)
        state = self.line_holders[line]
        for start, _, x, exclusive in book:
            if start > t:
                break
            state = (1 << x) if exclusive else state | (1 << x)
        return state

    def book(self, c, line, t, op, exclusive):
        """Book a miss on a line, from time t; returns when c has the line.

        The line's home serves one miss at a time, so a line is a timeline of
        holds. A kernel path runs ahead of the clock (it books what it does at
        the times it gets there), so holds are booked out of order: the miss
        takes the first gap at or after t that fits it, and waits behind a
        hold only when it overlaps one. A store or RMW holds the line for the
        transfer plus its own cycles and leaves it exclusive; a load holds it
        for the transfer and joins the sharers.

        The transfer: a store on a line nobody else is using invalidates every
        other copy, the farthest bounding the cost; a load takes the nearest
        copy. Behind others, the line comes from the *nearest* CPU that holds
        or waits for it when c asks. That is the arbitration rule: coherence
        fabrics favour nearby requesters, so a line contended by many moves
        mostly inside one core, L3 or socket before it crosses (what cohort
        locks exploit), instead of crossing on every hand-off as strict
        request order would make it."""
        holders = self.holders_at(line, t)
        book = self.line_book[line]
        i = 0
        while i < len(book) and book[i][1] <= t:
            i += 1
        prev = book[i - 1][2] if i else self.line_last[line]
        start = t
        while True:
            extra = 0
            if start == t:
                if exclusive:
                    others = holders & ~(1 << c)
                    level = self.farthest(c, others)
                    if level < 0 and prev < 0:
                        level = 2                   # first touch: from memory
                    elif others & (others - 1):
                        # every further copy is one more invalidation to send
                        # and acknowledge
                        extra = self.c_inval * (others.bit_count() - 1)
                else:
                    level = self.nearest(c, holders)
            else:
                level = self.dist(prev, c)
                if level > 1 and self.line_tail_llc[line][self.llc[c]] > t:
                    level = 1
                if level > 2 and self.line_tail_socket[line][self.socket[c]] > t:
                    level = 2
            end = start + (self.xfer[level] if level >= 0 else 0) + extra + op
            if i == len(book) or end <= book[i][0]:
                break
            start = max(start, book[i][1])          # overlaps a hold: wait for it
            prev = book[i][2]
            i += 1
        book.insert(i, (start, end, c, exclusive))
        self.n_contention += end - t - op
        tails = self.line_tail_llc[line]
        if tails[self.llc[c]] < end:
            tails[self.llc[c]] = end
        tails = self.line_tail_socket[line]
        if tails[self.socket[c]] < end:
            tails[self.socket[c]] = end
        return end

    def forget_holds(self, line, book):
        """Holds that ended before now can delay nothing any more: fold them
        into the line's standing state."""
        now = self.now
        k = 0
        state = self.line_holders[line]
        while k < len(book) and book[k][1] <= now:
            _, _, x, exclusive = book[k]
            state = (1 << x) if exclusive else state | (1 << x)
            k += 1
        if k:
            self.line_holders[line] = state
            self.line_last[line] = book[k - 1][2]
            del book[:k]

    def read_lines(self, c, lines, t):
        """Independent loads of many lines (a scan over per-CPU slots): the
        core keeps up to LOAD_PARALLELISM misses in flight, so the scan takes
        its longest load or its total divided by that, whichever is more."""
        longest = total = 0
        for line in lines:
            cost = self.read_line(c, line, t) - t
            total += cost
            if cost > longest:
                longest = cost
        return t + max(longest, -(-total // LOAD_PARALLELISM))

    def flush_asid(self, c, asid):
        self.tlb_epoch[c][asid] += 1
        self.psc_epoch[c][asid] += 1

    def flush_everything(self, c):
        for asid in range(self.n_asids):
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

    def page_walk(self, c, mm, asid, page, flags, t):
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
            t = self.mmap_lock(c, mm, t)
            t += self.c_fault_file if flags & 2 else self.c_fault
            t = self.mmap_lock(c, mm, t)
            if flags & 1 and not flags & 4 and self.c_lru_lock:
                # a write fault allocates a folio (anonymous, or the COW copy
                # of a private file page); a shared file page is already cached
                t = self.lru_cache_add(c, mm, page, t)
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

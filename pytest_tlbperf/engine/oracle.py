"""The correctness oracle (DESIGN §3.4): it watches machine state, never a
policy's name. Every CPU keeps a ring of its last trace records; a
violation is reported once per (kind, cpu) with the records that led to it
and counted every time.

Kinds checked here: `stale_tlb` (an access used a translation older than
one whose flush already returned), `freed_table_walk` (a walk went through
a paging-structure-cache entry pointing at a freed page-table page; on the
AMD parts of the 2017 report the CPU hangs), `lazy_mm_use_after_free` (an
mm freed while a CPU still had it loaded or borrowed, see mm.free_mm) and
`hang` (an initiator waited past the watchdog for its cross-call).
"""

from __future__ import annotations

from . import abi
from .core import INIT_MM, MAX_VIOLATIONS, RING, WATCHDOG_NS


class Oracle:
    """Trace rings and the checks; mixed into Machine."""

    def init_oracle(self):
        n = self.ncpu
        self.rings = [[None] * RING for _ in range(n)]
        self.rpos = [0] * n
        self.violation_counts = [0] * len(abi.VIOLATION_KINDS)
        self.violations = []
        self.seen = set()
        self.watchdog = self.profile.cycles_from_ns(WATCHDOG_NS)

    def ring(self, c, code, a=0, b=0):
        self.rings[c][self.rpos[c]] = (self.now, c, code, a, b)
        self.rpos[c] = (self.rpos[c] + 1) % RING

    def history(self, c):
        r, p = self.rings[c], self.rpos[c]
        return [rec for rec in r[p:] + r[:p] if rec is not None]

    def report(self, kind, severity, c, extra=()):
        """The oracle's single exit: count every violation, keep the first per
        (kind, cpu) with the events that led to it."""
        self.violation_counts[kind] += 1
        key = (kind, c)
        if key in self.seen or len(self.violations) >= MAX_VIOLATIONS:
            return
        self.seen.add(key)
        # stable by time: same-time records keep the order they happened in
        trace = sorted(dict.fromkeys(self.history(c) + list(extra)), key=lambda rec: rec[0])
        self.violations.append((kind, severity, c, self.now, tuple(trace)))

    def oracle_mm_freed(self, c, mm):
        """lazy_mm_use_after_free: no CPU may still reference a freed mm,
        lazily (a borrowed active_mm) or through CR3."""
        rec = (self.now, c, abi.TR_MM_FREE, mm, 0)
        for x in range(self.ncpu):
            if (self.active_mm[x] == mm and self.lazy_ref[x]) or self.loaded_mm[x] == mm:
                self.report(abi.V_LAZY_MM_UAF, abi.SEV_ERROR, x, (rec,))
                # The real CPU now runs on freed memory; the model drops the
                # dangling reference so the rest of the run stays meaningful.
                self.active_mm[x] = INIT_MM
                self.lazy_ref[x] = 0
                if self.loaded_mm[x] == mm:
                    self.force_init_mm(x)

    def stale_tlb(self, c, mm, page):
        """The oracle: this access used a translation older than one whose
        flush already returned to its initiator."""
        self.ring(c, abi.TR_ACCESS_STALE, page, mm)
        at, by = self.mm_ret_at[mm][page]
        self.report(abi.V_STALE_TLB, abi.SEV_ERROR, c, ((at, by, abi.TR_FLUSH, mm, -1),))

    def freed_table_walk(self, c, slot, table):
        mm = self.psc_mm[c][slot]
        self.ring(c, abi.TR_WALK, table, mm)
        # the free that invalidated this entry: the first one after its fill
        freed_at, freed_by, _ = self.table_frees[table][self.psc_gen[c][slot]]
        self.report(abi.V_FREED_TABLE_WALK, self.walk_severity, c,
                    ((self.psc_at[c][slot], c, abi.TR_PSC_FILL, table, mm),
                     (freed_at, freed_by, abi.TR_TABLE_FREE, table, mm)))
        # the walk replaced the entry with whatever the reused page held
        key = self.psc_key[c][slot]
        del self.psc_map[c][key]
        self.psc_key[c][slot] = -1
        if self.walk_severity == abi.SEV_HANG:
            self.hung[c] = 1          # the 2017 AMD hang: this CPU stops answering
            self.hung_at[c] = self.now
            self.step_token[c] += 1
            for cid in self.csdq[c]:  # requests it will never take: their initiators hang
                self.arm_watchdog(cid, self.calls[cid])
            for cid in self.handling[c] or ():   # ... or never finish
                self.arm_watchdog(cid, self.calls[cid])
            self.ring(c, abi.TR_HUNG, c)

    def ev_watchdog(self, c, cid):
        call = self.calls.get(cid)
        if call is None:
            return
        extra = [(self.hung_at[x], x, abi.TR_HUNG, x, 0) for x in range(self.ncpu)
                 if self.hung[x] and (call.targets >> x) & 1]
        self.report(abi.V_HANG, abi.SEV_HANG, c, extra)

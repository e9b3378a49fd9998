"""cpuidle: the idle loop, the governor's choice of a C-state, and leaving it.

The governor knows the next timer on its CPU and picks the deepest state
whose target residency fits. Entering a state takes as long as leaving it;
an interrupt during entry pays only the time already spent. States that
flush the TLB (CPUIDLE_FLAG_TLB_FLUSHED) lose the TLB and PSC, and with
idle_leave_mm="tlb_flushed_states" the CPU leaves its mm first.
"""

from __future__ import annotations

from . import abi


class Idle:
    """The idle loop and C-states; mixed into Machine."""

    def init_idle(self):
        P, n = self.profile, self.ncpu
        self.cs_exit = [s.exit_latency for s in P.cstates]
        self.cs_residency = [s.target_residency for s in P.cstates]
        self.cs_flushed = [s.tlb_flushed for s in P.cstates]
        self.cstate = [-1] * n         # C-state index, -1: executing (C0)
        self.idle_since = [0] * n

    def wake_from_idle(self, c, by_ipi):
        """Leave the C-state; returns the exit latency paid. Entering a state
        is taken to last as long as leaving it: an interrupt that arrives
        during entry aborts it and pays only the time spent so far (MWAIT
        does not sleep on a pending interrupt)."""
        state = self.cstate[c]
        self.cstate[c] = -1
        self.n_idle_wakeups += 1
        self.ring(c, abi.TR_WAKE, by_ipi, state)
        self.arm_walks(c)
        return min(self.cs_exit[state], self.now - self.idle_since[c])

    def idle_loop(self, c):
        if self.runq[c]:
            self.schedule(c, self.now)
            return
        timers = self.timers[c]
        predicted = timers[0] - self.now if timers else None
        state = -1
        for i, residency in enumerate(self.cs_residency):
            if predicted is None or residency <= predicted:
                state = i
        if state < 0:
            return          # poll in C0 until the next wake-up
        self.cstate[c] = state
        self.idle_since[c] = self.now
        self.ring(c, abi.TR_IDLE, state)
        if self.cs_flushed[state]:
            self.flush_everything(c)     # the core loses its TLB and PSC
            if self.k_idle_leave == abi.IDLE_LEAVE_FLUSHED:
                self.leave_mm(c, self.now)

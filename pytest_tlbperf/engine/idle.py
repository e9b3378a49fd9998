"""cpuidle: the idle loop, the governor's choice of a C-state, and leaving it.

The governor is menu-like (drivers/cpuidle/governors/menu.c): it predicts
the idle duration as the time to the CPU's next timer, shortened to the
"typical interval" of the last 8 idle periods when they agree
(get_typical_interval(): accepted when their variance is at most 400 us^2,
or when avg^2 > 36 variance with at least 6 of the 8 kept; otherwise the
largest is dropped and the test repeated). With no timer and no pattern it
picks the deepest state, as a tickless CPU does. It then picks the deepest
state whose target residency fits the prediction. Left out: menu's
per-bucket correction factors and iowait multiplier.

Leaving a state costs an exit latency drawn (machine stream) uniformly from
the state's measured wake-up range `wake_min..wake_max`, which the profile
bounds by the driver's exit latency -- the driver's figure is the worst
case the governor plans with, not what a wake-up typically costs.
Entering a state takes as long as leaving it: an interrupt that arrives
during entry aborts it and pays only the time spent so far (MWAIT does not
sleep on a pending interrupt).

While idle, a CPU in the POLL loop (no state fits) or in an MWAIT state
polls its thread flags (TIF_POLLING_NRFLAG): a scheduler wake-up needs no
IPI there (see sched.try_to_wake_up). States that flush the TLB
(CPUIDLE_FLAG_TLB_FLUSHED) lose the TLB and PSC, and with
idle_leave_mm="tlb_flushed_states" the CPU leaves its mm first.
"""

from __future__ import annotations

from . import abi

INTERVALS = 8          # menu.c: idle periods the typical-interval detector looks at


class Idle:
    """The idle loop, the governor and C-states; mixed into Machine."""

    def init_idle(self):
        P, n = self.profile, self.ncpu
        self.cs_residency = [s.target_residency for s in P.cstates]
        self.cs_flushed = [s.tlb_flushed for s in P.cstates]
        self.cs_polling = [s.polling for s in P.cstates]
        self.cs_wake = [(s.wake_min, s.wake_max) for s in P.cstates]
        self.cstate = [-1] * n         # C-state index, -1: executing (C0)
        self.in_idle = [0] * n         # in an idle state (polling or halted) since idle_since
        self.idle_since = [0] * n
        self.idle_hist = [[-1] * INTERVALS for _ in range(n)]   # recent idle periods, us
        self.idle_pos = [0] * n
        self.us = P.clock_mhz          # cycles per microsecond

    def polling(self, x):
        """Is idle CPU x watching its thread flags (no IPI needed to wake it)?"""
        return self.cstate[x] < 0 or self.cs_polling[self.cstate[x]]

    def idle_exit(self, c, t):
        """A stay in an idle state ends (a wake-up or an interrupt): the
        governor remembers how long it was."""
        if self.in_idle[c]:
            self.in_idle[c] = 0
            self.idle_hist[c][self.idle_pos[c]] = (t - self.idle_since[c]) // self.us
            self.idle_pos[c] = (self.idle_pos[c] + 1) % INTERVALS

    def wake_from_idle(self, c, by_ipi):
        """Leave the C-state; returns the exit latency paid."""
        state = self.cstate[c]
        self.cstate[c] = -1
        self.idle_exit(c, self.now)
        self.n_idle_wakeups += 1
        self.ring(c, abi.TR_WAKE, by_ipi, state)
        self.arm_walks(c)
        lo, hi = self.cs_wake[state]
        return min(self.rng.between(lo, hi), self.now - self.idle_since[c])

    def typical_interval(self, c):
        """menu.c get_typical_interval(), in microseconds; None: no pattern."""
        data = self.idle_hist[c]
        if min(data) < 0:
            return None                          # fewer than 8 periods seen yet
        thresh = max(data)
        while True:
            kept = [d for d in data if d <= thresh]
            n = len(kept)
            avg = sum(kept) // n
            variance = sum((d - avg) * (d - avg) for d in kept) // n
            if (avg * avg > variance * 36 and n * 4 >= INTERVALS * 3) or variance <= 400:
                return avg
            if n * 4 <= INTERVALS * 3:
                return None
            thresh = max(kept) - 1

    def idle_loop(self, c):
        if self.runq[c]:
            self.schedule(c, self.now)
            return
        self.in_idle[c] = 1
        self.idle_since[c] = self.now
        timers = self.timers[c]
        predicted = timers[0] - self.now if timers else None
        typical = self.typical_interval(c)
        if typical is not None:
            typical *= self.us
            predicted = typical if predicted is None else min(predicted, typical)
        state = -1
        for i, residency in enumerate(self.cs_residency):
            if predicted is None or residency <= predicted:
                state = i
        if state < 0:
            return          # poll in C0 until the next wake-up
        self.cstate[c] = state
        self.ring(c, abi.TR_IDLE, state)
        if self.cs_flushed[state]:
            self.flush_everything(c)     # the core loses its TLB and PSC
            if self.k_idle_leave == abi.IDLE_LEAVE_FLUSHED:
                self.leave_mm(c, self.now)

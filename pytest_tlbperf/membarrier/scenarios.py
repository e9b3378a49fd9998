"""The membarrier scenarios of seed 004, generated from a policy's knobs.

membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) promises that every running
thread of the caller's mm has passed through a full barrier between the entry
to and the return from the call.  Userspace relies on it to pair a
``barrier()``-only fast path with an ``smp_mb()``-plus-membarrier() slow path:
the store-buffering shape with a real barrier on one side only, made safe.

Seed 004 (Alan Stern, Mathieu Desnoyers, 2020-07-17) works through the two ways
the kernel keeps the promise for a thread on CPU1:

(a) ``membarrier_ipi`` -- CPU1 runs the user task; membarrier() reads
    ``cpu_rq(1)->curr``, sends the IPI and waits for ``ipi_mb()``.  The
    IPI-induced mb on CPU1 pairs with membarrier's ``smp_mb()`` (c).  No
    scheduler barrier is involved, so this program is the same for every knob
    setting: it is the control.
(b) ``membarrier_kthread`` -- CPU1 runs a kthread (lazily on the mm) and is
    switching back to the user task while membarrier() runs.  If membarrier()
    reads ``rq->curr == kthread`` it skips the IPI, and then only a barrier on
    CPU1's switch path *after* the ``rq->curr`` store orders that store before
    the user code: Stern, agreeing with Piggin: "A memory barrier is needed somewhere between
    the assignment at 6 and the return to user mode at 8.  Otherwise you end up
    with the Store Buffer pattern having a memory barrier on only one side".
    This is the barrier seed 003 argues about: implied today by the CR3 write
    and by mmdrop()'s atomic, explicit in Lutomirski's "membarrier: Make the
    post-switch-mm barrier explicit" (PATCH 4/8, June 2021).

Which barriers exist on CPU1's kthread -> user switch is derived from the
knobs alone, never from a policy's name (`switch_to_user_barriers`):

* ``smp_mb__after_spinlock()`` before ``rq->curr = next``, always (on x86 the
  rq lock's LOCK CMPXCHG is the barrier; the macro is empty);
* ``write_cr3`` in ``switch_mm_irqs_off()`` iff the mm really changes:
  ``lazy_tlb="stay"`` kept the mm loaded while the kthread ran, so
  ``real_prev == next`` and no CR3 is written (a tlb_gen catch-up flush *may*
  write it, but nothing guarantees one); ``lazy_tlb="switch_to_init_mm"`` sat
  on init_mm, so returning writes CR3 -- serializing;
* ``mmdrop(rq->prev_mm)`` in ``finish_task_switch()``, a LOCK DECL, iff
  ``lazy_mm_ref="refcount"`` -- hazard pointers, shootdown and "none" hold no
  counted lazy reference and have nothing to drop;
* ``smp_mb()`` iff ``switch_mm_barrier="explicit"``.

Nothing else on the path is credited: ``raw_spin_rq_unlock`` is a plain
store on x86, and the return to user may be SYSRET, which is not serializing
(that is why MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE exists).

Registers, and why the forbidden outcome reads ``r1 = 0 /\\ r2 = 0``
--------------------------------------------------------------------
Stern draws the shape as message passing: CPU1 does ``x = 1; barrier();
y = 1``, CPU0 does ``r2 = y; membarrier(); r1 = x``, forbidden ``r1 = 0`` with
``r2 = 1``.  On x86-TSO that shape is forbidden with no barrier at all --
stores are not reordered with stores nor loads with loads (SDM Example 8-1) --
so it cannot tell a correct policy from a broken one; `seed004_mp` keeps it,
with no barrier at all on CPU1, to show exactly that.  The one reordering TSO
allows is a load passing an older store, so the shape that can break on x86
is store buffering, and we write it keeping Stern's roles::

    CPU0 (calls membarrier)            CPU1 (switches to the user task)
    y = 1                              smp_mb__after_spinlock()
    smp_mb()             a             rq_curr = user       rq->curr = next
    r0 = rq_curr         b             <barriers from the knobs>
    if r0 == kthread: skip 2           x = 1                user code
    ipi(cpu1)                          barrier()
    wait_ipi                           r2 = y
    smp_mb()             c
    r1 = x

``r1`` is Stern's ``r1``: CPU0 reads ``x`` after membarrier() and must see
CPU1's store.  ``r2`` plays the role of Stern's ``r2 = 1`` -- the evidence that
CPU1's user code ran *before* the membarrier() -- but under TSO that evidence
is CPU1's own load missing CPU0's pre-membarrier store: ``r2 = 0``.  So the
issue's "r1 = 0 with r2 = 1" is, faithfully on x86, ``r1 = 0 /\\ r2 = 0``.
CPU0 observes the violation (``r1`` is its register), so violations name cpu0.

In Stern's drawing the user code runs *before* CPU1 switches to the kthread,
so the barrier that matters is the one on the way in ("in this scenario
CPU1's switch back to the user process is irrelevant"): that is the
``smp_mb__after_spinlock()`` before the rq->curr store, present on every
switch, so it cannot separate policies.  Scenario (b) therefore runs the user
code *after* the switch back, where the barrier after the rq->curr store --
the one the knobs decide -- is what stands between CPU0 and the SB outcome.
"""

from __future__ import annotations

from ..policy import Knobs, Policy
from ..result import Violation
from .litmus import (Fence, LitmusProgram, Load, Nop, Rmw, SendIpi, Serialize, SkipIfEq,
                     Store, WaitIpi)
from .tso import check

__all__ = ["KTHREAD", "USER", "FORBIDDEN", "FORBIDDEN_TEXT", "SCENARIO_NAMES", "resolve_knobs",
           "switch_to_user_barriers", "membarrier_ipi", "membarrier_kthread", "seed004_mp",
           "scenarios", "ScenarioResult", "check_policy", "violations", "table",
           "knobs_label"]

KTHREAD, USER = "kthread", "user"

#: the outcome the membarrier contract forbids, in every scenario
FORBIDDEN = {"r1": 0, "r2": 0}
FORBIDDEN_TEXT = "r1 = 0 /\\ r2 = 0"

SCENARIO_NAMES = ("membarrier_ipi", "membarrier_kthread")

_SOURCE = "seed 004, Stern/Desnoyers 2020-07-17"


class _GenericProfile:
    """Stand-in for a machine profile when none is given: `Policy.configure()`
    may read `.name` and `.vendor` (it has no INVLPGB or RAR)."""
    __slots__ = ("name", "vendor")

    def __init__(self):
        self.name, self.vendor = "generic", "intel"


def resolve_knobs(policy_or_knobs, profile=None) -> Knobs:
    """`Knobs` as given, or a `Policy` class/instance resolved on `profile`
    (default: a generic Intel machine)."""
    if isinstance(policy_or_knobs, Knobs):
        return policy_or_knobs
    policy = policy_or_knobs
    if isinstance(policy, type) and issubclass(policy, Policy):
        policy = policy()
    if not isinstance(policy, Policy):
        raise TypeError(f"expected Knobs, a Policy subclass or a Policy instance, "
                        f"not {policy_or_knobs!r}")
    return policy.knobs(profile if profile is not None else _GenericProfile())


def switch_to_user_barriers(knobs: Knobs) -> tuple:
    """CPU1's full barriers after ``rq->curr = next`` on a kthread -> user
    switch, in the order context_switch() executes them."""
    out = []
    if knobs.lazy_tlb == "switch_to_init_mm":
        out.append(Serialize("write_cr3", note="switch_mm_irqs_off: init_mm -> mm"))
    # Upstream's non-refcounted scheme (MMU_LAZY_TLB_SHOOTDOWN, v6.2) keeps
    # the barrier: mmdrop_lazy_tlb() does smp_mb() instead of mmdrop() -- "must
    # provide a full memory barrier, see the membarrier comment in
    # finish_task_switch".  In knob terms that is switch_mm_barrier="explicit";
    # lazy_mm_ref="shootdown" alone drops the atomic and with it the barrier.
    if knobs.lazy_mm_ref == "refcount":
        out.append(Rmw("mm_count", "add", -1,
                       note="finish_task_switch: mmdrop(rq->prev_mm), lock decl"))
    if knobs.switch_mm_barrier == "explicit":
        out.append(Fence("smp_mb()", note="explicit post-switch_mm barrier (seed 003)"))
    return tuple(out)


def _membarrier_caller(before=None) -> list:
    """CPU0: a user access (`before`, by default the store of the SB shape),
    membarrier_private_expedited() for one other CPU, a user load.  The same
    code in every scenario."""
    return [
        before or Store("y", 1, note="user: before membarrier()"),
        Fence("smp_mb()", note="a: membarrier entry"),
        Load("r0", "rq_curr", note="b: p = cpu_rq(1)->curr"),
        SkipIfEq("r0", KTHREAD, 2, note="p->mm != current->mm: no IPI"),
        SendIpi(1, note="smp_call_function_many(ipi_mb)"),
        WaitIpi(note="wait=1"),
        Fence("smp_mb()", note="c: membarrier exit"),
        Load("r1", "x", note="user: after membarrier()"),
    ]


def _user_code() -> list:
    """CPU1's user fast path: only a compiler barrier between store and load."""
    return [
        Store("x", 1, note="user"),
        Nop("barrier()", note="user: compiler barrier only"),
        Load("r2", "y", note="user"),
    ]


def membarrier_ipi(knobs: Knobs) -> LitmusProgram:
    """(a) CPU1 runs the user task throughout; membarrier() sends the IPI
    (seed 004, Stern's first diagram, "Ignoring the kthread issue").  The
    knobs do not enter: no scheduler path runs."""
    return LitmusProgram(
        "membarrier_ipi", [_membarrier_caller(), _user_code()],
        init={"y": 0, "x": 0, "rq_curr": USER},
        condition=FORBIDDEN, allowed=False, source=_SOURCE, observer=0)


def membarrier_kthread(knobs: Knobs) -> LitmusProgram:
    """(b) CPU1 runs a kthread lazily on the mm and switches back to the user
    task; membarrier() may read rq->curr == kthread and skip the IPI (seed
    004, Stern's second diagram).  ``mm_count`` starts at 2: the user's
    reference and the kthread's lazy one that mmdrop() gives back."""
    cpu1 = [Fence("smp_mb__after_spinlock()", note="__schedule: rq lock")]
    cpu1.append(Store("rq_curr", USER, note="rq->curr = next"))
    cpu1.extend(switch_to_user_barriers(knobs))
    cpu1.extend(_user_code())
    return LitmusProgram(
        "membarrier_kthread", [_membarrier_caller(), cpu1],
        init={"y": 0, "x": 0, "rq_curr": KTHREAD, "mm_count": 2},
        condition=FORBIDDEN, allowed=None, source=_SOURCE, observer=0)


def seed004_mp(knobs: Knobs | None = None) -> LitmusProgram:
    """Stern's diagrams as drawn -- message passing: CPU1's user code does
    ``x = 1; barrier(); y = 1`` and then switches to a kthread, with every
    barrier of that switch (even ``smp_mb__after_spinlock()``) deliberately
    left out.  ``r1 = 0 /\\ r2 = 1`` is still unreachable on TSO (SDM Example
    8-1), whatever the knobs: this is why the scenarios use store buffering."""
    return LitmusProgram(
        "seed004_mp",
        [_membarrier_caller(Load("r2", "y", note="user: before membarrier()")),
         [Store("x", 1, note="user"),
          Nop("barrier()", note="user: compiler barrier only"),
          Store("y", 1, note="user"),
          Store("rq_curr", KTHREAD, note="rq->curr = kthread, no barrier at all")]],
        init={"x": 0, "y": 0, "rq_curr": USER},
        condition={"r1": 0, "r2": 1}, allowed=False, source=_SOURCE, observer=0)


def scenarios(policy_or_knobs, profile=None) -> list:
    """The two seed-004 scenarios for these knobs: [membarrier_ipi,
    membarrier_kthread]."""
    knobs = resolve_knobs(policy_or_knobs, profile)
    return [membarrier_ipi(knobs), membarrier_kthread(knobs)]


class ScenarioResult:
    """The checker's answer for one scenario under one set of knobs."""

    __slots__ = ("scenario", "program", "forbidden_reachable", "states_explored",
                 "witness", "cpu")

    def __init__(self, scenario: str, program: LitmusProgram, forbidden_reachable: bool,
                 states_explored: int, witness=(), cpu: int = 0):
        if forbidden_reachable != bool(witness):
            raise ValueError(f"{scenario}: a reachable forbidden outcome needs a witness "
                             f"and an unreachable one has none")
        self.scenario = scenario
        self.program = program
        self.forbidden_reachable = bool(forbidden_reachable)
        self.states_explored = int(states_explored)
        self.witness = tuple(witness)
        self.cpu = cpu

    @property
    def verdict(self) -> str:
        return "reachable" if self.forbidden_reachable else "unreachable"

    def __repr__(self):
        return (f"<ScenarioResult {self.scenario}: {self.program.condition_text()} "
                f"{self.verdict}, {self.states_explored} states>")


def check_policy(policy_or_knobs, profile=None) -> list:
    """Run both scenarios through the TSO checker for one policy/knobs."""
    out = []
    for prog in scenarios(policy_or_knobs, profile):
        outcome = check(prog)
        out.append(ScenarioResult(prog.name, prog, outcome.reachable(),
                                  outcome.states_explored, outcome.witness(),
                                  cpu=prog.observer))
    return out


def violations(policy_or_knobs, profile=None) -> list:
    """A ``membarrier_order`` Violation per scenario whose forbidden outcome
    is reachable; the trace is the witness interleaving."""
    return [Violation("membarrier_order", "error", cpu=r.cpu, time_ns=0,
                      trace=(f"{r.scenario}: {r.program.condition_text()} reachable",)
                      + r.witness)
            for r in check_policy(policy_or_knobs, profile) if r.forbidden_reachable]


def knobs_label(knobs: Knobs) -> str:
    """The three knobs the scenarios depend on, e.g. ``stay/refcount/implicit``."""
    return f"{knobs.lazy_tlb}/{knobs.lazy_mm_ref}/{knobs.switch_mm_barrier}"


def table(results_by_policy) -> str:
    """Plain text, policies x scenarios: ``reachable``/``unreachable`` for
    the forbidden outcome, with the states explored.  `results_by_policy`
    maps a label to `check_policy()`'s list (or is a list of such pairs)."""
    items = list(results_by_policy.items() if hasattr(results_by_policy, "items")
                 else results_by_policy)
    names = []
    for _, results in items:
        for r in results:
            if r.scenario not in names:
                names.append(r.scenario)
    cell = {(label, r.scenario): f"{r.verdict} ({r.states_explored})"
            for label, results in items for r in results}
    head = ["policy"] + names
    rows = [[str(label)] + [cell.get((label, n), "-") for n in names] for label, _ in items]
    width = [max(len(row[i]) for row in [head] + rows) for i in range(len(head))]
    fmt = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, width)).rstrip()  # noqa: E731
    lines = [fmt(head), fmt(["-" * w for w in width])] + [fmt(row) for row in rows]
    lines.append(f"forbidden outcome: {FORBIDDEN_TEXT}; (n) = states explored")
    return "\n".join(lines)


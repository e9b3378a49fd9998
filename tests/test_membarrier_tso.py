"""The x86-TSO checker against published answers (Intel SDM Vol. 3A §8.2.3,
seed 004) and the IPI / conditional extensions membarrier needs."""

import pytest

from pytest_tlbperf.membarrier import litmus, tso
from pytest_tlbperf.membarrier.litmus import (Fence, LitmusProgram, Load, Nop, Rmw, SendIpi,
                                              Serialize, SkipIfEq, Store, WaitIpi)
from pytest_tlbperf.membarrier.tso import StateLimitExceeded, check


def _sb(cpu0_middle=(), cpu1_middle=(), name="SB-variant"):
    """SB with something between store and load on each side."""
    return LitmusProgram(
        name, [[Store("x", 1), *cpu0_middle, Load("r1", "y")],
               [Store("y", 1), *cpu1_middle, Load("r2", "x")]],
        condition={"r1": 0, "r2": 0})


# --- published answers -------------------------------------------------------

@pytest.mark.parametrize("prog", litmus.known_answers(), ids=lambda p: p.name)
def test_known_answer(prog):
    assert prog.allowed is not None
    outcome = check(prog)
    assert outcome.reachable() is prog.allowed, prog.format()
    assert bool(outcome.witness()) is prog.allowed
    assert not outcome.deadlocks


def test_sb_every_outcome_reachable_and_witness_shows_the_buffering():
    """SDM Example 8-3: all four outcomes, and the r1 = r2 = 0 witness has
    both loads done before the other CPU's store drained."""
    outcome = check(litmus.sb())
    assert outcome.values("r1", "r2") == {(0, 0), (0, 1), (1, 0), (1, 1)}
    w = outcome.witness()
    assert w.index("cpu0: load r1=y -> 0") < w.index("cpu1: drain y=1")
    assert w.index("cpu1: load r2=x -> 0") < w.index("cpu0: drain x=1")
    assert w[0] == "cpu0: store x=1 -> buffer"


def test_sb_mfences_removes_exactly_the_relaxed_outcome():
    outcome = check(litmus.sb_mfences())
    assert outcome.values("r1", "r2") == {(0, 1), (1, 0), (1, 1)}


def test_sb_fence_on_one_side_only_is_no_ordering():
    """Seed 004: "a memory barrier on only one side ... does not guarantee
    any ordering".  The unfenced CPU's load passes its own buffered store."""
    outcome = check(litmus.sb_mfence_one_side())
    w = outcome.witness()
    assert w.index("cpu0: drain x=1") < w.index("cpu0: mfence (full barrier)")
    assert w.index("cpu1: load r2=x -> 0") < w.index("cpu1: drain y=1")
    assert w.index("cpu0: load r1=y -> 0") < w.index("cpu1: drain y=1")


def test_mp_relaxed_outcome_unreachable_but_others_are():
    """MP / SDM Example 8-1: r1 = 1 /\\ r2 = 0 is the only missing outcome."""
    assert check(litmus.mp()).values("r1", "r2") == {(0, 0), (0, 1), (1, 1)}
    assert check(litmus.sdm_8_2()).values("r1", "r2") == {(0, 0), (0, 1), (1, 0)}


def test_store_forwarding_sdm_8_4_and_8_5():
    """Example 8-4: a load sees the CPU's own older store; Example 8-5: it
    sees it from the store buffer, before anyone else can."""
    only = check(litmus.sdm_8_4())
    assert only.values("r1") == {(1,)}
    w = check(litmus.sdm_8_5()).witness()
    # at least one CPU must forward: here cpu0 reads x=1 that only it can see
    assert "cpu0: load r1=x -> 1 (forwarded from own store buffer)" in w
    assert "cpu0: load r2=y -> 0" in w and "cpu1: load r4=x -> 0" in w
    # neither store had reached memory when the other CPU loaded it
    assert w.index("cpu0: load r2=y -> 0") < w.index("cpu1: drain y=1")
    assert w.index("cpu1: load r4=x -> 0") < w.index("cpu0: drain x=1")


def test_forwarding_takes_the_newest_buffered_store():
    prog = LitmusProgram("fwd2", [[Store("x", 1), Store("x", 2), Load("r1", "x")]])
    assert check(prog).values("r1", "x") == {(2, 2)}


def test_locked_rmw_is_a_full_barrier():
    """SDM Example 8-9: SB with XCHG in place of the stores is forbidden; with
    XCHG on one side only it is still SB with one barrier: allowed."""
    both = check(litmus.sdm_8_9())
    assert both.values("r2", "r4") == {(0, 1), (1, 0), (1, 1)}
    assert all("cpu0: locked xchg x: 0 -> 1, r1 <- 0" in w for w in both.finals.values())
    one = LitmusProgram("SB+xchg+po",
                        [[Rmw("x", "xchg", 1, reg="r1"), Load("r2", "y")],
                         [Store("y", 1), Load("r4", "x")]],
                        condition={"r2": 0, "r4": 0})
    assert check(one).reachable()


def test_locked_rmw_waits_for_the_store_buffer_and_writes_memory():
    """A locked op after a buffered store cannot run until the store drained;
    its own write goes straight to memory, never into the buffer."""
    prog = LitmusProgram("rmw", [[Store("y", 1), Rmw("x", "add", 5, reg="r0")]],
                         init={"x": 10})
    st = tso.initial_state(prog)
    (step, st), = tso.successors(prog, st)               # only the store
    assert step == "cpu0: store y=1 -> buffer"
    steps = [s for s, _ in tso.successors(prog, st)]
    assert steps == ["cpu0: drain y=1"]                  # the RMW is not enabled
    (_, st), = tso.successors(prog, st)
    (step, st), = tso.successors(prog, st)
    assert step == "cpu0: locked add x: 10 -> 15, r0 <- 10"
    assert st.bufs == ((),)
    assert st.mem[prog.loc_slot("x")] == 15 and st.mem[prog.loc_slot("y")] == 1


@pytest.mark.parametrize("barrier", [Fence("mfence"), Serialize("write_cr3"),
                                     Rmw("lock", "add", 0)], ids=str)
def test_every_full_barrier_kind_orders_sb(barrier):
    assert not check(_sb([barrier], [barrier])).reachable()
    assert check(_sb([barrier], [])).reachable()


def test_compiler_barrier_orders_nothing():
    assert check(_sb([Nop("barrier()")], [Nop("barrier()")])).reachable()


def test_sdm_8_4_state_count():
    """One CPU, `x = 1; r1 = x`: start; store buffered; then drain-or-load
    (2 states); then the one they both lead to.  5 distinct states."""
    assert check(litmus.sdm_8_4()).states_explored == 5


def test_state_limit():
    with pytest.raises(StateLimitExceeded):
        check(litmus.sdm_8_7(), max_states=10)


# --- IPIs -------------------------------------------------------------------

def _ipi_sb(*, fence_before=True, wait=True):
    """cpu0 does what membarrier() does for cpu1 with a plain-SB cpu1."""
    cpu0 = [Store("x", 1)]
    cpu0 += [Fence("smp_mb()")] if fence_before else []
    cpu0 += [SendIpi(1)] + ([WaitIpi()] if wait else []) + [Load("r1", "y")]
    return LitmusProgram("SB+ipi", [cpu0, [Store("y", 1), Load("r2", "x")]],
                         condition={"r1": 0, "r2": 0})


def test_ipi_induced_barrier_orders_sb():
    """The IPI-induced mb on cpu1 does for it what an smp_mb() would (seed
    004, Stern's first diagram)."""
    outcome = check(_ipi_sb())
    assert not outcome.reachable()
    assert outcome.values("r1", "r2") == {(0, 1), (1, 0), (1, 1)}
    assert not outcome.deadlocks


def test_ipi_without_waiting_orders_nothing():
    w = check(_ipi_sb(wait=False)).witness()
    assert w, "without wait_ipi the handler may run after cpu0's load"
    assert w.index("cpu0: load r1=y -> 0") < w.index("cpu1: drain y=1")


def test_ipi_without_initiator_barrier_orders_nothing():
    """Stern's barrier a: without it, cpu0's store may still sit in its
    buffer when cpu1 takes the IPI."""
    w = check(_ipi_sb(fence_before=False)).witness()
    assert w
    assert w.index("cpu1: IPI from cpu0 taken: ipi_mb() (full barrier)") < \
        w.index("cpu1: store y=1 -> buffer")


def test_ipi_handler_needs_an_empty_buffer_and_can_run_after_the_last_instruction():
    prog = LitmusProgram("ipi-late", [[SendIpi(1), WaitIpi(), Load("r1", "y")],
                                      [Store("y", 1)]])
    outcome = check(prog)
    assert outcome.values("r1") == {(0,), (1,)}
    # r1 = 0 only if the handler ran before cpu1 even stored: once y=1 is
    # buffered, taking the IPI has to wait for it to drain
    early = outcome.witness({"r1": 0})
    assert early.index("cpu1: IPI from cpu0 taken: ipi_mb() (full barrier)") < \
        early.index("cpu1: store y=1 -> buffer")
    # cpu0 spins in wait_ipi; cpu1 finished its program with y=1 still
    # buffered and the IPI pending: the only step is the drain, the handler
    # comes after it
    st = tso.State(pcs=(1, 1), regs=((0,), ()), bufs=((), (("y", 1),)), mem=(0,),
                   ipis=frozenset({(0, 1)}))
    assert [s for s, _ in tso.successors(prog, st)] == ["cpu1: drain y=1"]
    (_, st), = tso.successors(prog, st)
    assert [s for s, _ in tso.successors(prog, st)] == [
        "cpu1: IPI from cpu0 taken: ipi_mb() (full barrier)"]


def test_wait_ipi_blocks_until_the_handler_ran():
    prog = _ipi_sb()
    for outcome_steps in check(prog).finals.values():
        taken = outcome_steps.index("cpu1: IPI from cpu0 taken: ipi_mb() (full barrier)")
        assert taken < outcome_steps.index("cpu0: wait_ipi returns")


def test_crossing_ipis_do_not_deadlock():
    """Both CPUs IPI each other and wait: each takes the other's IPI while
    spinning, as smp_call_function_many() waits with interrupts enabled."""
    prog = LitmusProgram("cross", [[SendIpi(1), WaitIpi()], [SendIpi(0), WaitIpi()]])
    outcome = check(prog)
    assert len(outcome.finals) == 1 and not outcome.deadlocks


# --- conditionals -------------------------------------------------------------

def test_skip_if_eq_takes_both_branches():
    prog = LitmusProgram("skip", [[Load("r0", "x"), SkipIfEq("r0", 1, 1), Store("y", 1)],
                                  [Store("x", 1)]])
    outcome = check(prog)
    assert outcome.values("r0", "y") == {(0, 1), (1, 0)}
    assert "cpu0: r0 == 1: skip 1" in outcome.witness({"r0": 1})
    assert "cpu0: r0 == 0 != 1: fall through" in outcome.witness({"r0": 0})


# --- program validation --------------------------------------------------------

@pytest.mark.parametrize("threads, match", [
    ([[Load("r1", "x")], [Load("r1", "y")]], "already belongs to cpu0"),
    ([[SkipIfEq("r0", 0, 1)]], "skips past the end"),
    ([[SendIpi(0)]], "no other CPU"),
    ([[Load("x", "x")]], "both as register and location"),
])
def test_bad_programs_are_rejected(threads, match):
    with pytest.raises(ValueError, match=match):
        LitmusProgram("bad", threads)


def test_condition_must_name_something_in_the_program():
    with pytest.raises(ValueError, match="neither a register nor a location"):
        LitmusProgram("bad", [[Load("r1", "x")]], condition={"r9": 0})


def test_format_reads_like_herd():
    text = litmus.sb_mfences().format()
    assert text.splitlines()[1] == "{ x=0; y=0 }"
    assert " x = 1  | y = 1\n mfence | mfence\n r1 = y | r2 = x\n" in text
    assert text.endswith("exists (r1 = 0 /\\ r2 = 0)")

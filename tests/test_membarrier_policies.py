"""The seed-004 membarrier scenarios under each policy's knobs (issue 7)."""

import itertools

import pytest

from pytest_tlbperf import Policy, Violation, membarrier
from pytest_tlbperf.membarrier import (FORBIDDEN, KTHREAD, USER, check, check_policy,
                                       knobs_label, resolve_knobs, table, violations)
from pytest_tlbperf.membarrier.scenarios import (ScenarioResult, membarrier_ipi,
                                                 membarrier_kthread, seed004_mp,
                                                 switch_to_user_barriers)
from pytest_tlbperf.policy import Knobs


class _Profile:
    __slots__ = ("name", "vendor")

    def __init__(self, name, vendor):
        self.name, self.vendor = name, vendor


def knobs(**overrides):
    return Knobs(**{**Policy().knobs(_Profile("generic", "intel")).as_dict(), **overrides})


HAZARD = dict(lazy_tlb="stay", lazy_mm_ref="hazard_pointer", switch_mm_barrier="implicit")


def verdicts(results):
    return {r.scenario: r.forbidden_reachable for r in results}


# --- the required answers ---------------------------------------------------------

def test_mainline_default_policy_is_safe_in_both_scenarios():
    results = check_policy(Policy())
    assert verdicts(results) == {"membarrier_ipi": False, "membarrier_kthread": False}
    assert all(r.witness == () and r.states_explored > 0 for r in results)
    assert violations(Policy()) == []


def test_hazard_pointers_without_a_barrier_break_the_kthread_scenario():
    results = check_policy(knobs(**HAZARD))
    assert verdicts(results) == {"membarrier_ipi": False, "membarrier_kthread": True}
    w = results[1].witness
    # exactly the story of seed 004: membarrier() sees the kthread and skips
    # the IPI while CPU1's rq->curr store still sits in its store buffer ...
    read = w.index("cpu0: load r0=rq_curr -> kthread  [b: p = cpu_rq(1)->curr]")
    assert read < w.index("cpu1: drain rq_curr=user")
    assert "cpu0: r0 == kthread: skip 2  [p->mm != current->mm: no IPI]" in w
    assert not any("IPI" in step and "no IPI" not in step for step in w)
    # ... and the user code on both sides misses the other's store
    assert w.index("cpu0: load r1=x -> 0  [user: after membarrier()]") < w.index("cpu1: drain x=1")
    assert w.index("cpu1: load r2=y -> 0  [user]") < w.index("cpu0: drain y=1")
    assert w[-1].startswith("cpu1: drain")          # every buffer drained at the end


def test_explicit_barrier_fixes_hazard_pointers():
    assert verdicts(check_policy(knobs(**{**HAZARD, "switch_mm_barrier": "explicit"}))) == \
        {"membarrier_ipi": False, "membarrier_kthread": False}


# --- every combination of the three knobs that matter -------------------------------

COMBOS = list(itertools.product(("stay", "switch_to_init_mm"),
                                ("refcount", "hazard_pointer", "shootdown", "none"),
                                ("implicit", "explicit")))


@pytest.mark.parametrize("lazy_tlb, lazy_mm_ref, barrier", COMBOS)
def test_kthread_scenario_breaks_iff_no_full_barrier_follows_the_rq_curr_store(
        lazy_tlb, lazy_mm_ref, barrier):
    """Reachable exactly when CPU1's switch back to the user task has neither
    a CR3 write (lazy_tlb="stay" returns to the same mm), nor mmdrop()'s
    atomic (no counted lazy reference), nor an explicit smp_mb().  In
    particular lazy_mm_ref="shootdown" and "none" break like hazard pointers
    do: none of them has an atomic on the switch path; switch_to_init_mm
    is safe with any lazy_mm_ref because returning from init_mm writes CR3."""
    k = knobs(lazy_tlb=lazy_tlb, lazy_mm_ref=lazy_mm_ref, switch_mm_barrier=barrier)
    expected = (lazy_tlb == "stay" and lazy_mm_ref != "refcount" and barrier == "implicit")
    ipi, kthread = check_policy(k)
    assert not ipi.forbidden_reachable
    assert kthread.forbidden_reachable is expected
    assert bool(kthread.witness) is expected


def test_switch_path_barriers_come_from_the_knobs():
    def names(**kw):
        return [str(ins) for ins in switch_to_user_barriers(knobs(**kw))]
    assert names(lazy_tlb="stay", lazy_mm_ref="refcount") == ["lock xadd(mm_count, -1)"]
    assert names(lazy_tlb="stay", lazy_mm_ref="hazard_pointer") == []
    assert names(lazy_tlb="switch_to_init_mm", lazy_mm_ref="none",
                 switch_mm_barrier="explicit") == ["write_cr3", "smp_mb()"]
    prog = membarrier_kthread(knobs(lazy_tlb="switch_to_init_mm"))
    assert [str(i) for i in prog.threads[1]] == [
        "smp_mb__after_spinlock()", "rq_curr = user", "write_cr3",
        "lock xadd(mm_count, -1)", "x = 1", "barrier()", "r2 = y"]


def test_policy_names_play_no_part():
    """A policy called "mainline" with hazard pointers is broken; one called
    after the hazard-pointer series but refcounting is fine."""
    class Mainline(Policy):
        name = "mainline"
        lazy_mm_ref = "hazard_pointer"

    class HazardLazymm(Policy):
        name = "hazard_lazymm"

    assert verdicts(check_policy(Mainline))["membarrier_kthread"] is True
    assert verdicts(check_policy(HazardLazymm))["membarrier_kthread"] is False


# --- the scenarios themselves ------------------------------------------------------

def test_kthread_scenario_explores_both_branches_and_the_ipi_branch_is_always_safe():
    outcome = check(membarrier_kthread(knobs(**HAZARD)))
    assert {fs["r0"] for fs in outcome.final_states} == {KTHREAD, USER}
    for fs in outcome.final_states:
        if fs["r0"] == USER:       # the IPI was sent: ipi_mb() orders CPU1
            assert not fs.matches(FORBIDDEN), fs
    assert not outcome.deadlocks


def test_ipi_scenario_always_sends_the_ipi_and_ignores_the_knobs():
    a = membarrier_ipi(knobs(**HAZARD))
    b = membarrier_ipi(knobs())
    assert [str(i) for i in a.threads[1]] == [str(i) for i in b.threads[1]] == \
        ["x = 1", "barrier()", "r2 = y"]
    outcome = check(a)
    assert {fs["r0"] for fs in outcome.final_states} == {USER}
    assert outcome.values("r1", "r2") == {(0, 1), (1, 0), (1, 1)}


def test_mmdrop_gives_back_the_lazy_reference():
    outcome = check(membarrier_kthread(knobs()))
    assert {fs["mm_count"] for fs in outcome.final_states} == {1}


def test_seed004_as_drawn_is_message_passing_and_tso_forbids_it_without_any_barrier():
    """Why the scenarios are SB: Stern's diagrams are MP, which x86 never
    reorders (SDM Example 8-1) -- r1 = 0 /\\ r2 = 1 stays unreachable even
    with no barrier at all on CPU1, on the skip path included."""
    prog = seed004_mp()
    assert prog.condition == {"r1": 0, "r2": 1}
    outcome = check(prog)
    assert not outcome.reachable()
    assert KTHREAD in {fs["r0"] for fs in outcome.final_states}
    assert not any(str(i).startswith(("smp_mb", "lock", "write_cr3"))
                   for i in prog.threads[1])


# --- the API -----------------------------------------------------------------------

def test_policy_class_instance_and_knobs_are_all_accepted():
    class Hazard(Policy):
        lazy_mm_ref = "hazard_pointer"

    for given in (Hazard, Hazard(), Hazard().knobs(_Profile("generic", "intel"))):
        assert verdicts(check_policy(given)) == {"membarrier_ipi": False,
                                                 "membarrier_kthread": True}
    with pytest.raises(TypeError, match="expected Knobs"):
        check_policy("mainline")


def test_profile_reaches_configure_and_a_stand_in_is_used_without_one():
    seen = []

    class AmdHazard(Policy):
        """Hazard pointers on AMD only (a configure() like seed 000's)."""
        def configure(self, profile):
            seen.append((profile.name, profile.vendor))
            return {"lazy_mm_ref": "hazard_pointer"} if profile.vendor == "amd" else None

    assert violations(AmdHazard) == []
    assert seen == [("generic", "intel")]
    found = violations(AmdHazard, _Profile("zen1-epyc", "amd"))
    assert seen[-1] == ("zen1-epyc", "amd")
    assert len(found) == 1
    assert resolve_knobs(AmdHazard, _Profile("zen1-epyc", "amd")).lazy_mm_ref == "hazard_pointer"


def test_violation_carries_the_witness():
    (v,) = violations(knobs(**HAZARD))
    assert isinstance(v, Violation)
    assert (v.kind, v.severity, v.cpu, v.time_ns) == ("membarrier_order", "error", 0, 0)
    (result,) = [r for r in check_policy(knobs(**HAZARD)) if r.forbidden_reachable]
    assert v.trace[0] == "membarrier_kthread: r1 = 0 /\\ r2 = 0 reachable"
    assert v.trace[1:] == result.witness
    assert result.cpu == 0


def test_scenario_result_insists_on_a_witness_exactly_when_reachable():
    prog = membarrier_ipi(knobs())
    with pytest.raises(ValueError):
        ScenarioResult("x", prog, True, 10, ())
    with pytest.raises(ValueError):
        ScenarioResult("x", prog, False, 10, ("step",))


def test_scenarios_lists_both_programs():
    progs = membarrier.scenarios(knobs())
    assert [p.name for p in progs] == list(membarrier.SCENARIO_NAMES)
    assert all(p.condition == FORBIDDEN and p.observer == 0 for p in progs)


def test_table():
    text = table({"mainline": check_policy(Policy()),
                  knobs_label(knobs(**HAZARD)): check_policy(knobs(**HAZARD))})
    lines = text.splitlines()
    assert lines[0].split() == ["policy", "membarrier_ipi", "membarrier_kthread"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split()[0] == "mainline"
    assert lines[2].split()[1::2] == ["unreachable", "unreachable"]
    assert lines[3].split()[0] == "stay/hazard_pointer/implicit"
    assert lines[3].split()[1::2] == ["unreachable", "reachable"]
    n = check_policy(knobs(**HAZARD))[1].states_explored
    assert lines[3].endswith(f"reachable ({n})")
    assert lines[-1] == "forbidden outcome: r1 = 0 /\\ r2 = 0; (n) = states explored"


def test_registered_policies_keep_membarrier_ordering():
    """Issue 7 with the policy modules themselves: every built-in keeps the
    barrier; hazard_lazymm only because it ships the explicit smp_mb()."""
    import pytest_tlbperf as tp
    from pytest_tlbperf import membarrier

    sky = tp.profiles.get("skylake-2s")
    for name in tp.policies.names():
        assert not any(r.forbidden_reachable
                       for r in membarrier.check_policy(tp.policies.get(name), sky)), name

    class HazardImplicit(tp.policies.get("hazard_lazymm")):
        switch_mm_barrier = "implicit"

    results = {r.scenario: r for r in membarrier.check_policy(HazardImplicit, sky)}
    assert results["membarrier_kthread"].forbidden_reachable
    assert not results["membarrier_ipi"].forbidden_reachable

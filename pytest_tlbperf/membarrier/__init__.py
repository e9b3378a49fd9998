"""membarrier ordering: an x86-TSO litmus checker (issue 7).

A small explicit-state checker over x86-TSO store buffers (`tso`), litmus
programs with IPIs and the SDM §8.2.3 known answers (`litmus`), and the two
membarrier scenarios of seed 004 generated from a policy's knobs
(`scenarios`).  DESIGN §3.4 (`membarrier_order`) and §6, last bullet::

    from pytest_tlbperf import membarrier
    membarrier.check(membarrier.litmus.sb()).reachable()       # True
    for r in membarrier.check_policy(MyPatch):                 # or Knobs, or Policy()
        print(r.scenario, r.forbidden_reachable, r.states_explored, r.witness)
    membarrier.violations(MyPatch)                             # [Violation(...)]
"""

from . import litmus, tso
from .litmus import (Fence, LitmusProgram, Load, Nop, Rmw, SendIpi, Serialize, SkipIfEq,
                     Store, WaitIpi, known_answers)
from .scenarios import (FORBIDDEN, FORBIDDEN_TEXT, KTHREAD, SCENARIO_NAMES, USER,
                        ScenarioResult, check_policy, knobs_label, membarrier_ipi,
                        membarrier_kthread, resolve_knobs, scenarios, seed004_mp,
                        switch_to_user_barriers, table, violations)
from .tso import FinalState, Outcome, State, StateLimitExceeded, check

__all__ = [
    # checker
    "check", "Outcome", "FinalState", "State", "StateLimitExceeded",
    # programs
    "LitmusProgram", "Store", "Load", "Fence", "Rmw", "Serialize", "Nop", "SendIpi",
    "WaitIpi", "SkipIfEq", "known_answers",
    # membarrier scenarios
    "scenarios", "membarrier_ipi", "membarrier_kthread", "seed004_mp",
    "switch_to_user_barriers", "resolve_knobs", "check_policy", "violations", "table",
    "knobs_label", "ScenarioResult", "FORBIDDEN", "FORBIDDEN_TEXT", "KTHREAD", "USER",
    "SCENARIO_NAMES",
    # submodules
    "litmus", "tso",
]

# Note: the function `scenarios` shadows the submodule of the same name as an
# attribute of this package; import from the submodule with
# ``from pytest_tlbperf.membarrier.scenarios import ...``.

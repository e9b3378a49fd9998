"""`Policy`: what a TLB patch changes, expressed as the knobs the patches in
the threads actually turn (DESIGN §4).

A policy is a class; its class attributes are knob values. The defaults are
today's x86 (`mainline`), so a subclass that mirrors an RFC changes exactly
the knobs the RFC changes::

    class MyPatch(tp.Policy):
        \"\"\"Send flush IPIs to lazy CPUs again (seed 000, option 1).\"\"\"
        flush_lazy_cpus = "always"

The engines never look at a policy's name: they read `Knobs`, the validated,
per-profile resolution of the class attributes.
"""

from __future__ import annotations

import difflib
import os
import sys

from .engine import abi
from .errors import PolicyError
from .userio import printable

KNOB_DOCS = {
    "lazy_tlb": "what enter_lazy_tlb() does: 'stay' keeps CR3 and sets is_lazy; "
                "'switch_to_init_mm' drops lazy mode (CR3 to init_mm, own ASID, no flush)",
    "lazy_cpumask": "'keep': a lazy CPU stays in mm_cpumask; 'clear' (v4.14-rc1): it leaves "
                    "and catches up through tlb_gen when it returns",
    "flush_lazy_cpus": "which flushes send IPIs to lazy CPUs: 'never', 'freed_tables', 'always'",
    "flush_local": "'before_remote': flush locally, then IPI; 'concurrent': flush locally "
                   "while the IPIs are in flight",
    "flush_wait": "'done': wait until targets flushed; 'ack': continue once targets copied "
                  "the request, which travels inline in the csd (forced to 'done' when page "
                  "tables are freed)",
    "lazy_mm_ref": "how a lazy CPU keeps its borrowed mm alive: 'refcount' (mmgrab/mmdrop), "
                   "'hazard_pointer', 'shootdown', or 'none' (unsafe)",
    "pv_flush": "use the KVM paravirtual TLB flush where the profile offers it",
    "idle_leave_mm": "'tlb_flushed_states': leave_mm() before idle states that flush the TLB; "
                     "'never'",
    "flush_ceiling": "tlb_single_page_flush_ceiling: above this many pages, flush the whole ASID",
    "switch_mm_barrier": "'implicit': the barrier membarrier needs after an mm switch comes from "
                         "the CR3 write / mmdrop; 'explicit': smp_mb() after every mm switch",
    "read_mm_tlb_gen": "when flush_tlb_func() reads the contended mm->context.tlb_gen: 'always' "
                       "(before v6.0), 'when_needed' (aa44284960d5, v6.0: only when this CPU is "
                       "behind the flush it was sent)",
    "init_mm_asid": "'dynamic': init_mm competes for the 6 dynamic ASIDs like any mm (what "
                    "shipped); 'dedicated': init_mm has its own hardware ASID (seed 001's "
                    "proposal)",
    "pti": "page-table isolation: True, False, or 'auto' (on where the profile is "
           "Meltdown-affected, as the kernel's default; False is nopti)",
    "lazy_mm_scan": "which CPUs a non-refcounting teardown (hazard pointers, shootdown) looks "
                    "at: 'mm_cpumask' or 'all_cpus' (every possible CPU)",
    "lazy_mm_release": "what a hazard-pointer teardown does with a CPU still holding the mm: "
                       "'handoff' (2021: give it an mm_count reference to drop at its next "
                       "switch; no IPI) or 'sync_ipi' (2024 RFC: synchronous calls that switch "
                       "it away)",
    "cpumask_update": "'eager': a CPU leaves mm_cpumask when it switches away (before v6.14); "
                      "'lazy' (v6.14, 209954cbc7d0): the bit is set if unset at switch and "
                      "cleared by the first flush that finds the mm not loaded, with a trim "
                      "flush about once a second (6db2526c1d69); 'lazy_untrimmed': "
                      "209954cbc7d0 alone, where every flush IPIs the CPUs left in the mask "
                      "(the 13% tlb_flush2 regression the trim fixed)",
    "broadcast_flush": "remote invalidation without IPIs for mms with a global ASID: 'none', "
                       "'invlpgb' (AMD, v6.15: INVLPGB + TLBSYNC), 'rar' (Intel Remote Action "
                       "Request, RFC 2025), or 'auto': what today's kernel uses on the part "
                       "(INVLPGB where the profile has it, with PCID and without PTI); "
                       "'invlpgb' and 'rar' need the profile's feature and PCID",
    "tlbsync": "'before_return': a broadcast flush waits for TLBSYNC before it returns (as it "
               "must); 'skip': it returns at once -- a broken policy the oracle must catch",
    "lru_drain": "'on_zap': madvise/munmap zaps drain the per-CPU LRU add batch under the "
                 "lruvec lock (before van Riel's 'mm: remove unnecessary calls to "
                 "lru_add_drain'); 'batch_full': only a full batch is drained",
    "table_free": "'after_flush': freed page tables go back once the flush returned; 'rcu': "
                  "after an RCU grace period (MMU_GATHER_RCU_TABLE_FREE, unconditional since "
                  "a37259732a7d, v6.15); PV-flush guests always use 'rcu'",
}

KNOB_NAMES = tuple(KNOB_DOCS)


def _check_knob(owner: str, name: str, value) -> None:
    if name in abi.INT_KNOBS:
        if isinstance(value, bool) or not isinstance(value, int) or value < abi.INT_KNOBS[name]:
            raise PolicyError(f"{owner}: knob {name}={value!r} must be an integer "
                              f">= {abi.INT_KNOBS[name]}")
        return
    allowed = abi.KNOB_VALUES[name]
    if not any(type(value) is type(a) and value == a for a in allowed):
        choices = ", ".join(repr(v) for v in allowed)
        raise PolicyError(f"{owner}: knob {name}={value!r} is not one of {choices}")


def pti_enabled(knobs, profile) -> bool:
    """PTI as the kernel decides it: the knob, or 'auto' on Meltdown-affected parts."""
    return knobs.pti is True or (knobs.pti == "auto" and profile.meltdown)


def hardware_problem(knobs, profile):
    """Why this machine cannot run these knobs, or None."""
    mode = knobs.broadcast_flush
    if mode == "invlpgb":
        if not profile.invlpgb:
            return "broadcast_flush='invlpgb' needs a part with INVLPGB (profile invlpgb = true)"
        if not profile.pcid:
            return ("broadcast_flush='invlpgb' needs PCID: global ASIDs are PCIDs, and since "
                    "44126343d58c (\"x86/mm: Disable broadcast TLB flush when PCID is disabled\") "
                    "the kernel turns INVLPGB off without PCID -- before it, INVLPGB with a "
                    "non-zero PCID took a #GP")
        if pti_enabled(knobs, profile):
            return ("broadcast_flush='invlpgb' with PTI on: the kernel disables INVLPGB under "
                    "PTI (94a17f2dc90b)")
    if mode == "rar":
        if not profile.rar:
            return "broadcast_flush='rar' needs a part with Remote Action Request (profile rar = true)"
        if not profile.pcid:
            return "broadcast_flush='rar' needs PCID: RAR flushes target the global ASID's PCID"
    return None


def broadcast_for(profile, pti="auto") -> str:
    """The broadcast flush today's kernel uses on this part: INVLPGB where the
    CPU has it, PCID is on and PTI is off (44126343d58c, 94a17f2dc90b)."""
    if profile.invlpgb and profile.pcid and not (pti is True or (pti == "auto"
                                                                 and profile.meltdown)):
        return "invlpgb"
    return "none"


class Knobs:
    """The knob values a policy resolved to on one profile (validated)."""

    __slots__ = KNOB_NAMES

    def __init__(self, owner: str = "Knobs", **values):
        unknown = set(values) - set(KNOB_NAMES)
        if unknown:
            raise PolicyError(f"{owner}: unknown knob(s) {', '.join(sorted(unknown))}; "
                              f"knobs are {', '.join(KNOB_NAMES)}")
        for name in KNOB_NAMES:
            if name not in values:
                raise PolicyError(f"{owner}: knob {name} has no value")
            _check_knob(owner, name, values[name])
            object.__setattr__(self, name, values[name])
        if values["broadcast_flush"] == "auto":
            raise PolicyError(f"{owner}: broadcast_flush='auto' is resolved per profile by "
                              f"Policy.knobs(profile); Knobs takes 'none', 'invlpgb' or 'rar'")

    def __setattr__(self, name, value):
        raise AttributeError("Knobs are read-only")

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in KNOB_NAMES}

    def codes(self) -> dict:
        """Integer encoding for the engines (see engine/abi.py)."""
        out = {}
        for name in KNOB_NAMES:
            value = getattr(self, name)
            out[name] = value if name in abi.INT_KNOBS else abi.KNOB_VALUES[name].index(value)
        return out

    def __eq__(self, other):
        return isinstance(other, Knobs) and self.as_dict() == other.as_dict()

    def __hash__(self):
        return hash(tuple(self.as_dict().items()))

    def __repr__(self):
        inner = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items())
        return f"Knobs({inner})"


class Policy:
    """Base class of every policy; its defaults are today's mainline x86
    (v4.20 lazy handling + concurrent local/remote flush + refcounted lazy mm
    + KVM PV flush), the baseline every comparison is made against."""

    #: registered name; None means the class name
    name: str | None = None

    lazy_tlb = "stay"
    lazy_cpumask = "keep"
    flush_lazy_cpus = "freed_tables"
    flush_local = "concurrent"
    flush_wait = "done"
    lazy_mm_ref = "refcount"
    pv_flush = True
    idle_leave_mm = "tlb_flushed_states"
    flush_ceiling = 33
    switch_mm_barrier = "implicit"
    read_mm_tlb_gen = "when_needed"
    init_mm_asid = "dynamic"
    pti = "auto"
    lazy_mm_scan = "mm_cpumask"
    lazy_mm_release = "handoff"
    cpumask_update = "lazy"
    broadcast_flush = "auto"
    tlbsync = "before_return"
    lru_drain = "batch_full"
    table_free = "rcu"

    #: violation kinds this policy is known to cause (a historic patch with a
    #: known bug declares it, like xfail; DESIGN §5)
    known_violations: frozenset = frozenset()

    #: Optional hook `should_flush_cpu(self, cpu, info) -> bool`: called for
    #: every CPU in mm_cpumask other than the initiator; `info.default` is the
    #: knobs' decision. Prototypes logic no knob expresses; python engine only.
    should_flush_cpu = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        owner = _class_label(cls)
        _check_attributes(cls, owner)
        if cls.name is not None and (not isinstance(cls.name, str) or not cls.name):
            raise PolicyError(f"{owner}: name must be a non-empty string, got {cls.name!r}")
        for knob in KNOB_NAMES:
            _check_knob(owner, knob, getattr(cls, knob))
        unknown = set(cls.known_violations) - set(abi.VIOLATION_KINDS)
        if unknown:
            raise PolicyError(f"{owner}: known_violations names unknown kind(s) "
                              f"{', '.join(sorted(unknown))}; kinds are "
                              f"{', '.join(abi.VIOLATION_KINDS)}")
        cls.known_violations = frozenset(cls.known_violations)
        hook = cls.__dict__.get("should_flush_cpu")
        if hook is not None and not callable(hook):
            raise PolicyError(f"{owner}: should_flush_cpu must be a method")

    @classmethod
    def policy_name(cls) -> str:
        return cls.name or cls.__name__

    def configure(self, profile) -> dict | None:
        """Return knob overrides for this machine profile, or None.

        The AMD-only workaround of seed 000 is the motivating case: keep the
        fast lazy mode everywhere except on the parts whose speculative walks
        through freed page tables hang."""
        return None

    def knobs(self, profile) -> Knobs:
        owner = f"policy {self.policy_name()}"
        values = {knob: getattr(self, knob) for knob in KNOB_NAMES}
        overrides = call_policy(self, f"configure({profile.name})", self.configure, profile)
        if overrides:
            if not isinstance(overrides, dict):
                raise PolicyError(f"{owner}: configure() must return a dict of knob "
                                  f"overrides or None, not {type(overrides).__name__}")
            unknown = set(overrides) - set(KNOB_NAMES)
            if unknown:
                raise PolicyError(f"{owner}: configure({profile.name}) returned unknown "
                                  f"knob(s) {', '.join(sorted(unknown))}")
            values.update(overrides)
        if values["broadcast_flush"] == "auto":
            for name in ("broadcast_flush", "pti"):
                _check_knob(owner, name, values[name])
            values["broadcast_flush"] = broadcast_for(profile, values["pti"])
        knobs = Knobs(owner, **values)
        problem = hardware_problem(knobs, profile)
        if problem:
            raise PolicyError(f"{owner} on {profile.name}: {problem}")
        return knobs

    def expected_violations(self, profile) -> frozenset:
        """Violation kinds expected on this profile (default: known_violations).
        A policy whose knobs differ per machine overrides it (amd_only)."""
        return self.known_violations

    def has_python_hooks(self) -> bool:
        return self.should_flush_cpu is not None

    def __repr__(self):
        return f"<Policy {self.policy_name()}>"


# -- the policy's own code, at the edge ----------------------------------------------
# A policy's methods (configure, should_flush_cpu, expected_violations,
# __init__) are the user's code running inside ours. call_policy() runs
# them so that what goes wrong names the policy and the method instead of
# ending the run: an exception or sys.exit() becomes a PolicyError, and a
# call that executes more than CALL_BUDGET Python bytecode instructions is
# stopped.
#
# The bound counts instructions (sys.settrace with f_trace_opcodes), not
# seconds: the same policy and seed stop at the same point on every machine,
# however loaded. Lines would not do: `while True: pass` on one line jumps
# back to itself without a new line event. Two million instructions are
# orders of magnitude beyond any real decision and under a second of
# looping; a hook of a few lines pays a few microseconds per call. The bound
# stands aside while another tracer (a debugger, coverage) is active, and
# cannot stop a C function that never returns; Ctrl-C still does.
CALL_BUDGET = 2_000_000


class _OverBudget(BaseException):
    """Raised inside a policy's code at its instruction CALL_BUDGET + 1; a
    BaseException so that `except Exception` in the policy does not eat it."""


def _bounded(fn, args):
    if sys.gettrace() is not None:
        return fn(*args)
    left = CALL_BUDGET

    def instruction(frame, event, arg):
        nonlocal left
        if event == "opcode":
            left -= 1
            if left < 0:
                raise _OverBudget
        return instruction

    def call(frame, event, arg):         # every frame the policy's code enters
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        return instruction

    sys.settrace(call)
    try:
        return fn(*args)
    finally:
        sys.settrace(None)


_NOT_THE_POLICY = ("pytest_tlbperf", "importlib", "_pytest", "pluggy")


def _where(exc) -> str:
    """' (my_rfc.py:12)': the innermost frame of the policy's own code (not
    ours, the import machinery's or pytest's)."""
    found = ""
    tb = exc.__traceback__
    while tb is not None:
        path = tb.tb_frame.f_code.co_filename
        module = tb.tb_frame.f_globals.get("__name__") or ""
        if not path.startswith("<") and not module.startswith(_NOT_THE_POLICY):
            found = f" ({os.path.relpath(path) if os.path.isabs(path) else path}:" \
                    f"{tb.tb_lineno})"
        tb = tb.tb_next
    return found


def describe_exception(exc, verb: bool = False) -> str:
    """'ZeroDivisionError: division by zero (my_rfc.py:12)' or 'called
    sys.exit(3) (my_rfc.py:2)'; with `verb`, the first reads 'raised ...'."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({'' if exc.code is None else repr(exc.code)}){_where(exc)}"
    text = str(exc)
    return f"{'raised ' if verb else ''}{type(exc).__name__}{': ' + text if text else ''}" \
           f"{_where(exc)}"


def call_policy(policy, what: str, fn, *args):
    """fn(*args), code of `policy` (a Policy instance or class), within
    CALL_BUDGET instructions; what went wrong is a PolicyError naming the
    policy and `what` ("configure(zen1-epyc)"). Ctrl-C still interrupts."""
    try:
        return _bounded(fn, args)
    except _OverBudget:
        raise PolicyError(f"{policy_label(policy)}: {what} ran more than {CALL_BUDGET} Python "
                          f"instructions in one call (does it loop forever?); a policy's "
                          f"code must return in bounded time (policy.CALL_BUDGET)") from None
    except (KeyboardInterrupt, PolicyError):
        raise
    except BaseException as exc:        # SystemExit too: a policy cannot end the run
        raise PolicyError(f"{policy_label(policy)}: {what} {describe_exception(exc, verb=True)}"
                          ) from exc


def policy_label(policy) -> str:
    """'policy my_rfc.py:MyRfc' (or 'policy NAME' for a named one), escaped."""
    cls = policy if isinstance(policy, type) else type(policy)
    return _class_label(cls) if not isinstance(cls.name, str) else \
        f"policy {printable(cls.policy_name())}"


def _class_label(cls) -> str:
    """'policy my_rfc.py:MyRfc': where a user finds the class."""
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    if path and not cls.__module__.startswith("pytest_tlbperf."):
        return printable(f"policy {os.path.relpath(path) if os.path.isabs(path) else path}:"
                         f"{cls.__qualname__}")
    return f"policy {cls.__module__}.{cls.__qualname__}"


def _check_attributes(cls, owner: str) -> None:
    """Every public class attribute is a knob or something Policy defines
    (name, known_violations, configure, should_flush_cpu, ...): a misspelled
    knob (`lazy_tbl = "stay"`) or method (`def configur`) would otherwise be
    ignored, and the policy would run as mainline without a word. Names of
    the policy's own helpers start with '_'."""
    allowed = set(KNOB_NAMES) | {n for n in vars(Policy) if not n.startswith("_")}
    for name in cls.__dict__:
        if name.startswith("_") or name in allowed:
            continue
        close = difflib.get_close_matches(name, sorted(allowed), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise PolicyError(f"{owner}: unknown attribute {name!r}{hint} (knobs are "
                          f"{', '.join(KNOB_NAMES)}; a helper of your own needs a name that "
                          f"starts with '_')")

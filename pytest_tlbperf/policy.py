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

from .engine import abi
from .errors import PolicyError

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

    #: violation kinds this policy is known to cause (a historic patch with a
    #: known bug declares it, like xfail; DESIGN §5)
    known_violations: frozenset = frozenset()

    #: Optional hook `should_flush_cpu(self, cpu, info) -> bool`: called for
    #: every CPU in mm_cpumask other than the initiator; `info.default` is the
    #: knobs' decision. Prototypes logic no knob expresses; python engine only.
    should_flush_cpu = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        owner = f"policy {cls.__module__}.{cls.__qualname__}"
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
        overrides = self.configure(profile)
        if overrides:
            if not isinstance(overrides, dict):
                raise PolicyError(f"{owner}: configure() must return a dict of knob "
                                  f"overrides or None, not {type(overrides).__name__}")
            unknown = set(overrides) - set(KNOB_NAMES)
            if unknown:
                raise PolicyError(f"{owner}: configure({profile.name}) returned unknown "
                                  f"knob(s) {', '.join(sorted(unknown))}")
            values.update(overrides)
        return Knobs(owner, **values)

    def expected_violations(self, profile) -> frozenset:
        """Violation kinds expected on this profile (default: known_violations).
        A policy whose knobs differ per machine overrides it (amd_only)."""
        return self.known_violations

    def has_python_hooks(self) -> bool:
        return self.should_flush_cpu is not None

    def __repr__(self):
        return f"<Policy {self.policy_name()}>"

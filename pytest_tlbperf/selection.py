"""Which cells a `pytest --tlbperf` session runs (DESIGN §5): the policies
-- the baseline, the *candidates* named with --tlbperf-policy, and the
built-in *reference* policies shown beside them only when asked for -- and,
for each suite test, the profiles: its own, and every profile on which a
candidate's effective knobs differ from the baseline's in a way none of the
test's own profiles shows.

A reviewer's one-file RFC that changes knobs only on AMD (`configure()`
returning overrides when `profile.vendor == "amd"`) changes nothing on the
Intel machine `test_context_switch` runs on; its CR3-write cost on
`zen1-epyc` appears only because that test also runs there (this module's
`touched`). A change that is the same on every machine (revert_to_ipi's
knobs) is already shown on the test's own profiles, so nothing is added.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import os
import sys

from . import policies, profiles
from .policy import KNOB_NAMES
from .userio import printable

BASELINE, CANDIDATE, REFERENCE = "baseline", "candidate", "reference"
ADDED, LEFT_OUT = "added", "left out"
TOUCHED_MODES = ("run", "list")     # --tlbperf-touched-profiles


class Roles:
    """The policies of one session and what each is there for.

    With candidates (--tlbperf-policy) the built-ins run only as references,
    and only those asked for (`references`: names, or "all" for every
    registered policy). Without candidates every registered policy is a
    candidate reviewed against the baseline, as the main job does."""

    __slots__ = ("baseline", "candidates", "references", "reviewing_all")

    def __init__(self, baseline, candidates=None, references=()):
        self.baseline = baseline
        self.reviewing_all = not candidates
        if self.reviewing_all:
            self.candidates = [p for p in policies.names() if p != baseline]
            self.references = []
            return
        self.candidates = _unique(p for p in candidates if p != baseline)
        refs = []
        for spec in references or ():
            refs += policies.names() if spec == "all" else [spec]
        self.references = _unique(p for p in refs
                                  if p != baseline and p not in self.candidates)

    @classmethod
    def from_options(cls, options) -> "Roles":
        """The roles a saved run recorded (a run saved before roles existed:
        every policy named with --tlbperf-policy is a candidate, or all)."""
        opts = options or {}
        roles = cls.__new__(cls)
        roles.baseline = opts.get("baseline")
        cands = opts.get("candidates", opts.get("policies"))
        roles.reviewing_all = not cands
        roles.candidates = list(cands or ())
        roles.references = list(opts.get("references") or ())
        return roles

    def policies(self) -> list:
        """Every policy the session runs, the baseline first."""
        return [self.baseline] + self.candidates + self.references

    def role(self, policy) -> str:
        """The role of a policy given as it was named or as a cell records it:
        cells keep the printable form (`userio.printable`: a file named with
        an escape is `evil\\x1b[31m.py` there), the roles what was given."""
        name = printable(policy)
        if name == printable(self.baseline):
            return BASELINE
        if name in map(printable, self.references):
            return REFERENCE
        if self.reviewing_all or name in map(printable, self.candidates):
            return CANDIDATE
        return REFERENCE

    def to_options(self) -> dict:
        return {"candidates": None if self.reviewing_all else list(self.candidates),
                "references": list(self.references)}


def _unique(items) -> list:
    out = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


@functools.lru_cache(maxsize=None)
def _policy(spec):
    return policies.resolve(spec)


@functools.lru_cache(maxsize=None)
def _knobs(policy_spec, profile_spec) -> dict:
    return _policy(policy_spec).knobs(profiles.get(profile_spec)).as_dict()


def knob_delta(policy, baseline, profile) -> dict:
    """{knob: (baseline's value, policy's value)} for the knobs that differ
    on `profile`, after each policy's `configure(profile)`."""
    mine, theirs = _knobs(policy, profile), _knobs(baseline, profile)
    return {k: (theirs[k], mine[k]) for k in KNOB_NAMES if mine[k] != theirs[k]}


def same_knobs(policy, profile, session_policies):
    """The first of `session_policies` (the baseline first) whose effective
    knobs on `profile` equal `policy`'s, or None: the engine and the oracle
    read knobs only, so such a policy's runs are that one's (a candidate
    that changes nothing on this machine: the RAR RFC on a part without
    RAR). A policy with a Python hook decides flushes its own way and
    equals none."""
    if _policy(policy).has_python_hooks():
        return None
    mine = _knobs(policy, profile)
    for other in session_policies:
        if other == policy:
            return None
        if not _policy(other).has_python_hooks() and _knobs(other, profile) == mine:
            return other
    return None


def is_guest(profile) -> bool:
    return profiles.get(profile).virt is not None


def _fits(test_profiles, profile) -> str:
    """'' when `profile` is a machine of the kind the test asks about (a
    guest for a test that runs only in guests, bare metal for one that
    runs only on bare metal), else why not."""
    kinds = {is_guest(p) for p in test_profiles}
    if is_guest(profile) in kinds:
        return ""
    return (f"{profile} is bare metal and the test asks about guests" if kinds == {True}
            else f"{profile} is a guest and the test asks about bare metal")


def touched(test_profiles, roles, universe, mode="run", fixed=False) -> list:
    """The profiles outside `test_profiles` on which a candidate's knobs
    differ from the baseline's in a way no profile of the test shows, as
    entries {"profile", "policy", "knobs": {knob: [baseline's, candidate's]},
    "status": ADDED or LEFT_OUT, "why"}.

    `universe` is every profile considered (the built-in ones and any named
    on the command line); `mode` "list" only lists them; `fixed` means the
    reviewer chose the profiles (--tlbperf-profile), so they are listed, not
    run. A profile that does not fit the test (`_fits`) is listed. Several
    profiles with the same difference run once, on the smallest machine of
    them (an AMD-only change shows on zen1-epyc as on genoa-2s); the others
    are listed."""
    out = []
    for policy in roles.candidates:
        shown = [knob_delta(policy, roles.baseline, p) for p in test_profiles]
        found = []
        for profile in universe:
            if profile in test_profiles:
                continue
            delta = knob_delta(policy, roles.baseline, profile)
            if delta and delta not in shown:
                found.append((profiles.get(profile), profile, delta))
        chosen = {}          # one profile per difference: the fewest CPUs, then the name
        for prof, spec, delta in sorted(found, key=lambda f: (f[0].cpus, f[0].name)):
            key = repr(sorted(delta.items()))
            if key not in chosen and not _fits(test_profiles, spec):
                chosen[key] = prof.name
        for prof, spec, delta in found:
            key = repr(sorted(delta.items()))
            misfit = _fits(test_profiles, spec)
            why = ("--tlbperf-profile chose the profiles" if fixed else
                   "--tlbperf-touched-profiles=list" if mode == "list" else misfit
                   or ("" if chosen.get(key) == prof.name
                       else f"the same knobs differ on {chosen.get(key)}, which runs"))
            out.append({"profile": prof.name, "spec": spec, "policy": policy,
                        "knobs": {k: list(v) for k, v in delta.items()},
                        "status": LEFT_OUT if why else ADDED, "why": why})
    return out


def universe(chosen=()) -> list:
    """Every profile whose knobs are compared: the built-in ones, then those
    named on the command line."""
    return _unique(list(profiles.names()) + list(chosen or ()))


def _source_file(spec, cls) -> str:
    """The file defining a policy: the path it was named by, or its
    module's file (imported again if it has been dropped from sys.modules
    since, e.g. by pytester)."""
    target = spec.partition(":")[0] if isinstance(spec, str) else ""
    if target.endswith(".py"):
        return os.path.abspath(target)
    module = sys.modules.get(cls.__module__)
    if module is None:
        try:
            module = importlib.import_module(cls.__module__)
        except ImportError:
            return ""
    return getattr(module, "__file__", "") or ""


def _module_doc(cls, source) -> str:
    """The docstring of the module defining `cls`: from the module when it
    is loaded, else from its file (a policy file's module may have been
    dropped from sys.modules since, e.g. by pytester)."""
    module = sys.modules.get(cls.__module__)
    if module is not None and module.__doc__:
        return module.__doc__
    try:
        with open(source, encoding="utf-8") as fh:
            return ast.get_docstring(ast.parse(fh.read()), clean=False) or ""
    except (OSError, SyntaxError, ValueError):
        return ""


def describe(spec, profile_specs=()) -> dict:
    """What a report shows of a policy: where it comes from, its docstring
    (the class's own, else its module's), whether it has a `configure()`,
    and its knobs (after `configure`) on every built-in profile and on
    `profile_specs`, by profile name."""
    policy = _policy(spec)
    cls = type(policy)
    from .policy import Policy
    source = _source_file(spec, cls)
    doc = cls.__dict__.get("__doc__") or _module_doc(cls, source)
    return {"class": f"{cls.__module__}:{cls.__qualname__}", "file": source,
            "doc": inspect.cleandoc(doc) if doc else "",
            "configure": any("configure" in vars(c) for c in cls.__mro__
                             if c not in (Policy, object)),
            "knobs": {profiles.get(p).name: _knobs(spec, p) for p in universe(profile_specs)}}

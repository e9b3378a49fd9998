"""The fixtures a suite test uses: `tlb_machine`, the modeled machine of the
current (profile, policy) cell, and `tlbperf`, which runs a workload on it
over the session's seeds and records the samples. Both get their
collaborators injected by the plugin."""

from __future__ import annotations

import time

import pytest

from . import api, policies, profiles, workloads
from .errors import TlbperfError, WorkloadError
from .policy import call_policy
from .session import Cell
from .userio import printable, printable_lines

DEFAULT_METRICS = ("flush_latency_ns_p99", "ipis")


class ModeledMachine:
    """A profile and a policy, ready to run workloads on an engine."""

    __slots__ = ("profile", "policy", "policy_name", "knobs", "engine", "specs")

    def __init__(self, profile, policy_spec, engine):
        # how this machine was named, so another process (the pytest-xdist
        # controller running adaptive rounds) can build it again
        self.specs = (profile if isinstance(profile, str) else None,
                      policy_spec if isinstance(policy_spec, str) else None)
        self.profile = profiles.get(profile)
        self.policy = policies.resolve(policy_spec)
        self.policy_name = policy_spec if isinstance(policy_spec, str) \
            else self.policy.policy_name()
        self.knobs = self.policy.knobs(self.profile)
        self.engine = engine

    def run(self, workload, seed: int = 0):
        return api.run_configured(workload, self.profile, self.policy, self.knobs, seed,
                                  self.engine)

    def run_key(self, workload, seed: int):
        """What a run on this machine is a function of -- the profile, the
        knobs, the engine asked for, the program -- or None when that is
        not all (a Python hook decides flushes; a custom workload whose
        program has no key). Never the policy's name: the engine and the
        oracle read knobs only."""
        if self.policy.has_python_hooks():
            return None
        program = workload.program_key(self.profile, seed)
        return None if program is None else (self.profile.digest, self.knobs, self.engine,
                                             program)

    def __repr__(self):
        return f"<ModeledMachine {self.profile.name} {self.policy_name} engine={self.engine}>"


def runner_spec(machine, workload):
    """A JSON description from which `runner_from_spec` rebuilds (machine,
    workload) in another process, or None when that is impossible: the
    profile or policy was given as an object, or the workload is a custom
    one whose build function lives in a test module."""
    profile_spec, policy_spec = machine.specs
    builtin = False
    builder = workloads.BUILDERS.get(workload.name)
    if builder is not None:
        try:
            again = builder(**workload.params)
        except Exception:           # noqa: BLE001 - parameters of a look-alike custom one
            again = None
        # the same builder made it: the same build code, not just the same name
        builtin = again == workload and getattr(again._build, "__code__", None) is \
            getattr(workload._build, "__code__", False)
    if profile_spec is None or policy_spec is None or not builtin:
        return None
    return {"profile": profile_spec, "policy": policy_spec, "engine": machine.engine,
            "builder": workload.name, "params": dict(workload.params)}


def runner_from_spec(spec):
    """(ModeledMachine, Workload) from `runner_spec`'s description."""
    machine = ModeledMachine(spec["profile"], spec["policy"], spec["engine"])
    return machine, workloads.BUILDERS[spec["builder"]](**spec["params"])


class TlbperfFixture:
    """`tlbperf(workload, metrics=...)`: run on every seed, record, judge.

    The metrics named are the ones the summary shows for this test (all are
    recorded). Violations the policy does not declare fail the test, and so
    does a declared one that this test shows but no longer finds, unless
    --tlbperf-fail-on=none. A cell run only because a candidate's knobs
    differ on its profile (`touched`) is skipped when the workload does not
    fit that machine."""

    def __init__(self, machine, test, seeds, metrics, shows, session, fail_on, nodeid=None,
                 touched=False, same_knobs=None):
        self.machine = machine
        self.test = test
        self.seeds = seeds
        self.metrics = tuple(metrics)
        self.shows = frozenset(shows)
        self.session = session
        self.fail_on = fail_on
        self.nodeid, self.touched = nodeid, touched
        self.same_knobs = same_knobs
        self.calls = 0

    def __call__(self, workload, metrics=None) -> Cell:
        try:
            runs = [self.session.run(self.machine, workload, s) for s in self.seeds]
        except WorkloadError as exc:
            if self.touched:
                pytest.skip(printable_lines(
                    f"run here for the candidate's knobs, but the workload does not fit "
                    f"{self.machine.profile.name}: {exc}"))
            pytest.fail(printable_lines(f"{self.machine.policy_name} on "
                                        f"{self.machine.profile.name}: {exc}"), pytrace=False)
        except TlbperfError as exc:     # bad parameters, a policy's bug: one clean failure
            pytest.fail(printable_lines(f"{self.machine.policy_name} on "
                                        f"{self.machine.profile.name}: {exc}"), pytrace=False)
        return self._record(printable(repr(workload)), runs[0][0], metrics or self.metrics,
                            [s for _, s in runs], 0.0, runner=(self.machine, workload))

    def membarrier(self) -> Cell:
        """Check seed 004's membarrier scenarios against this cell's knobs on
        the x86-TSO litmus checker: a reachable forbidden outcome is a
        `membarrier_order` violation, judged like any other."""
        from . import membarrier
        started = time.perf_counter()
        found = membarrier.violations(self.machine.knobs)
        samples = [{"seed": 0, "metrics": {}, "violations": [v.to_dict() for v in found]}]
        return self._record("membarrier litmus (seed 004)", "x86-TSO checker", (), samples,
                            time.perf_counter() - started)

    def _record(self, what, engine, metrics, samples, elapsed, runner=None) -> Cell:
        self.calls += 1
        label = self.test if self.calls == 1 else f"{self.test}#{self.calls}"
        m = self.machine
        try:
            expected = call_policy(m.policy, f"expected_violations({m.profile.name})",
                                   m.policy.expected_violations, m.profile)
        except TlbperfError as exc:
            pytest.fail(printable_lines(str(exc)), pytrace=False)
        cell = Cell(label, m.profile.name, printable(m.policy_name), what, engine, metrics,
                    samples, expected=expected, shows=self.shows, nodeid=self.nodeid,
                    touched=self.touched, same_knobs=self.same_knobs)
        self.session.add(cell, m.profile.digest, elapsed, runner=runner)
        # --tlbperf-fail-on=regression fails on violations too: a policy that
        # breaks the oracle's invariants is worse than a slow one
        if self.fail_on in ("violation", "regression") and (cell.unexpected() or cell.lost()):
            pytest.fail(printable_lines(self._explain(cell)), pytrace=False)
        return cell

    @staticmethod
    def _explain(cell) -> str:
        lines = []
        for kind in sorted(cell.unexpected()):
            first = next(v for v in cell.violations() if v.kind == kind)
            lines.append(f"{cell.policy} on {cell.profile}: {first.format()}")
        for kind in sorted(cell.lost()):
            lines.append(f"{cell.policy} on {cell.profile}: known violation {kind} no longer "
                         f"appears (strict: the oracle has lost its teeth)")
        return "\n".join(lines)


# -- the host backend (DESIGN §9) ------------------------------------------------
HOST_PROFILE, HOST_POLICY = "host", "kernel"
# what a host cell shows besides the suite's own metrics that the host gives
HOST_METRICS = ("ops_per_sec", "ipis")


class HostMachine:
    """The running kernel, standing where a (profile, policy) cell's
    modeled machine stands: `.run(workload, windows)` measures it.
    `.identity` is the kernel's identity, recorded in every saved run."""

    __slots__ = ("config", "identity", "digest", "counters")

    def __init__(self, config, ident):
        import hashlib
        import json
        self.config = config
        self.identity = ident
        self.digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()) \
            .hexdigest()[:16]
        self.counters = {}

    def run(self, workload, windows):
        from . import host
        result = host.run(workload, windows=windows, config=self.config)
        self.counters.update(result.counters)
        return result

    def __repr__(self):
        return f"<HostMachine {self.identity.get('release')} CPUs {self.config.to_dict()['cpus']}>"


def host_metrics(shown) -> list:
    """The suite's metrics the host can give, then HOST_METRICS."""
    from .metrics import METRICS
    out = [m for m in shown if "host" in METRICS[m].backends]
    return out + [m for m in HOST_METRICS if m not in out]


class HostFixture:
    """`tlbperf(workload, metrics=...)` under --tlbperf-backend=host: one
    host run of `rounds` windows, each window one sample. A workload with
    no host form, or too big for the CPUs the run may use, is skipped with
    the reason; a host failure fails the test."""

    def __init__(self, machine, test, rounds, metrics, session):
        self.machine = machine
        self.test = test
        self.rounds = rounds
        self.metrics = tuple(metrics)
        self.session = session
        self.calls = 0

    def __call__(self, workload, metrics=None) -> Cell:
        from . import host
        if workload.name not in host.FORMS:
            pytest.skip(f"{workload.name} runs on the model only: it has no host form "
                        f"(host forms: {', '.join(host.FORMS)})")
        started = time.perf_counter()
        try:
            result = self.machine.run(workload, self.rounds)
        except host.TooFewCpus as exc:
            pytest.skip(str(exc))
        except host.HostError as exc:
            pytest.fail(f"host: {exc}", pytrace=False)
        self.calls += 1
        label = self.test if self.calls == 1 else f"{self.test}#{self.calls}"
        shown = [m for m in host_metrics(metrics or self.metrics)
                 if any(m in s["metrics"] for s in result.samples)]
        cell = Cell(label, HOST_PROFILE, HOST_POLICY, f"{workload!r} on {result.placement()}",
                    "host", shown, result.samples)
        self.session.add(cell, self.machine.digest, time.perf_counter() - started)
        return cell

    def membarrier(self):
        pytest.skip("the membarrier litmus check runs on the model's x86-TSO checker: there "
                    "is nothing to measure on the host")

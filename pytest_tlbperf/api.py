"""`run()`: one workload, one profile, one policy, one seed -> a `Result`."""

from __future__ import annotations

import time
import warnings

from . import metrics, profiles
from .engine import abi, native
from .engine.machine import Machine
from .engine.trace import format_trace
from .errors import EngineUnavailable, PolicyError, TlbperfError, WorkloadError
from .policies import resolve
from .policy import call_policy, policy_label
from .result import Violation
from .workloads import BUILDERS, Workload

MODEL_VERSION = "1"
ENGINES = ("auto", "python", "native")


class Result:
    """What one run returns: metrics, violations and where they came from.

    `executed_digest` (which ops each task executed) is computed when first
    read: it hashes the repr of every executed op, which costs more than a
    native run, and only the differential tests read it. `engine_seconds`
    is the time the engine's run took (the run loop, without compiling,
    digests or metrics): the plugin's breakdown of a session's time."""

    __slots__ = ("workload", "profile", "policy", "seed", "engine", "metrics", "violations",
                 "violation_counts", "ipis_by_cpu", "finished", "program_digest",
                 "_executed_digest", "_executed", "engine_seconds")

    def __init__(self, workload, profile, policy, seed, engine, metrics, violations,
                 violation_counts, ipis_by_cpu, finished, program_digest, executed_digest,
                 engine_seconds=0.0):
        self.workload, self.profile, self.policy = workload, profile, policy
        self.seed, self.engine = seed, engine
        self.metrics = metrics
        self.violations = violations
        self.violation_counts = violation_counts
        self.ipis_by_cpu = ipis_by_cpu          # cross-call IPIs each CPU handled
        self.finished = finished
        self.program_digest = program_digest
        # a digest, or (program, task_pc) to compute it from when it is read
        self._executed_digest, self._executed = (executed_digest, None) \
            if isinstance(executed_digest, str) else (None, executed_digest)
        self.engine_seconds = engine_seconds

    @property
    def executed_digest(self) -> str:
        if self._executed_digest is None and self._executed is not None:
            self._executed_digest = _executed_digest(*self._executed)
            self._executed = None
        return self._executed_digest

    def to_dict(self) -> dict:
        return {
            "workload": self.workload, "profile": self.profile, "policy": self.policy,
            "seed": self.seed, "engine": self.engine, "metrics": dict(self.metrics),
            "violations": [v.to_dict() for v in self.violations],
            "violation_counts": dict(self.violation_counts),
            "ipis_by_cpu": list(self.ipis_by_cpu), "finished": self.finished,
            "program_digest": self.program_digest, "executed_digest": self.executed_digest,
        }

    def __eq__(self, other):
        return isinstance(other, Result) and self.to_dict() == other.to_dict()

    def kinds(self) -> set:
        return {v.kind for v in self.violations}

    def __repr__(self):
        kinds = ", ".join(sorted(self.kinds())) or "no violations"
        return (f"<Result {self.workload}@{self.profile} {self.policy} seed={self.seed} "
                f"engine={self.engine}: {kinds}>")


_warned = set()


def _pick_engine(engine: str, policy) -> str:
    if engine not in ENGINES:
        raise TlbperfError(f"unknown engine {engine!r}; engines are {', '.join(ENGINES)}")
    if engine == "python":
        return "python"
    if engine == "native":
        if not native.available():
            raise EngineUnavailable("the native engine is not built in this installation "
                                    "(no C compiler when it was installed?); reinstall "
                                    "with a compiler, or use engine='python' or 'auto'")
        if policy.has_python_hooks():
            raise EngineUnavailable(f"policy {policy.policy_name()} defines "
                                    f"should_flush_cpu, a Python hook the native engine "
                                    f"cannot call; use engine='python' or 'auto'")
        return "native"
    # auto: native when built and the policy is knobs only
    if policy.has_python_hooks():
        return "python"
    if native.available():
        return "native"
    if "native" not in _warned:
        _warned.add("native")
        warnings.warn("pytest-tlbperf: the native engine is not built (no C compiler when "
                      "it was installed?); running the python engine, which gives the same "
                      "results more slowly", RuntimeWarning, stacklevel=3)
    return "python"


def _hook(policy):
    """should_flush_cpu as the engine calls it: run as the policy's own code
    (bounded, its errors named; policy.call_policy), and its answer a real
    bool -- 'yes', None or 1 are bugs the engine would otherwise read as
    True or False without a word."""
    method = policy.should_flush_cpu

    def hook(cpu, info):
        send = call_policy(policy, f"should_flush_cpu(cpu{cpu})", method, cpu, info)
        if type(send) is not bool:
            raise PolicyError(f"{policy_label(policy)}: should_flush_cpu(cpu{cpu}) returned "
                              f"{send!r} ({type(send).__name__}); it must return True or "
                              f"False")
        return send
    return hook


def _executed_digest(program, task_pc) -> str:
    import hashlib
    h = hashlib.sha256()
    for task, pc in zip(program.tasks, task_pc):
        h.update(repr(tuple(task.ops[:pc])).encode())
    return h.hexdigest()[:16]


def _not_a_workload(workload) -> str:
    """Why `workload` cannot run: a builder's name or the builder itself
    where its result was meant."""
    name = workload if isinstance(workload, str) else getattr(workload, "__name__", None)
    if name in BUILDERS:
        return (f"the workload must be a Workload, got {workload!r}: call the builder, "
                f"tp.workloads.{name}()")
    return (f"the workload must be a Workload (tp.workloads.kernel_build(), ... or "
            f"tp.workloads.custom()), got {type(workload).__name__} {workload!r}")


def run(workload, profile="skylake-2s", policy="mainline", seed: int = 0,
        engine: str = "auto") -> Result:
    """Run `workload` on the modeled `profile` under `policy` with `seed`."""
    prof = profiles.get(profile)
    pol = resolve(policy)
    return run_configured(workload, prof, pol, pol.knobs(prof), seed, engine)


def run_configured(workload, prof, pol, knobs, seed: int, engine: str = "auto") -> Result:
    """`run()` for a Profile, a Policy instance and the knobs it resolved to
    on that profile, made once by the caller (`fixture.ModeledMachine` runs
    one cell's many seeds with them: resolving the knobs runs the policy's
    configure() under its instruction budget, every time)."""
    # below 2^64: the streams take the seed mod 2^64 (engine/prng.py), so
    # seed 2^64 + 1 would silently be seed 1; True would be seed 1 too
    if type(seed) is bool or not isinstance(seed, int) or not 0 <= seed < 1 << 64:
        raise TlbperfError(f"seed must be an integer from 0 to 2^64 - 1, got {seed!r}")
    if not isinstance(workload, Workload):
        raise WorkloadError(_not_a_workload(workload))
    chosen = _pick_engine(engine, pol)
    program = workload.compile(prof, seed)
    hook = _hook(pol) if pol.has_python_hooks() else None
    started = time.perf_counter()
    raw = (native.run(prof, knobs, program, seed) if chosen == "native"
           else Machine(prof, knobs, program, seed, hook=hook).run())
    seconds = time.perf_counter() - started
    violations = [Violation(abi.VIOLATION_KINDS[kind], abi.SEVERITIES[sev], cpu,
                            prof.ns_from_cycles(t), format_trace(trace, prof))
                  for kind, sev, cpu, t, trace in raw["violations"]]
    counts = {abi.VIOLATION_KINDS[i]: n for i, n in enumerate(raw["violation_counts"]) if n}
    return Result(workload.name, prof.name, pol.policy_name(), seed, chosen,
                  metrics.compute(raw, prof), violations, counts, tuple(raw["ipis_received"]),
                  raw["finished"], program.digest(), (program, raw["task_pc"]), seconds)

"""Speed of the reference engine (run on demand: pytest tests/bench -m bench).

Reported as simulated flushes per second of host time, so the figure means
the same thing whatever the workload's length. The native engine (issue 5)
adds the same scenarios and reports its speed as a ratio to these."""

import pytest

import pytest_tlbperf as tp
from pytest_tlbperf.engine.machine import Machine

SCENARIOS = [("kernel_build", "skylake-2s"), ("madvise_dontneed", "haswell-4c")]


def simulate(workload, profile, seed):
    policy = tp.policies.get("mainline")()
    program = workload.compile(profile, seed)
    return Machine(profile, policy.knobs(profile), program, seed).run()


@pytest.mark.bench
@pytest.mark.parametrize("workload, profile", SCENARIOS)
def test_python_engine_flushes_per_second(benchmark, workload, profile):
    prof = tp.profiles.get(profile)
    work = tp.workloads.BUILDERS[workload]()
    raw = benchmark.pedantic(simulate, args=(work, prof, 1), rounds=5, iterations=1,
                             warmup_rounds=1)
    flushes = len(raw["flush_latency"])
    assert flushes > 0 and raw["finished"]
    benchmark.extra_info["flushes"] = flushes
    benchmark.extra_info["ops"] = raw["counters"]["ops"]
    benchmark.extra_info["flushes_per_second"] = round(flushes / benchmark.stats.stats.mean)

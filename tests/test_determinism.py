"""One seed -> one result, bit for bit; policies share the seed's workload."""

import json
import subprocess
import sys

import pytest_tlbperf as tp
from conftest import V414, DropLazy

W = tp.workloads


def test_same_seed_same_result_in_one_process():
    a = tp.run(W.kernel_build(), "zen1-epyc", V414, seed=3)
    b = tp.run(W.kernel_build(), "zen1-epyc", V414, seed=3)
    assert a == b
    assert a.violations, "this run should carry violations with traces to compare"
    assert a.violations[0].trace == b.violations[0].trace


def test_same_seed_same_result_across_processes(tmp_path):
    code = ("import json, pytest_tlbperf as tp;"
            "r = tp.run(tp.workloads.munmap_storm(), 'skylake-2s', 'mainline', seed=5);"
            "print(json.dumps(r.to_dict(), sort_keys=True))")
    # another interpreter, another hash seed, run outside the source tree
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path, env={"PYTHONHASHSEED": "123"}).stdout
    here = tp.run(W.munmap_storm(), "skylake-2s", "mainline", seed=5).to_dict()
    assert json.loads(out) == json.loads(json.dumps(here, sort_keys=True))


def test_different_seeds_differ():
    a = tp.run(W.kernel_build(), "skylake-2s", seed=1)
    b = tp.run(W.kernel_build(), "skylake-2s", seed=2)
    assert a.program_digest != b.program_digest
    assert a.metrics != b.metrics


def test_policies_with_one_seed_execute_the_same_ops():
    """Common random numbers: the machine's randomness (jitter, speculative
    walks) is a separate stream, so each task runs the same op sequence
    whatever the policy does to timing."""
    a = tp.run(W.kernel_build(jobs=12), "skylake-2s", "mainline", seed=9)
    b = tp.run(W.kernel_build(jobs=12), "skylake-2s", DropLazy, seed=9)
    assert a.finished and b.finished
    assert a.program_digest == b.program_digest
    assert a.executed_digest == b.executed_digest
    assert a.metrics["cr3_writes"] != b.metrics["cr3_writes"]   # yet the runs differ

"""Exports read back by their own tools: `pytest-benchmark compare` and
`python -m pyperf compare_to` run on the files this project writes."""

import csv
import json
import subprocess
import sys

import pytest

from pytest_tlbperf.reports import export, html  # noqa: F401 - see tests/test_plugin.py

pyperf = pytest.importorskip("pyperf")
pytest.importorskip("pytest_benchmark")

BASE = [1000.0, 1010, 990, 1005, 995, 1002, 998, 1007]


def _run(commit, factor, extra_seeds=0):
    """Two policies on 8 seeds (the test's first look), each cell extended
    by `extra_seeds` more as the adaptive rounds do."""
    def cell(policy, values, ipis):
        seeds = [{"seed": i, "metrics": {"madvise_ns": v, "ipis_to_lazy": 0, "ipis": ipis,
                                         "cr3_writes": 50 + i % 4, "makespan_ns": 5000 + i},
                  "violations": []} for i, v in enumerate(values)]
        seeds += [{"seed": len(values) + k, "metrics": {
            "madvise_ns": values[k % len(values)] * 0.7, "ipis_to_lazy": 0, "ipis": ipis,
            "cr3_writes": 50, "makespan_ns": 5000}, "violations": []}
            for k in range(extra_seeds)]
        return {"test": "test_madvise", "profile": "haswell-4c", "policy": policy,
                "metrics": ["madvise_ns", "ipis_to_lazy", "ipis", "cr3_writes"],
                "workload": "w", "engine": "python", "rounds": len(values), "seeds": seeds}
    return {"id": commit, "commit": commit, "model_version": "1", "created": "2024-01-01",
            "profiles": {"haswell-4c": "abc"}, "baseline": "mainline",
            "options": {"rounds": len(BASE)},
            "cells": [cell("mainline", BASE, 40),
                      cell("async_flush", [v * factor for v in BASE], 40)]}


def _tool(*args, cwd):
    out = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                         cwd=cwd, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_pytest_benchmark_compare_reads_the_export(tmp_path):
    (tmp_path / "0001_old.json").write_text(export.pytest_benchmark(_run("old", 1.0)))
    (tmp_path / "0002_new.json").write_text(export.pytest_benchmark(_run("new", 0.8)))
    out = _tool("pytest_benchmark", "compare", "0001_old.json", "0002_new.json",
                "--columns=min,median,max,rounds", cwd=tmp_path)
    assert "Failed to load" not in out
    assert "benchmark 'madvise_ns test_madvise[haswell-4c]': 4 tests" in out
    assert "test_madvise[haswell-4c-async_flush] (0002_new)" in out
    assert "test_madvise[haswell-4c-mainline] (0001_old)" in out
    assert "(time in ns)" in out                   # values exported in seconds, shown in ns
    # counts are never shown as times: only time metrics are benchmarks
    assert "ipis" not in out and "cr3_writes" not in out
    _tool("pytest_benchmark", "compare", "0002_new.json", "--csv=new.csv", cwd=tmp_path)
    rows = {r["name"]: r for r in csv.DictReader(open(tmp_path / "new.csv"))}
    assert set(rows) == {"test_madvise[haswell-4c-async_flush]::madvise_ns",
                         "test_madvise[haswell-4c-mainline]::madvise_ns"}
    middle = sorted(BASE)[3:5]
    fast = rows["test_madvise[haswell-4c-async_flush]::madvise_ns"]
    assert float(fast["median"]) == pytest.approx(sum(middle) / 2 * 0.8 * 1e-9)
    assert float(fast["min"]) == pytest.approx(min(BASE) * 0.8 * 1e-9)
    assert fast["rounds"] == str(len(BASE))
    # ... they travel in the time benchmark's extra_info, in their own unit
    data = json.loads((tmp_path / "0002_new.json").read_text())
    bench = next(b for b in data["benchmarks"] if b["params"]["policy"] == "mainline")
    assert bench["extra_info"]["counts"]["ipis"] == {
        "unit": "IPIs", "better": "lower", "median": 40, "values": [40] * len(BASE)}
    assert bench["extra_info"]["counts"]["cr3_writes"]["unit"] == "writes"


def test_a_cell_without_time_metric_carries_its_counts_on_makespan():
    run = _run("old", 1.0)
    for cell in run["cells"]:
        cell["metrics"] = ["ipis"]
    data = json.loads(export.pytest_benchmark(run))
    assert {b["extra_info"]["metric"] for b in data["benchmarks"]} == {"makespan_ns"}
    assert all(set(b["extra_info"]["counts"]) == {"ipis"} for b in data["benchmarks"])


def test_pyperf_compare_to_tests_every_benchmark_without_errors(tmp_path):
    """Two runs whose adaptive rounds grew differently still have the same
    number of values per benchmark (the first look), so pyperf's t-test runs
    on each; an unchanged policy is not significant, the faster one is."""
    (tmp_path / "old.json").write_text(export.pyperf(_run("old", 1.0, extra_seeds=12)))
    (tmp_path / "new.json").write_text(export.pyperf(_run("new", 1.25, extra_seeds=2)))
    out = _tool("pyperf", "compare_to", "old.json", "new.json", cwd=tmp_path)
    assert "ERROR" not in out
    assert "test_madvise[haswell-4c-async_flush]:madvise_ns" in out
    assert "1.25x slower" in out
    # mainline is the same in both runs: hidden as not significant, not "faster"
    assert "Benchmark hidden because not significant" in out
    assert "test_madvise[haswell-4c-mainline]:madvise_ns" in out.split("not significant")[-1]
    verbose = _tool("pyperf", "compare_to", "-v", "old.json", "new.json", cwd=tmp_path)
    assert "ERROR" not in verbose and verbose.count("Significant (t=") >= 1
    suite = pyperf.BenchmarkSuite.load(str(tmp_path / "new.json"))
    bench = suite.get_benchmark("test_madvise[haswell-4c-async_flush]:madvise_ns")
    # integer nanoseconds of the first look's 8 seeds, not the adaptive ones
    assert bench.get_values() == pytest.approx(tuple(v * 1.25 for v in BASE))
    assert bench.get_unit() == "integer" and bench.get_nrun() == len(BASE)
    assert "nanoseconds" in bench.get_metadata()["description"]
    counts = suite.get_benchmark("test_madvise[haswell-4c-mainline]:cr3_writes")
    assert counts.get_unit() == "integer"
    # what pyperf cannot test is left out, and said so
    names = suite.get_benchmark_names()
    left_out = bench.get_metadata()["tlbperf_left_out"]
    for name, why in [("test_madvise[haswell-4c-mainline]:ipis_to_lazy", "a value is 0"),
                      ("test_madvise[haswell-4c-mainline]:ipis", "the same value on every "
                                                                 "seed")]:
        assert name not in names and f"{name}: {why}" in left_out


def test_pyperf_show_gives_no_warning_our_metadata_causes(tmp_path):
    """`pyperf show` warns (ending in 'Run ... pyperf system tune') when a
    'second' value's raw time is under 1 ms -- a clock check that the
    metadata (unit, loops) decides. Modeled times are integer nanoseconds:
    what it still says is about the data (seeds, spread)."""
    (tmp_path / "run.json").write_text(export.pyperf(_run("old", 1.0)))
    out = _tool("pyperf", "show", "run.json", cwd=tmp_path)
    assert "shortest raw value" not in out
    assert "nohz_full" not in out and "CPU config" not in out
    reasons = {line for line in out.splitlines() if line.startswith("* ")}
    assert reasons <= {"* Not enough samples to get a stable result (95% certainty of less "
                       "than 1% variation)"}, reasons


def test_plugin_writes_both_exports(pytester):
    pytester.makepyfile(test_suite='''
import pytest
import pytest_tlbperf as tp

@pytest.mark.tlbperf(profiles=["haswell-4c"], metrics=["madvise_ns"])
def test_madvise(tlbperf):
    tlbperf(tp.workloads.madvise_dontneed(iterations=20))
''')
    result = pytester.runpytest("--tlbperf", "--tlbperf-policy", "async_flush",
                                "--tlbperf-touched-profiles", "list",
                                "--tlbperf-export", "pyperf=pp.json",
                                "--tlbperf-export", "pytest-benchmark=pb.json")
    result.assert_outcomes(passed=2)
    names = pyperf.BenchmarkSuite.load(str(pytester.path / "pp.json")).get_benchmark_names()
    assert sorted(names) == ["test_madvise[haswell-4c-async_flush]:madvise_ns",
                             "test_madvise[haswell-4c-mainline]:madvise_ns"]
    data = json.loads((pytester.path / "pb.json").read_text())
    assert {b["name"] for b in data["benchmarks"]} == {"test_madvise[haswell-4c-async_flush]",
                                                       "test_madvise[haswell-4c-mainline]"}
    bad = pytester.runpytest("--tlbperf", "--tlbperf-export", "csv=x.csv")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--tlbperf-export: 'csv=x.csv': expected FORMAT=PATH*"])


def test_the_plugin_offers_every_export_format():
    from pytest_tlbperf import plugin
    assert set(plugin.FORMATS) == set(export.FORMATS)

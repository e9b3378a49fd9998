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


def _run(commit, factor):
    def cell(policy, values, ipis):
        return {"test": "test_madvise", "profile": "haswell-4c", "policy": policy,
                "metrics": ["madvise_ns", "ipis_to_lazy", "ipis"], "workload": "w",
                "engine": "python",
                "seeds": [{"seed": i, "metrics": {"madvise_ns": v, "ipis_to_lazy": 0,
                                                  "ipis": ipis},
                           "violations": []} for i, v in enumerate(values)]}
    return {"id": commit, "commit": commit, "model_version": "1", "created": "2024-01-01",
            "profiles": {"haswell-4c": "abc"}, "baseline": "mainline",
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
    _tool("pytest_benchmark", "compare", "0002_new.json", "--csv=new.csv", cwd=tmp_path)
    rows = {r["name"]: r for r in csv.DictReader(open(tmp_path / "new.csv"))}
    middle = sorted(BASE)[3:5]
    fast = rows["test_madvise[haswell-4c-async_flush]::madvise_ns"]
    assert float(fast["median"]) == pytest.approx(sum(middle) / 2 * 0.8 * 1e-9)
    assert float(fast["min"]) == pytest.approx(min(BASE) * 0.8 * 1e-9)
    assert fast["rounds"] == str(len(BASE))
    assert float(rows["test_madvise[haswell-4c-mainline]::ipis"]["median"]) == 40


def test_pyperf_compare_to_reads_the_export(tmp_path):
    (tmp_path / "old.json").write_text(export.pyperf(_run("old", 1.0)))
    (tmp_path / "new.json").write_text(export.pyperf(_run("new", 1.25)))
    out = _tool("pyperf", "compare_to", "old.json", "new.json", cwd=tmp_path)
    assert "test_madvise[haswell-4c-async_flush]:madvise_ns" in out
    assert "1.25x slower" in out
    assert "Benchmark hidden because not significant" in out       # mainline: same values
    suite = pyperf.BenchmarkSuite.load(str(tmp_path / "new.json"))
    bench = suite.get_benchmark("test_madvise[haswell-4c-async_flush]:madvise_ns")
    assert bench.get_values() == pytest.approx(tuple(v * 1.25e-9 for v in BASE))
    assert bench.get_unit() == "second" and bench.get_nrun() == len(BASE)
    counts = suite.get_benchmark("test_madvise[haswell-4c-mainline]:ipis")
    assert counts.get_unit() == "integer" and set(counts.get_values()) == {40}
    # pyperf only takes values > 0: the all-zero metric is left out, and said so
    assert "test_madvise[haswell-4c-mainline]:ipis_to_lazy" not in suite.get_benchmark_names()
    assert "ipis_to_lazy" in bench.get_metadata()["tlbperf_skipped"]


def test_plugin_writes_both_exports(pytester):
    pytester.makepyfile(test_suite='''
import pytest
import pytest_tlbperf as tp

@pytest.mark.tlbperf(profiles=["haswell-4c"], metrics=["madvise_ns"])
def test_madvise(tlbperf):
    tlbperf(tp.workloads.madvise_dontneed(iterations=20))
''')
    result = pytester.runpytest("--tlbperf", "--tlbperf-policy", "async_flush",
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

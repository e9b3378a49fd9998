"""`tlbperf report | compare | list | export` on saved runs, and their
errors: a missing or corrupt run is named and exits 2."""

import subprocess
import sys

import pytest

from pytest_tlbperf import cli
from pytest_tlbperf.storage import FORMAT, VERSION, Storage

BASE = [1000.0, 1010, 990, 1005, 995, 1002, 998, 1007, 1003, 996]


def _run(commit, factor):
    def cell(policy, values):
        return {"test": "test_madvise", "profile": "haswell-4c", "policy": policy,
                "metrics": ["madvise_ns"], "workload": "w", "engine": "python",
                "expected": [], "shows": [],
                "seeds": [{"seed": i, "metrics": {"madvise_ns": v}, "violations": []}
                          for i, v in enumerate(values)]}
    return {"format": FORMAT, "version": VERSION, "id": "", "name": None, "commit": commit,
            "dirty": False, "model_version": "1", "baseline": "mainline",
            "options": {"command": ["pytest", "--tlbperf"], "max_rounds": 20},
            "profiles": {"haswell-4c": "abc"}, "engines": ["python"],
            "cells": [cell("mainline", BASE), cell("async_flush", [v * factor for v in BASE])]}


@pytest.fixture
def store(tmp_path):
    storage = Storage(tmp_path / ".tlbperf")
    storage.save(_run("v6.1-1-gaaaaaaa", 0.9), name="main")
    storage.save(_run("v6.1-2-gbbbbbbb", 1.2), name="branch")
    return storage


def main(*argv):
    return cli.main([str(a) for a in argv])


def test_report_writes_html_or_text(store, tmp_path, capsys):
    assert main("report", "main", "--storage", store.path, "-o", tmp_path / "r.html") == 0
    body = (tmp_path / "r.html").read_text()
    assert body.startswith("<!DOCTYPE html>") and "run 0001 (v6.1-1-gaaaaaaa)" in body
    assert main("report", "0001", "--storage", store.path, "-o", tmp_path / "r.txt") == 0
    txt = (tmp_path / "r.txt").read_text()
    assert "async_flush" in txt and "-10.0%" in txt and "improvement" in txt
    assert max(map(len, txt.splitlines())) <= 80
    assert main("report", store.path / "0002_branch.json") == 0        # by path, to stdout
    out = capsys.readouterr().out
    assert "+20.0%" in out and "REGRESSION" in out


def test_report_with_a_reference_run_and_fail_on_regression(store, capsys):
    assert main("report", "branch", "main", "--storage", store.path,
                "--fail-on-regression") == 1
    out = capsys.readouterr().out
    assert "compared with saved run 0001 (v6.1-1-gaaaaaaa)" in out
    assert "madvise_ns (ns, lower is better), vs run 0001 (v6.1-1-gaaaaaaa)" in out


def test_compare_two_runs_unpaired(store, capsys):
    assert main("compare", "main", "branch", "--storage", store.path) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "madvise_ns (ns, lower is better), vs run 0001 (v6.1-1-gaaaaaaa)" in lines
    row = next(line for line in lines if line.startswith("async_flush")).split()
    # 0.9 -> 1.2 of the baseline: +33.3%, ratio of medians, Mann-Whitney on 10 vs 10
    assert row[3] == "+33.3%" and row[-1] == "REGRESSION"
    # the same values on the same 10 seeds: identical, but 10 seeds only bound
    # the share of seeds on which they differ to 26% -- not yet "no change"
    mainline = next(line for line in lines if line.startswith("mainline")).split()
    assert mainline[-1] == "inconclusive" and "paired by seed vs" not in out
    # format-1-like samples without program digests: unpaired, and it says why
    assert "no program digests in the saved run" in " ".join(out.split())
    assert main("compare", "main", "branch", "--storage", store.path, "--threshold", "50",
                "--fail-on-regression") == 0


def test_list_shows_saved_runs(store, capsys):
    (store.path / "0003_broken.json").write_text("{not json")
    assert main("list", "--storage", store.path) == 0
    out = capsys.readouterr().out
    assert "0001  main" in out and "0002  branch" in out and "v6.1-2-gbbbbbbb" in out
    assert "unreadable:" in out and "0003_broken.json: corrupt JSON" in out


def test_missing_and_corrupt_runs_exit_2_naming_the_file(store, tmp_path, capsys):
    assert main("report", "nosuch", "--storage", store.path) == 2
    err = capsys.readouterr().err
    assert "no saved run 'nosuch'" in err and "ids: 0001, 0002" in err
    bad = store.path / "0003_broken.json"
    bad.write_text("{not json")
    assert main("report", bad) == 2
    assert f"{bad}: corrupt JSON" in capsys.readouterr().err
    assert main("compare", "0003", "main", "--storage", store.path) == 2
    err = capsys.readouterr().err      # the id of an unreadable file: that file's error
    assert err.startswith(f"tlbperf: error: {bad}: corrupt JSON") and "skipped" not in err
    foreign = tmp_path / "foreign.json"
    foreign.write_text('{"hello": 1}')
    assert main("export", foreign, "--format", "pyperf", "-o", tmp_path / "x.json") == 2
    assert "foreign.json: not a pytest-tlbperf run" in capsys.readouterr().err
    assert main("report", tmp_path / "gone.json") == 2
    assert "gone.json: cannot read" in capsys.readouterr().err


def test_console_entry_point_exit_status(store, tmp_path):
    # run outside the source tree, so the installed package is the one imported
    out = subprocess.run([sys.executable, "-m", "pytest_tlbperf.cli", "report", "nosuch",
                          "--storage", str(store.path)], capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.returncode == 2 and "tlbperf: error: no saved run 'nosuch'" in out.stderr

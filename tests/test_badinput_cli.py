"""Issue 17 through the `tlbperf` command: every bad input is an
`tlbperf: error: ...` line (or argparse's usage error) with exit status 2,
checked before any work, and Ctrl-C is a clean exit 130."""

import json
import os
import re

import pytest

from pytest_tlbperf import api, cli
from pytest_tlbperf.engine import native
from pytest_tlbperf.storage import FORMAT, VERSION, Storage


def main(*argv):
    return cli.main([str(a) for a in argv])


def _run(policy="mainline"):
    return {"format": FORMAT, "version": VERSION, "id": "", "name": None, "commit": "c",
            "dirty": False, "model_version": "1", "baseline": "mainline", "options": {},
            "profiles": {"haswell-4c": "abc"}, "engines": ["python"],
            "cells": [{"test": "test_m", "profile": "haswell-4c", "policy": p,
                       "metrics": ["ipis"], "workload": "w", "engine": "python",
                       "expected": [], "shows": [],
                       "seeds": [{"seed": i, "metrics": {"ipis": 10 + i}, "violations": []}
                                 for i in range(5)]} for p in ("mainline", policy)]}


@pytest.fixture
def store(tmp_path):
    storage = Storage(tmp_path / ".tlbperf")
    storage.save(_run(), name="main")
    return storage


@pytest.fixture
def no_runs(monkeypatch):
    """api.run fails the test: an error must come before any work."""
    def refuse(*args, **kwargs):
        raise AssertionError("ran a simulation before checking the input")
    monkeypatch.setattr(api, "run", refuse)


@pytest.mark.parametrize("argv, message", [
    (["report", "main", "-o", "nodir/r.html"], "-o nodir/r.html: folder nodir does not exist"),
    (["report", "main", "-o", "."], "-o .: is a directory"),
    (["export", "main", "--format", "pytest-benchmark", "-o", "nodir/pb.json"],
     "-o nodir/pb.json: folder nodir does not exist"),
    (["simulate", "--workload", "madvise_dontneed", "--json", "nodir/x.json"],
     "--json nodir/x.json: folder nodir does not exist"),
    (["report", "/dev/zero"], "/dev/zero: cannot read saved run: not a regular file "
                              "(a character device)"),
])
def test_bad_paths_are_named_before_any_work(store, capsys, no_runs, argv, message):
    assert main(*argv, "--storage", store.path) == 2 if argv[0] != "simulate" else \
        main(*argv) == 2
    err = capsys.readouterr().err
    assert f"tlbperf: error: {message}" in err and "Traceback" not in err


def test_a_fifo_output_without_a_reader_is_refused(store, tmp_path, capsys, no_runs):
    os.mkfifo(tmp_path / "pipe.html")
    assert main("report", "main", "--storage", store.path, "-o", tmp_path / "pipe.html") == 2
    assert "a FIFO that no process reads" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["simulate", "--seeds", str(10**12)], "argument --seeds: must be an integer from 1 to "
                                           "10000, got 1000000000000"),
    (["simulate", "--seeds", "0"], "argument --seeds: must be an integer from 1 to 10000"),
    (["simulate", "--traces", "-1"], "argument --traces: must be an integer from 0 to 64"),
    (["matrix", "--seeds", "abc"], "argument --seeds: 'abc' is not an integer"),
    (["calibrate", "--iterations", str(10**9)], "argument --iterations: must be an integer "
                                                "from 1 to 100000"),
])
def test_counts_are_bounded(capsys, no_runs, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(*argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_simulate_runs_every_policy_it_is_given(capsys):
    assert main("simulate", "--workload", "madvise_dontneed", "--seeds", "1",
                "--policy", "mainline", "--policy", "lazy_pcid") == 0
    out = capsys.readouterr().out
    rows = [line.split()[0] for line in out.splitlines()[2:]]
    assert out.startswith("policy mainline, lazy_pcid, median over 1 seeds")
    assert rows == ["mainline", "lazy_pcid"]


def test_simulate_checks_every_policy_before_any_work(tmp_path, capsys, no_runs):
    hooked = tmp_path / "hooked.py"
    hooked.write_text("import pytest_tlbperf as tp\nclass H(tp.Policy):\n"
                      "    def should_flush_cpu(self, cpu, info):\n        return True\n")
    assert main("simulate", "--engine", "native", "--policy", "mainline", "--policy",
                hooked) == 2
    assert ("defines should_flush_cpu" if native.available() else "native engine is not "
            "built") in capsys.readouterr().err
    bad = tmp_path / "bad.py"
    bad.write_text("import pytest_tlbperf as tp\nclass B(tp.Policy):\n"
                   "    def configure(self, profile):\n        return {}['x']\n")
    assert main("simulate", "--policy", bad) == 2
    # the first profile checked, whichever it is, names the failure
    assert re.search(r"configure\([\w-]+\) raised KeyError: 'x'", capsys.readouterr().err)


def test_ctrl_c_is_a_clean_exit(monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(api, "run", interrupted)
    assert main("simulate", "--workload", "madvise_dontneed") == 130
    assert capsys.readouterr().err.endswith("tlbperf: interrupted\n")


def test_validate_says_how_far_it_is(monkeypatch, capsys, tmp_path):
    from pytest_tlbperf.reports import validation

    def measure(engine, progress):
        for t in range(3):
            if progress:
                progress(f"A/A trial {t + 1}/3")
        return validation.PUBLISHED
    monkeypatch.setattr(validation, "measure", measure)
    assert main("validate") == 0
    assert len(capsys.readouterr().err.splitlines()) == 3
    assert main("validate", "--quiet") == 0
    assert capsys.readouterr().err == ""
    assert main("validate", "--json", tmp_path / "nodir" / "v.json") == 2   # before any work
    assert "folder" in capsys.readouterr().err


def test_saved_strings_are_escaped_on_the_terminal(tmp_path, capsys):
    storage = Storage(tmp_path)
    storage.save(_run(policy="evil\x1b[31m\nred"), name="x\x1b[2J")
    assert main("list", "--storage", tmp_path) == 0
    assert main("report", "0001", "--storage", tmp_path) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "x\\x1b[2J" in out
    assert "\nevil\\x1b[31m\\nr~       12       12   +0.0%" in out     # cut at 16
    assert json.loads(next(tmp_path.glob("0001_*.json")).read_text())["name"] == "x\x1b[2J"

"""Issue 17, saved runs: a corrupt file is named (file and field) and
skipped, never a crash for the other runs; numbering is numeric and atomic
across processes; a comparison warns when the model or a profile changed."""

import concurrent.futures
import copy
import json

import pytest

from pytest_tlbperf import cli
from pytest_tlbperf.storage import (FORMAT, VERSION, Storage, StorageError, check_run,
                                    comparability)


def _run(commit="v6.1-1-gaaaaaaa", factor=1.0):
    def cell(policy, k):
        return {"test": "test_madvise", "profile": "haswell-4c", "policy": policy,
                "metrics": ["madvise_ns"], "workload": "w", "engine": "python",
                "expected": [], "shows": [],
                "seeds": [{"seed": i, "metrics": {"madvise_ns": 1000.0 * k + i},
                           "violations": []} for i in range(6)]}
    return {"format": FORMAT, "version": VERSION, "id": "", "name": None, "commit": commit,
            "dirty": False, "model_version": "1", "baseline": "mainline",
            "options": {"command": ["pytest", "--tlbperf"]},
            "profiles": {"haswell-4c": "abc"}, "engines": ["python"],
            "cells": [cell("mainline", 1.0), cell("async_flush", factor)]}


def _violation(**change):
    v = {"kind": "stale_tlb", "severity": "error", "cpu": 1, "time_ns": 5, "trace": ["x"]}
    v.update(change)
    return {k: val for k, val in v.items() if val is not ...}


def _sample(run):
    return run["cells"][0]["seeds"][0]


# (what is wrong, how to break a good run, the field the error names)
BROKEN = [
    ("a metric that is a string", lambda r: _sample(r)["metrics"].update(madvise_ns="abc"),
     'cells[0].seeds[0].metrics must be an object of finite numbers, got {"madvise_ns": '
     '"abc"}'),
    ("a metric that is null", lambda r: _sample(r)["metrics"].update(madvise_ns=None),
     "cells[0].seeds[0].metrics must be an object of finite numbers"),
    ("a metric that is a bool", lambda r: _sample(r)["metrics"].update(madvise_ns=True),
     "cells[0].seeds[0].metrics must be"),
    ("a violation without its kind",
     lambda r: _sample(r)["violations"].append(_violation(kind=...)),
     "cells[0].seeds[0].violations[0].kind is missing"),
    ("a violation of an unknown kind",
     lambda r: _sample(r)["violations"].append(_violation(kind="oops")),
     "cells[0].seeds[0].violations[0].kind must be a violation kind"),
    ("a violation whose cpu is a string",
     lambda r: _sample(r)["violations"].append(_violation(cpu="1")),
     "violations[0].cpu must be an integer, got \"1\""),
    ("a numeric id", lambda r: r.update(id=7), "id must be a string, got 7"),
    ("commit: null", lambda r: r.update(commit=None), "commit must be a string, got null"),
    ("no model version", lambda r: r.pop("model_version"), "model_version is missing"),
    ("cells that are a string", lambda r: r.update(cells="x"), "cells must be a list"),
    ("a cell that is a list", lambda r: r["cells"].append([1]), "cells[2] must be an object"),
    ("a cell without seeds", lambda r: r["cells"][1].pop("seeds"), "cells[1].seeds is missing"),
    ("a seed that is a float", lambda r: _sample(r).update(seed=1.5),
     "cells[0].seeds[0].seed must be an integer"),
    ("profile digests that are numbers", lambda r: r.update(profiles={"haswell-4c": 1}),
     "profiles must be an object of digests"),
    ("metric names that are not strings", lambda r: r["cells"][0].update(metrics=[1]),
     "cells[0].metrics must be a list of strings"),
]


@pytest.mark.parametrize("what, breaks, field", BROKEN, ids=[b[0] for b in BROKEN])
def test_the_whole_run_is_checked_on_load(tmp_path, what, breaks, field):
    run = _run()
    breaks(run)
    path = tmp_path / "0001_x.json"
    path.write_text(json.dumps(run))
    with pytest.raises(StorageError) as exc:
        Storage(tmp_path).load_file(path)
    assert str(exc.value).startswith(f"{path}: ") and field in str(exc.value)


@pytest.mark.parametrize("content, message", [
    (b"\x00\xff\xfe" * 50, "not UTF-8"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"format": "pytest-tlbperf-run", "version": 1, "x": NaN}', "NaN is not a number"),
    ("[]", "not a pytest-tlbperf run"),
    ("{", "corrupt JSON"),
])
def test_unreadable_files_are_named(tmp_path, content, message):
    path = tmp_path / "0002_bad.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(StorageError, match=message):
        Storage(tmp_path).load_file(path)


def test_a_nan_metric_written_by_python_is_refused(tmp_path):
    run = _run()
    _sample(run)["metrics"]["madvise_ns"] = float("nan")
    (tmp_path / "0001_x.json").write_text(json.dumps(run))    # Python writes NaN
    with pytest.raises(StorageError, match="NaN is not a number JSON allows"):
        Storage(tmp_path).load_file(tmp_path / "0001_x.json")


def test_a_good_run_still_loads():
    assert check_run(copy.deepcopy(_run()), "x")["commit"] == "v6.1-1-gaaaaaaa"


@pytest.fixture
def store(tmp_path):
    """Two good runs with one of each kind of bad file between them."""
    storage = Storage(tmp_path / ".tlbperf")
    storage.save(_run(factor=1.0), name="main")
    path = storage.path
    (path / "0002_binary.json").write_bytes(b"\x00\xff" * 10)
    (path / "0003_nested.json").write_text("[" * 50_000 + "]" * 50_000)
    bad = _run()
    _sample(bad)["metrics"]["madvise_ns"] = "abc"
    (path / "0004_typed.json").write_text(json.dumps(bad))
    (path / "0005_dir.json").mkdir()
    storage.save(_run(factor=1.2), name="branch")
    return storage


def test_list_report_and_compare_survive_corrupt_files(store, tmp_path, capsys):
    assert cli.main(["list", "--storage", str(store.path)]) == 0
    out = capsys.readouterr().out
    assert "0001  main" in out and "0006  branch" in out
    for name in ("0002_binary", "0003_nested", "0004_typed", "0005_dir"):
        assert f"unreadable: {store.path / name}.json" in out
    assert cli.main(["report", "branch", "--storage", str(store.path)]) == 0
    assert "async_flush" in capsys.readouterr().out
    assert cli.main(["compare", "main", "branch", "--storage", str(store.path)]) == 0
    assert "+20.0%" in capsys.readouterr().out
    # the bad one itself, by path or by id, is an error naming it and the field, exit 2
    assert cli.main(["report", str(store.path / "0004_typed.json")]) == 2
    assert "0004_typed.json: cells[0].seeds[0].metrics must be" in capsys.readouterr().err
    assert cli.main(["report", "0004", "--storage", str(store.path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tlbperf: error: {store.path / '0004_typed.json'}: cells[0]")


def test_numbering_is_numeric(tmp_path):
    storage = Storage(tmp_path)
    (tmp_path / "9999_old.json").write_text(json.dumps(dict(_run(), id="9999")))
    # a text sort put 10000_* before 9999_* and the next save looped forever
    assert storage.save(_run()).name == "10000_v6.1-1-gaaaaaaa.json"
    assert storage.save(_run()).name == "10001_v6.1-1-gaaaaaaa.json"
    assert [r["id"] for r in storage.runs()] == ["9999", "10000", "10001"]
    assert storage.find("latest")["id"] == "10001"


def _save_some(args):
    path, label, count = args
    return [Storage(path).save(_run(commit=label)).name for _ in range(count)]


def test_parallel_saves_get_distinct_numbers(tmp_path):
    """Five processes saving at once, as parallel CI jobs do: 5 of 25 ids
    used to be duplicates."""
    jobs = [(tmp_path, f"job{i}", 5) for i in range(5)]
    with concurrent.futures.ProcessPoolExecutor(5) as pool:
        names = [n for batch in pool.map(_save_some, jobs) for n in batch]
    ids = sorted(int(n.split("_")[0]) for n in names)
    assert ids == list(range(1, 26))
    assert sorted(r["id"] for r in Storage(tmp_path).runs()) == [f"{i:04d}" for i in ids]


def test_a_save_that_cannot_be_made_is_a_storage_error(tmp_path):
    (tmp_path / "runs").write_text("a file, not a folder")
    with pytest.raises(StorageError, match=f"cannot save the run in {tmp_path / 'runs'}"):
        Storage(tmp_path / "runs").save(_run())


def test_comparability_names_model_and_profile_changes():
    old, new = dict(_run(), id="0001"), _run()
    assert comparability(new, old) == []
    new["model_version"] = "2"
    new["profiles"] = {"haswell-4c": "def"}
    warnings = comparability(new, old)
    assert "run 0001 was made by model version 1, this one by 2" in warnings[0]
    assert "profile haswell-4c differs from the one run 0001 ran on (digest def vs abc)" \
        in warnings[1]


def test_compare_warns_when_the_model_or_a_profile_differs(tmp_path, capsys):
    storage = Storage(tmp_path)
    storage.save(_run(), name="a")
    storage.save(dict(_run(), model_version="2", profiles={"haswell-4c": "zzz"}), name="b")
    assert cli.main(["compare", "a", "b", "--storage", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "warning: run 0001 was made by model version 1, this one by 2" in err
    assert "warning: profile haswell-4c differs" in err

"""`tlbperf history` and git names for saved runs (issue 14): a scripted git
repository of eight commits, a run of the modeled machine saved at each
(in shuffled order, so file order is not git order), a regression injected
at the fifth commit, and the change point found at that commit; and
`--tlbperf-compare=main` / `HEAD~1` / a branch resolved through git.

Otava is an optional extra: without it these tests skip, unless
TLBPERF_REQUIRE_HISTORY=1 (CI's history venv), where they must run."""

import os
import subprocess

import pytest

import pytest_tlbperf as tp
from pytest_tlbperf import cli
from pytest_tlbperf.fixture import ModeledMachine
from pytest_tlbperf.session import Cell, Session, sample
from pytest_tlbperf.storage import Storage, git_sha, resolve_git

if not os.environ.get("TLBPERF_REQUIRE_HISTORY"):
    pytest.importorskip("otava.analysis", reason="tlbperf history needs the [history] extra")

from pytest_tlbperf.reports import history  # noqa: E402

PROFILE = "haswell-4c"
TEST = "test_madvise_dontneed"
COMMITS = 8
REGRESSED_AT = 5            # the fifth commit makes the page fault 25% dearer
SEEDS = 5


def git(repo, *args):
    out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                         check=True, env={**os.environ, "GIT_AUTHOR_NAME": "t",
                                          "GIT_AUTHOR_EMAIL": "t@example.org",
                                          "GIT_COMMITTER_NAME": "t",
                                          "GIT_COMMITTER_EMAIL": "t@example.org"})
    return out.stdout.strip()


def _run_at(repo, cost):
    """What `pytest --tlbperf --tlbperf-save` records at this commit, for one
    cell: mainline on haswell-4c with the commit's page-fault cost."""
    prof = tp.profiles.get(PROFILE)
    changed = prof.with_changes(costs={"page_fault_cycles": cost})
    machine = ModeledMachine(changed, "mainline", "auto")
    work = tp.workloads.madvise_dontneed(iterations=20)
    session = Session("mainline", {"rounds": SEEDS, "max_rounds": SEEDS})
    samples = [sample(machine.run(work, seed=s)) for s in range(SEEDS)]
    session.add(Cell(TEST, PROFILE, "mainline", repr(work), samples[0] and "auto",
                     ["madvise_ns", "ipis"], samples), changed.digest, 0.0)
    commit = git(repo, "describe", "--always")
    return session.to_run(commit, False, git_sha(repo))


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """Eight commits; a run saved at each, saved in a shuffled order."""
    root = tmp_path_factory.mktemp("kernel")
    git(root, "init", "-q", "-b", "main")
    base = tp.profiles.get(PROFILE).raw["costs"]["page_fault_cycles"]
    runs = {}
    for i in range(1, COMMITS + 1):
        cost = base * 5 // 4 if i >= REGRESSED_AT else base
        (root / "tlb.c").write_text(f"/* commit {i}: page fault costs {cost} cycles */\n")
        git(root, "add", "tlb.c")
        git(root, "commit", "-q", "-m", f"commit {i}")
        runs[i] = _run_at(root, cost)
    storage = Storage(root / ".tlbperf")
    for i in (3, 8, 1, 6, 2, 7, 5, 4):
        storage.save(runs[i], name=f"c{i}")
    return root, storage


def test_history_finds_the_regression_at_the_fifth_commit(repo):
    root, storage = repo
    hist = history.History(storage.runs(), cwd=root)
    assert [r["name"] for r in hist.runs] == [f"c{i}" for i in range(1, COMMITS + 1)]
    madvise = next(s for s in hist.series if s.metric == "madvise_ns")
    (point,) = madvise.points
    assert point.index == REGRESSED_AT - 1
    assert hist.runs[point.index]["commit_sha"] == git(root, "rev-parse", "HEAD~3")
    assert point.ratio > 1.02                      # +25% on the fault: a few % on the loop
    ipis = next(s for s in hist.series if s.metric == "ipis")
    assert ipis.points == []                        # the IPI count did not change


def test_history_command_prints_text_and_writes_html(repo, capsys, monkeypatch):
    root, storage = repo
    monkeypatch.chdir(root)
    assert cli.main(["history", "--metric", "madvise_ns"]) == 0
    out = capsys.readouterr().out
    fifth = git(root, "describe", "--always", "HEAD~3")
    assert f"{fifth}: madvise_ns +" in out and "mainline" in out
    assert cli.main(["history", "-o", str(root / "h.html")]) == 0
    body = (root / "h.html").read_text()
    assert body.startswith("<!DOCTYPE html>") and "<script" not in body
    assert body.count("<svg") == 2                  # one trend plot per metric
    assert 'class="cut"' in body and fifth in body
    assert cli.main(["history", "--metric", "nosuch"]) == 2
    assert "unknown metric 'nosuch'" in capsys.readouterr().err


def test_git_names_find_saved_runs(repo):
    root, storage = repo
    head1 = git(root, "rev-parse", "HEAD~1")
    assert resolve_git("HEAD~1", root) == (head1, "HEAD~1")
    assert storage.find("HEAD~1", cwd=root)["name"] == "c7"
    git(root, "checkout", "-q", "-b", "topic", "HEAD~2")
    try:
        (root / "patch.c").write_text("/* a patch */\n")
        git(root, "add", "patch.c")
        git(root, "commit", "-q", "-m", "patch")
        # a branch names its merge-base with HEAD: where the topic left main
        sha, how = resolve_git("main", root)
        assert sha == git(root, "rev-parse", "HEAD~1") and "merge-base" in how
        assert storage.find("main", cwd=root)["name"] == "c6"
        with pytest.raises(Exception, match="no saved run of commit"):
            storage.find("HEAD", cwd=root)
    finally:
        git(root, "checkout", "-q", "main")

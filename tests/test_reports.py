"""The reports a reviewer reads: `pytest --tlbperf` with verdicts, exit
status, adaptive rounds and report files; the 80-column text; the HTML, in
a real browser."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from pytest_tlbperf.reports import html, text
from pytest_tlbperf.reports.report import Report

SUITE = '''
import pytest
import pytest_tlbperf as tp

@pytest.mark.tlbperf(profiles=["haswell-4c"], metrics=["cr3_writes", "ipis"])
@pytest.mark.parametrize("label", ["<script>alert(1)</script>"])
def test_switch(tlbperf, label):
    tlbperf(tp.workloads.context_switch(cpus=4, window_us=200))
'''
HOSTILE = "<script>alert(1)</script>"
# Candidates whose effect follows from the knobs, not from the model's
# figures: dropping lazy TLB mode makes every kworker switch a CR3 write
# (what lazy mode exists to save: seed 000), so CR3 writes rise on every
# seed; a policy with the baseline's knobs gives identical samples.
POLICIES = '''
import pytest_tlbperf as tp

class DropLazy(tp.Policy):
    """Drop lazy TLB mode everywhere."""
    lazy_tlb = "switch_to_init_mm"

class Same(tp.Policy):
    """mainline's knobs under another name."""
'''
SLOWER = ["--tlbperf-policy", "pols.py:DropLazy", "-p", "no:randomly"]


@pytest.fixture
def suite(pytester):
    pytester.makepyfile(test_suite=SUITE, pols=POLICIES)
    return pytester


def test_fail_on_regression_sets_the_exit_status(suite):
    default = suite.runpytest("--tlbperf", *SLOWER)
    default.assert_outcomes(passed=2)
    assert default.ret == pytest.ExitCode.OK          # fail-on=violation: regressions report
    default.stdout.fnmatch_lines(["cr3_writes (writes, lower is better), paired by seed vs "
                                  "mainline", "pols.py:DropLazy * REGRESSION"])
    assert "FAILED" not in default.stdout.str()
    strict = suite.runpytest("--tlbperf", *SLOWER, "--tlbperf-fail-on", "regression")
    strict.assert_outcomes(passed=2)
    assert strict.ret == pytest.ExitCode.TESTS_FAILED
    # the run ends on the line that says why, after pytest's '2 passed'
    assert strict.stdout.lines[-2].strip("= ").startswith("2 passed")
    last = strict.stdout.lines[-1]
    assert last.startswith("tlbperf: FAILED: 1 significant regression of pols.py:DropLazy "
                           "(--tlbperf-fail-on=regression): test_switch"), last
    assert "cr3_writes +" in last
    assert max(len(line) for line in strict.stdout.lines
               if "REGRESSION" in line or "cr3_writes (" in line) <= 100


def test_threshold_option_and_ini(suite):
    wide = suite.runpytest("--tlbperf", *SLOWER, "--tlbperf-threshold", "cr3_writes=40")
    wide.stdout.fnmatch_lines(["*whole CI beyond 2%, cr3_writes 40%*"])
    suite.makeini("[pytest]\ntlbperf_threshold = 40\ntlbperf_fail_on = regression\n")
    ini = suite.runpytest("--tlbperf", *SLOWER)
    ini.stdout.fnmatch_lines(["*whole CI beyond 40%*"])
    assert ini.ret == pytest.ExitCode.TESTS_FAILED      # tlbperf_fail_on from the ini
    bad = suite.runpytest("--tlbperf", "--tlbperf-threshold", "nosuch=3")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--tlbperf-threshold: threshold for unknown metric(s) nosuch*"])


def test_a_threshold_turns_a_change_inside_it_into_no_change():
    from pytest_tlbperf.reports.thresholds import Thresholds
    strict, wide = Report(_run()), Report(_run(), thresholds=Thresholds.parse(["15"]))
    verdict = {r: {f.policy: f.verdict for f in r.findings if f.metric == "madvise_ns"}
               for r in (strict, wide)}
    assert verdict[strict]["slow"] == "regression"     # +10% on every seed
    assert verdict[wide]["slow"] == "no change"        # ... is inside +/- 15%


def test_adaptive_rounds_extend_both_sides_on_the_same_seeds(pytester):
    """With 5 seeds the signed-rank test cannot reach p < 0.05 (no 95%
    interval is finite), so the regression is inconclusive until the
    adaptive rounds double the seeds of the candidate *and* the baseline;
    at 10 seeds a regression on every seed (p = 2/1024) passes the second
    look's alpha (0.0055). A policy with the baseline's knobs is identical
    on every seed: identical on 10 of 10 only bounds the share of seeds
    where they differ to 26%, so it stays inconclusive at the cap."""
    pytester.makepyfile(pols=POLICIES, test_suite=SUITE.replace('"cr3_writes", "ipis"',
                                                                 '"cr3_writes"'))
    result = pytester.runpytest("--tlbperf", *SLOWER, "--tlbperf-policy", "pols.py:Same",
                                "--tlbperf-json", "run.json", "--tlbperf-max-rounds", "10")
    run = json.loads((pytester.path / "run.json").read_text())
    cells = {c["policy"]: c for c in run["cells"]}
    seeds = {p: [s["seed"] for s in c["seeds"]] for p, c in cells.items()}
    assert seeds["pols.py:DropLazy"] == seeds["mainline"] == seeds["pols.py:Same"] \
        == list(range(10))
    assert {c["rounds"] for c in cells.values()} == {5}
    assert run["options"]["adaptive_rounds"] == [[1, 3, [10]]]
    result.stdout.fnmatch_lines(["*seeds per cell: 10*",
                                 "pols.py:DropLazy * 10 REGRESSION",
                                 "pols.py:Same * identical * 10 inconclusive"])
    off = pytester.runpytest("--tlbperf", *SLOWER, "--tlbperf-max-rounds", "5")
    off.stdout.fnmatch_lines(["pols.py:DropLazy * unbounded * 5 inconclusive"])


def test_reports_are_written_and_escaped(suite):
    result = suite.runpytest("--tlbperf", *SLOWER, "--tlbperf-html", "r.html",
                             "--tlbperf-text", "r.txt")
    result.stdout.fnmatch_lines(["*wrote r.txt*", "*wrote r.html*"])
    body = (suite.path / "r.html").read_text()
    assert HOSTILE not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "Drop lazy TLB mode everywhere." in body     # the candidate's docstring
    report = (suite.path / "r.txt").read_text()
    assert HOSTILE in report                          # text is text: shown as it is
    # 80 columns, except a command's one unbreakable argument (pytester's
    # --basetemp path can be longer than that)
    assert all(len(line) <= 80 or " " not in line.strip().rstrip(" \\")
               for line in report.splitlines())
    assert report.isascii()
    assert "REGRESSION" in report and "reproduce with:" in report


def test_reference_policies_are_shown_and_never_counted(suite):
    """A reviewer's candidate with mainline's knobs, next to the built-in
    drop_lazy as a reference: drop_lazy's CR3-write regression is in the
    tables, marked, and neither in the verdict nor in the exit status."""
    args = ["--tlbperf", "--tlbperf-policy", "pols.py:Same", "--tlbperf-max-rounds", "10",
            "--tlbperf-fail-on=regression", "-p", "no:randomly"]
    alone = suite.runpytest(*args, "-v")
    assert "drop_lazy" not in alone.stdout.str()       # references only when asked for
    result = suite.runpytest(*args, "--tlbperf-reference", "drop_lazy", "-v",
                             "--tlbperf-html", "r.html")
    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([
        "candidate pols.py:Same vs baseline mainline: 0 regressions, *",
        "reference policies (drop_lazy), not counted: 1 regression*",
        "drop_lazy [[]ref[]] * REGRESSION"])
    body = (suite.path / "r.html").read_text()
    banner = body[body.index('<section class="banner'):body.index("</section>")]
    assert "0 regressions" in banner and "significant regression" not in banner
    assert "reference policies (drop_lazy), not counted: 1 regression" in banner
    bad = suite.runpytest("--tlbperf", "--tlbperf-policy", "pols.py:Same",
                          "--tlbperf-reference", "nosuch")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*unknown policy 'nosuch'*"])


def test_a_reference_policy_violation_is_reported_and_does_not_fail(pytester):
    """v4.14-rc1's lazy mode walks through a freed table on zen1-epyc's
    munmap storm (seed 1). As a reference it is listed, marked, with its
    trace's seed; only a candidate's violation fails the run."""
    pytester.makepyfile(test_munmap=MUNMAP, v414=V414)
    args = ["--tlbperf", "--tlbperf-rounds", "2", "--tlbperf-max-rounds", "2"]
    ref = pytester.runpytest(*args, "--tlbperf-policy", "mainline_v4_20",
                             "--tlbperf-reference", "v414.py")
    assert ref.ret == pytest.ExitCode.OK
    ref.stdout.fnmatch_lines(["test_munmap[[]zen1-epyc[]] v414.py [[]reference[]]:",
                              "  freed_table_walk (UNEXPECTED, 1/2 seeds), first on seed 1"])
    cand = pytester.runpytest(*args, "--tlbperf-policy", "v414.py")
    assert cand.ret == pytest.ExitCode.TESTS_FAILED


MUNMAP = '''
import pytest
import pytest_tlbperf as tp

@pytest.mark.tlbperf(profiles=["zen1-epyc"], metrics=["flush_latency_ns_p99"])
def test_munmap(tlbperf):
    tlbperf(tp.workloads.munmap_storm(threads=2))
'''
V414 = '''
import pytest_tlbperf as tp

class V414(tp.Policy):
    lazy_cpumask = "clear"
    flush_lazy_cpus = "never"
    cpumask_update = "eager"         # as v4.14 had it: a CPU leaves the mask at a switch,
    table_free = "after_flush"       # and freed tables go back at once
'''


def test_a_trace_names_its_seed_and_a_command_that_reproduces_it(pytester):
    """The report's reproduce line, run as printed, finds the same
    violation on the same seed."""
    pytester.makepyfile(test_munmap=MUNMAP, v414=V414)
    first = pytester.runpytest("--tlbperf", "--tlbperf-policy", "v414.py", "--tlbperf-rounds",
                               "3", "--tlbperf-max-rounds", "3", "--tlbperf-json", "run.json",
                               "--tlbperf-html", "r.html", "-p", "no:randomly")
    assert first.ret == pytest.ExitCode.TESTS_FAILED
    run = json.loads((pytester.path / "run.json").read_text())
    (entry,) = [v for v in Report(run).violations if v.policy == "v414.py"]
    assert entry.seed == 1 and entry.status == "UNEXPECTED"
    assert entry.command.startswith(f"cd {pytester.path} && pytest --tlbperf --tlbperf-policy "
                                    f"v414.py")
    assert "-k 'test_munmap[zen1-epyc-v414.py]' --tlbperf-rounds 2 --tlbperf-max-rounds 2" \
        in entry.command and "--tlbperf-json" not in entry.command
    assert "Reproduce seed 1 (runs seeds 0..1):" in (pytester.path / "r.html").read_text()
    first.stdout.fnmatch_lines(["*v414.py: freed_table_walk (UNEXPECTED, 1/3 seeds), first "
                                "on seed 1", "*reproduce seed 1:*"])
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep
               + os.environ.get("PATH", ""))
    again = subprocess.run(entry.command, shell=True, capture_output=True, text=True, env=env,
                           timeout=600)
    assert again.returncode == 1, again.stdout[-3000:] + again.stderr[-2000:]
    assert "1 failed" in again.stdout and "deselected" in again.stdout
    trace = entry.trace()
    assert all(line in again.stdout for line in trace[:4]), again.stdout[-3000:]
    assert "freed_table_walk (UNEXPECTED, 1/2 seeds), first on seed 1" in again.stdout


def test_a_builtin_workload_reproduces_with_tlbperf_simulate(tmp_path):
    """A cell that runs a built-in workload with its default parameters is
    reproduced by `tlbperf simulate`, which prints the seed with the trace."""
    import pytest_tlbperf as tp
    from pytest_tlbperf.reports.report import reproduce
    from pytest_tlbperf.session import sample
    (tmp_path / "v414.py").write_text(V414)
    work = tp.workloads.kernel_build()
    results = [tp.run(work, "zen1-epyc", str(tmp_path / "v414.py"), seed=s, engine="python")
               for s in range(2)]
    seed = next(r.seed for r in results if r.violations)
    cell = {"test": "test_kernel_build", "profile": "zen1-epyc",
            "policy": str(tmp_path / "v414.py"), "workload": repr(work),
            "seeds": [sample(r) for r in results]}
    run = {"options": {"invocation_dir": str(tmp_path), "engine": "python"}, "cells": [cell]}
    command = reproduce(run, cell, seed)
    assert command == (f"cd {tmp_path} && tlbperf simulate --policy {tmp_path}/v414.py "
                       f"--workload kernel_build --profile zen1-epyc --seeds {seed + 1} "
                       f"--engine python")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep
               + os.environ.get("PATH", ""))
    out = subprocess.run(command, shell=True, capture_output=True, text=True, env=env,
                         timeout=600)
    first = next(r for r in results if r.violations).violations[0]
    assert f"kernel_build@zen1-epyc seed {seed}: {first.format().splitlines()[0]}" \
        in out.stdout, out.stdout + out.stderr


# -- rendering from a run dict ----------------------------------------------------------------
def _run(violations=()):
    def cell(policy, values, viol=()):
        return {"test": f"test_x[{HOSTILE}]", "profile": "haswell-4c", "policy": policy,
                "metrics": ["madvise_ns", "ipis"], "expected": [], "shows": [],
                "workload": "w", "engine": "python",
                "seeds": [{"seed": i, "metrics": {"madvise_ns": v, "ipis": 40 + i % 3},
                           "violations": list(viol) if i == 0 else []}
                          for i, v in enumerate(values)]}
    base = [1000.0 + 7 * i for i in range(10)]
    return {"id": "0007", "name": "demo", "commit": "v6.1-1-gabcdef", "dirty": False,
            "model_version": "1", "baseline": "mainline", "engines": ["python"],
            "created": "2024-01-01T00:00:00+0000",
            "options": {"command": ["pytest", "--tlbperf", "-k", HOSTILE],
                        "invocation_dir": "/src/linux", "max_rounds": 20},
            "cells": [cell("mainline", base),
                      cell("slow", [v * 1.1 for v in base], violations),
                      cell("fast", [v * 0.8 for v in base])]}


VIOLATION = {"kind": "freed_table_walk", "severity": "hang", "cpu": 3, "time_ns": 1234,
             "trace": ["100 ns cpu3 free_pgtables", f"200 ns cpu3 walk {HOSTILE}"]}


def test_text_report_reads_like_seed_002():
    report = Report(_run([VIOLATION]))
    out = text.render(report)
    lines = out.splitlines()
    assert max(map(len, lines)) <= 80 and out.isascii()
    block = lines[lines.index("madvise_ns (ns, lower is better), paired by seed vs mainline") - 1:]
    assert block[0] == f"test_x[{HOSTILE}][haswell-4c]"
    # one statistic per column, named by a two-line header
    assert block[2].split() == ["median", "median", "HL", "95%", "CI", "of", "BH-adj"]
    assert block[3].split() == ["policy", "mainline", "this", "change", "the", "change", "p",
                                "n", "verdict"]
    rows = {r.split()[0]: r.split() for r in block[5:7]}
    assert rows["slow"][3] == "+10.0%" and rows["slow"][-1] == "REGRESSION"
    assert rows["fast"][3] == "-20.0%" and rows["fast"][-1] == "improvement"
    assert f"test_x[{HOSTILE}][haswell-4c] slow:\n  freed_table_walk (UNEXPECTED, 1/10 " \
           f"seeds), first on seed 0\n" in out
    assert "  cd /src/linux && pytest --tlbperf -k '<script>alert(1)</script>'" in out


def test_text_puts_the_candidates_verdict_first_and_marks_references():
    run = _run()
    run["options"].update(candidates=["slow"], references=["fast"])
    out = text.render(Report(run))
    lines = out.splitlines()
    assert " ".join(lines[1:3]) == ("candidate slow vs baseline mainline: 1 regression, 0 "
                                    "improvements, 0 no change, 1 inconclusive of 2 "
                                    "comparisons; no unexpected violations")
    # the long test name keeps its own line, the metric and change the next
    assert lines[3] == f"  REGRESSION   test_x[{HOSTILE}][haswell-4c]"
    assert lines[4] == "               madvise_ns +10.0% [+10.0..+10.0]"
    assert lines[5].startswith("reference policies (fast), not counted: 0 regressions, "
                               "1 improvement")
    block = lines[lines.index("madvise_ns (ns, lower is better), paired by seed vs mainline"):]
    assert block[4].startswith("slow ") and block[5].startswith("fast [ref] ")


def test_references_are_judged_as_their_own_family():
    """Asking for reference policies never changes a candidate's verdict:
    Benjamini-Hochberg adjusts the candidates' p-values among themselves."""
    alone, both = _run(), _run()
    alone["cells"] = [c for c in alone["cells"] if c["policy"] != "fast"]
    alone["options"].update(candidates=["slow"])
    both["options"].update(candidates=["slow"], references=["fast"])
    p = {id(r): {(f.policy, f.metric): f.p_adjusted for f in Report(r).findings}
         for r in (alone, both)}
    assert p[id(alone)] and all(p[id(both)][key] == q for key, q in p[id(alone)].items())


def test_html_report_is_self_contained_and_escaped():
    body = html.render(Report(_run([VIOLATION])))
    assert HOSTILE not in body
    assert "<script" not in body.lower()
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", body)   # nothing fetched
    assert "<link" not in body and "@import" not in body
    assert body.count("<svg") == 4                    # 2 metrics x (per-seed, forest)
    for section in ("Overview", "What the candidate changes", "Findings", "Violations",
                    "Details per metric", "Methodology", "Reproduce"):
        assert f">{section}<" in body
    assert "2 significant regressions" not in body and "1 significant regression" in body
    assert "A/A with adaptive rounds, one- and 4-metric reports: 1/1600" in body  # validation
    assert "free_pgtables" in body


def test_html_escapes_a_policy_name_in_every_seeds_title_and_keeps_jinja_lookups():
    # a policy file may name its policy anything: the strips escape it once
    # per row, not per dot, and no dot may carry it raw
    run = _run()
    for c in run["cells"]:
        c["policy"] = c["policy"].replace("slow", "<i>slow</i>")
    report = Report(run)
    block = report.blocks()[0]
    rows = html.strips(block[5], report.baseline)["rows"]
    titles = [t for r in rows for t in re.findall(r"<title>([^<]*)</title>", r["dots"])]
    assert len(titles) == 10 * len(rows)
    assert sum(t.startswith("&lt;i&gt;slow&lt;/i&gt;: ") for t in titles) == 10
    body = html.render(report)
    assert "<i>slow</i>" not in body and "&lt;i&gt;slow&lt;/i&gt;" in body
    # a dict's key is read first, except for a name dict has: that one keeps
    # jinja2's meaning (the method), and a missing key is still an error
    import jinja2
    env = html._env
    assert env.from_string("{{ d.verdict }}").render(d={"verdict": "regression"}) == \
        "regression"
    assert env.from_string("{{ d.items()|list|length }}").render(
        d={"items": "x", "a": 1}) == "2"
    with pytest.raises(jinja2.UndefinedError, match="no attribute 'missing'"):
        env.from_string("{{ d.missing }}").render(d={"verdict": 1})


def _links(body):
    """(href targets, ids) of a page."""
    return set(re.findall(r'href="#([^"]+)"', body)), set(re.findall(r'id="([^"]+)"', body))


def test_html_opens_with_the_verdict_an_overview_matrix_and_contents():
    run = _run()
    run["options"].update(candidates=["slow"], references=["fast"])
    body = html.render(Report(run))
    # the banner speaks about the candidate, before anything else
    assert body.index('class="banner fail"') < body.index('id="overview"') \
        < body.index('id="candidates"') < body.index('id="summary"')
    banner = body[body.index('<section class="banner'):body.index("</section>")]
    assert "Candidate slow against" in banner and "1 significant regression" in banner
    # every in-page link lands somewhere: the contents and the matrix cells
    targets, ids = _links(body)
    assert targets <= ids and {"overview", "candidates", "summary", "violations", "details",
                               "methodology", "reproduce"} <= targets
    matrix = body[body.index('<table class="matrix'):body.index("</table>",
                                                                body.index('class="matrix'))]
    cells = re.findall(r'<td class="cell ([a-z-]+)( reference)?"><a href="#(b\d+)"[^>]*>'
                       r'([^<]*)<small>', matrix)
    # 2 metrics x (the candidate, then the reference policy), coloured by verdict
    assert [(css, bool(ref), text) for css, ref, _, text in cells] == [
        ("regression", False, "+10.0%"), ("improvement", True, "-20.0%"),
        ("inconclusive", False, "="), ("inconclusive", True, "=")]   # ipis: identical
    assert {anchor for *_, anchor, _ in cells} <= ids


def test_html_shows_the_candidates_knobs_beside_the_baselines():
    """The run records each policy's docstring and its knobs per profile
    (after configure); the report puts them side by side and marks the
    knobs that differ, per set of profiles."""
    from pytest_tlbperf import selection
    run = _run()
    run["options"].update(candidates=["amd_only"])
    for cell in run["cells"]:
        cell["policy"] = {"slow": "amd_only"}.get(cell["policy"], cell["policy"])
    run["cells"] = [c for c in run["cells"] if c["policy"] != "fast"]
    run["policies"] = {p: selection.describe(p) for p in ("mainline", "amd_only")}
    body = html.render(Report(run))
    section = body[body.index('id="candidates"'):body.index('id="summary"')]
    assert "Lutomirski, Sep 8 2017" in section          # amd_only's module docstring
    assert "has <code>configure()</code>" in section
    heads = re.findall(r"<th>([^<]+)<small>([^<]+)</small></th>", section)
    # mainline's knobs differ on the INVLPGB parts; amd_only's on AMD (revert_to_ipi's)
    assert ("mainline", "genoa-2s, milan-36c") in heads
    assert ("amd_only", "zen1-epyc") in heads
    differ = re.findall(r'<tr class="differs"><td>(\w+)</td>', section)
    assert {"lazy_cpumask", "flush_lazy_cpus"} <= set(differ)
    assert "<td class=\"differs\">&#39;always&#39;</td>" in section


def test_a_plots_axis_places_a_value_where_it_draws_it_and_nothing_off_it():
    # the dots take `place`, one logarithm each: the pixel `axis(value)`
    # gives where the axis covers the value (within its 1e-9 tolerance),
    # None off it and for what a log axis cannot show
    log = html.Axis(0.5, 2.0, 150, 516, log=True)
    lin = html.Axis(-3.0, 7.0, 150, 386)
    for axis, inside, outside in (
            (log, [0.5, 1.0, 1.37, 2.0, 2.0 * 10 ** 5e-10], [0.49, 2.01, 0.0, -1.0]),
            (lin, [-3.0, 0.0, 6.99, 7.0, 7.0 + 5e-10], [-3.01, 7.01])):
        for v in inside:
            assert axis.place(v) == axis(v) and axis.contains(v), v
        for v in outside:
            assert axis.place(v) is None and not axis.contains(v), v


def test_forest_clips_outliers_and_says_so():
    """One wild seed does not squash the plot: the axis stops at CLIP times
    the estimates and the band, the seed is drawn at the edge and counted."""
    run = _run()
    cand = next(c for c in run["cells"] if c["policy"] == "slow")
    cand["seeds"][3]["metrics"]["madvise_ns"] *= 1000
    report = Report(run)
    block = next(b for b in report.blocks() if b[2] == "madvise_ns")
    plot = html.forest(block[5])
    slow = next(r for r in plot["rows"] if r["label"] == "slow")
    assert plot["clipped"] == 1 and slow["beyond"][0]["n"] == 1
    assert slow["seeds"].count("<circle ") == 9       # the other nine seeds are drawn
    body = html.render(report)
    assert "1 seed beyond the clipped axis" in body


# -- a real browser ---------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or (
    "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)


def _chromium(tmp_path, *args, url):
    profile = tmp_path / "chromium-profile"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr",
           "--v=0", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _console(stderr):
    """Console messages and uncaught errors in chromium's --enable-logging
    output (lines like '...:INFO:CONSOLE:1] "Uncaught Error: boom"')."""
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


# appended to a copy of the page (the report itself has no script): what a
# reader at this width gets -- page and matrix overflow, links, the target
PROBE = """<script>
addEventListener("load", () => setTimeout(() => {
  const out = {innerWidth: innerWidth, scrollWidth: document.documentElement.scrollWidth};
  const links = [...document.querySelectorAll('a[href^="#"]')];
  out.links = links.length;
  out.broken = links.map(a => a.getAttribute("href").slice(1))
                    .filter(id => !document.getElementById(id));
  const m = document.getElementById("matrix");
  out.cells = m ? m.querySelectorAll("td.cell a").length : -1;
  out.matrixFits = m ? m.parentElement.scrollWidth <= m.parentElement.clientWidth : false;
  const t = document.querySelector(":target");
  out.target = t ? t.id : null;
  out.targetTop = t ? Math.round(t.getBoundingClientRect().top) : null;
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}, 50));
</script>"""


def _probe(tmp_path, page, width, fragment=""):
    probed = tmp_path / f"probe-{page.stem}.html"
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    out = _chromium(tmp_path, "--dump-dom", "--virtual-time-budget=5000",
                    f"--window-size={width},1000", url=probed.as_uri() + fragment)
    assert out.returncode == 0, out.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', out.stdout)
    assert found, out.stdout[-2000:]
    return json.loads(found.group(1).replace("&quot;", '"')), out


def _many_policies():
    """A review of many policies: 9 candidates, as the main job has."""
    run = _run()
    slow = next(c for c in run["cells"] if c["policy"] == "slow")
    for i in range(7):
        run["cells"].append(dict(slow, policy=f"candidate_policy_{i}"))
    return run


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_html_report_renders_in_headless_chromium(tmp_path):
    run = _run([VIOLATION])
    run["options"].update(candidates=["slow"], references=["fast"])
    page = tmp_path / "report.html"
    page.write_text(html.render(Report(run)), encoding="utf-8")
    url = page.as_uri()
    dom = _chromium(tmp_path, "--dump-dom", url=url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # the browser parsed the hostile test id as text, not as an element
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom.stdout
    assert "<script" not in dom.stdout.lower()
    assert "1 significant regression" in dom.stdout and "<svg" in dom.stdout
    assert 'id="matrix"' in dom.stdout
    assert _console(dom.stderr) == []
    # control: the same probe does see a page's console errors
    bad = tmp_path / "bad.html"
    bad.write_text("<p>x</p><script>throw new Error('boom')</script>")
    assert any("Uncaught Error: boom" in line
               for line in _console(_chromium(tmp_path, "--dump-dom", url=bad.as_uri()).stderr))
    # 800 px: nothing sticks out of the page, the overview matrix fits whole,
    # every in-page link (contents, matrix cells) lands on an element, and
    # following a matrix cell's link scrolls its details to the top
    narrow, out = _probe(tmp_path, page, 800, "#b1")
    assert narrow["scrollWidth"] <= narrow["innerWidth"], narrow
    assert narrow["matrixFits"] and narrow["cells"] == 4, narrow
    assert narrow["links"] >= 12 and narrow["broken"] == [], narrow
    assert narrow["target"] == "b1" and abs(narrow["targetTop"]) <= 2, narrow
    assert _console(out.stderr) == []
    # many candidates: the matrix may scroll inside its box, the page does not
    many = tmp_path / "many.html"
    many.write_text(html.render(Report(_many_policies())), encoding="utf-8")
    crowded, _ = _probe(tmp_path, many, 800)
    assert crowded["scrollWidth"] <= crowded["innerWidth"], crowded
    assert crowded["cells"] == 2 * 9 and crowded["broken"] == [], crowded
    for width in (800, 1400):
        shot = tmp_path / f"report-{width}.png"
        snap = _chromium(tmp_path, f"--screenshot={shot}", f"--window-size={width},2000",
                         url=url)
        assert snap.returncode == 0, snap.stderr[-2000:]
        assert shot.stat().st_size > 20_000           # a page, not a blank
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_adaptive_rounds_under_xdist_match_the_serial_run(suite):
    """The controller rebuilds built-in workloads from the workers'
    descriptions and extends the same cells on the same seeds."""
    suite.runpytest("--tlbperf", *SLOWER, "--tlbperf-json", "serial.json",
                    "--tlbperf-max-rounds", "10").assert_outcomes(passed=2)
    par = suite.runpytest_subprocess("--tlbperf", *SLOWER, "-n", "2", "--tlbperf-json",
                                     "par.json", "--tlbperf-max-rounds", "10")
    par.assert_outcomes(passed=2)
    a = json.loads((suite.path / "serial.json").read_text())["cells"]
    b = json.loads((suite.path / "par.json").read_text())["cells"]
    assert a == b and {len(c["seeds"]) for c in a} == {10}


def test_runner_spec_rebuilds_builtin_workloads_only():
    """What the xdist controller needs to extend a cell: a built-in workload
    is described and rebuilt identically; a custom one, even under a
    built-in's name, is not (its build function lives in a test module)."""
    import pytest_tlbperf as tp
    from pytest_tlbperf.fixture import ModeledMachine, runner_from_spec, runner_spec
    machine = ModeledMachine("haswell-4c", "async_flush", "python")
    work = tp.workloads.madvise_dontneed(iterations=7)
    spec = runner_spec(machine, work)
    assert json.loads(json.dumps(spec)) == spec
    again, work2 = runner_from_spec(spec)
    assert work2 == work and again.policy_name == "async_flush"
    assert again.run(work2, seed=3).metrics == machine.run(work, seed=3).metrics
    fake = tp.workloads.custom("madvise_dontneed", lambda b, profile, threads, iterations:
                               None, threads=2, iterations=7)
    assert runner_spec(machine, fake) is None
    assert runner_spec(ModeledMachine("haswell-4c", tp.policies.get("mainline"), "python"),
                       work) is None


def test_a_violation_found_by_the_adaptive_rounds_fails_the_run(pytester):
    """v4.14-rc1's lazy mode on zen1-epyc: munmap_storm's seed 0 is clean,
    seed 1 walks through a freed table. With one seed per cell the test
    passes; the adaptive round that doubles the seeds finds the bug, and
    the run fails on it."""
    pytester.makepyfile(test_munmap='''
import pytest
import pytest_tlbperf as tp

@pytest.mark.tlbperf(profiles=["zen1-epyc"], metrics=["flush_latency_ns_p99"])
def test_munmap(tlbperf):
    tlbperf(tp.workloads.munmap_storm(threads=2))
''', v414='''
import pytest_tlbperf as tp

class V414(tp.Policy):
    lazy_cpumask = "clear"
    flush_lazy_cpus = "never"
    cpumask_update = "eager"         # as v4.14 had it: a CPU leaves the mask at a switch,
    table_free = "after_flush"       # and freed tables go back at once
''')
    args = ["--tlbperf", "--tlbperf-policy", "v414.py", "--tlbperf-rounds", "1",
            "--tlbperf-max-rounds", "2"]
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*v414.py: freed_table_walk (UNEXPECTED, 1/2 seeds)*",
                                 "*FAILED: the adaptive rounds' extra seeds of "
                                 "test_munmap?zen1-epyc? v414.py found freed_table_walk*"])
    quiet = pytester.runpytest(*args, "--tlbperf-fail-on", "none")
    assert quiet.ret == pytest.ExitCode.OK

"""The report: everything a rendered report shows, gathered once from run
dicts (the saved-run format) so the text, HTML and terminal renderings
agree: the run's identity and the command that reproduces it, the judged
findings, the violations with their traces, and the methodology (methods,
thresholds, adaptive rounds, validation figures)."""

from __future__ import annotations

import shlex

from pytest_tlbperf.result import Violation

from . import sequential, stats, validation, verdicts


class ViolationEntry:
    """One violation kind seen in one cell: `status` is 'UNEXPECTED' (fails
    the run), 'expected' (declared by the policy), or 'LOST' (declared and
    shown by the test but no longer found: the oracle lost its teeth)."""

    __slots__ = ("test", "profile", "policy", "kind", "status", "seeds", "total", "first")

    def __init__(self, test, profile, policy, kind, status, seeds, total, first):
        if status not in ("UNEXPECTED", "expected", "LOST"):
            raise ValueError(f"unknown violation status {status!r}")
        self.test, self.profile, self.policy, self.kind = test, profile, policy, kind
        self.status, self.seeds, self.total, self.first = status, seeds, total, first

    @property
    def where(self) -> str:
        return f"{self.test}[{self.profile}] {self.policy}"

    def headline(self) -> str:
        if self.status == "LOST":
            return (f"{self.where}: {self.kind} LOST: declared in known_violations but no "
                    f"longer found -- the oracle has lost its teeth")
        return f"{self.where}: {self.kind} ({self.status}, {self.seeds}/{self.total} seeds)"

    def trace(self) -> list:
        """The first violation of this kind, formatted: a head line and the
        events behind it (oldest first)."""
        return self.first.format().splitlines() if self.first else []


def violation_entries(run) -> list:
    """Every violation kind of every cell, sorted by cell, with its status."""
    out = []
    for cell in sorted(run["cells"], key=lambda c: (c["test"], c["profile"], c["policy"])):
        expected = set(cell.get("expected", ()))
        shows = set(cell.get("shows", ()))
        seen = {}
        for s in cell["seeds"]:
            for v in s["violations"]:
                seen.setdefault(v["kind"], [0, Violation.from_dict(v)])
            for kind in {v["kind"] for v in s["violations"]}:
                seen[kind][0] += 1
        for kind, (n, first) in sorted(seen.items()):
            status = "expected" if kind in expected else "UNEXPECTED"
            out.append(ViolationEntry(cell["test"], cell["profile"], cell["policy"], kind,
                                      status, n, len(cell["seeds"]), first))
        for kind in sorted((expected & shows) - set(seen)):
            out.append(ViolationEntry(cell["test"], cell["profile"], cell["policy"], kind,
                                      "LOST", 0, len(cell["seeds"]), None))
    return out


def command_line(run) -> str:
    """The command that reproduces the run, as recorded by the plugin."""
    opts = run.get("options") or {}
    cmd = opts.get("command")
    if not cmd:
        return ""
    line = shlex.join(cmd) if isinstance(cmd, list) else str(cmd)
    where = opts.get("invocation_dir")
    return f"cd {shlex.quote(where)} && {line}" if where else line


class Report:
    """One report: a run, optional reference runs, judged findings."""

    def __init__(self, run, references=(), findings=None, thresholds=None,
                 alpha=verdicts.ALPHA, adaptive_log=None, validation_figures=None):
        self.run = run
        self.references = list(references)
        opts = run.get("options") or {}
        if thresholds is None:
            saved = opts.get("thresholds")
            thresholds = (verdicts.Thresholds.from_dict(saved) if saved
                          else verdicts.Thresholds())
        self.thresholds = thresholds
        self.alpha = alpha
        self.findings = findings if findings is not None else verdicts.compare_runs(
            run, self.references, thresholds, alpha)
        self.adaptive_log = adaptive_log if adaptive_log is not None \
            else opts.get("adaptive_rounds") or []
        self.violations = violation_entries(run)
        self.validation = validation_figures or validation.PUBLISHED

    # -- identity ----------------------------------------------------------
    @property
    def label(self) -> str:
        return verdicts.run_label(self.run) if self.run.get("id") else \
            f"this run ({self.run.get('commit', 'unknown')})"

    @property
    def baseline(self) -> str:
        return self.run.get("baseline") or ""

    @property
    def command(self) -> str:
        return command_line(self.run)

    def rounds(self) -> tuple:
        opts = self.run.get("options") or {}
        counts = sorted({len(c["seeds"]) for c in self.run["cells"] if c.get("metrics")})
        return counts, opts.get("max_rounds")

    # -- outcome ---------------------------------------------------------------
    def counts(self) -> dict:
        return verdicts.counts(self.findings)

    def regressions(self) -> list:
        return [f for f in self.findings if f.verdict == verdicts.REGRESSION]

    def unexpected(self) -> list:
        return [v for v in self.violations if v.status in ("UNEXPECTED", "LOST")]

    def status(self) -> str:
        """'fail' on a regression or an unexpected/lost violation, 'warn'
        when something is inconclusive, else 'pass'."""
        if self.regressions() or self.unexpected():
            return "fail"
        return "warn" if self.counts()[verdicts.INCONCLUSIVE] else "pass"

    def headline(self) -> str:
        c = self.counts()
        parts = [f"{c[verdicts.REGRESSION]} regression{'s' * (c[verdicts.REGRESSION] != 1)}",
                 f"{c[verdicts.IMPROVEMENT]} improvement"
                 f"{'s' * (c[verdicts.IMPROVEMENT] != 1)}",
                 f"{c[verdicts.NO_CHANGE]} no change", f"{c[verdicts.INCONCLUSIVE]} inconclusive"]
        bad = len(self.unexpected())
        viol = f"{bad} unexpected violation{'s' * (bad != 1)}" if bad else "no unexpected " \
            "violations"
        n = len(self.findings)
        return f"{', '.join(parts)} of {n} comparison{'s' * (n != 1)}; {viol}"

    # -- grouping for renderers ----------------------------------------------------
    def blocks(self) -> list:
        """[(test, profile, metric, reference, design, [findings])] in report
        order: paired blocks first, then each reference run's; within a
        (test, profile), metrics in the order the suite test lists them."""
        groups = {}
        for f in self.findings:
            key = (f.design != stats.PAIRED, f.reference, f.test, f.profile)
            groups.setdefault(key, {}).setdefault(f.metric, []).append(f)
        return [(test, profile, metric, ref, fs[0].design, fs)
                for (_, ref, test, profile), metrics in sorted(groups.items())
                for metric, fs in metrics.items()]

    def methodology(self) -> list:
        """Paragraphs that say how the verdicts were reached."""
        counts, max_rounds = self.rounds()
        n = len([f for f in self.findings if f.p_adjusted is not None])
        initial = (self.run.get("options") or {}).get("rounds") or (counts[0] if counts else 5)
        looks = sequential.table(initial, max_rounds, self.alpha)
        share = verdicts.MAX_DIFFERING_SHARE
        paras = [
            "Paired (candidate policy vs the baseline policy in this run): both ran the same "
            "seeds, so seed i of each executed the same workload (common random numbers). "
            "Change: exp of the Hodges-Lehmann estimate of the per-seed log ratio "
            "log(candidate/baseline) -- the median of its Walsh averages, a pseudo-median "
            "of the per-seed ratios -- minus 1. Test: the exact Wilcoxon signed-rank test of "
            "that log ratio, its null distribution computed exactly (dynamic programming "
            "over the ranks), zeros kept by Pratt's method and ties given mid-ranks with the "
            "null conditional on them. Interval: every ratio that same test does not reject "
            f"at {1 - stats.CONFIDENCE:.0%}, so test and interval always agree; with 5 "
            "differing seeds no 95% interval is finite (the smallest p is 0.0625). A "
            "comparison in which some value is 0 is made on log(value + 1).",
            "Against a saved run (--tlbperf-compare, tlbperf compare): this run runs the "
            "saved run's seeds, and a cell is paired seed by seed when every common seed "
            "executed the same program on both sides (its program digest), as above; "
            "otherwise it is unpaired and says why: exact Mann-Whitney test of the log "
            "values, Hodges-Lehmann shift of the logs with the interval from inverting "
            "that test.",
            f"Identical samples: a comparison equal on all n seeds says \"identical on n of "
            f"n seeds\" and is no change only when the exact 95% upper bound on the share "
            f"of seeds on which the two differ, 1 - 0.05^(1/n), is at most {share:.0%} "
            f"(n >= 19); before that it is inconclusive and gets more seeds.",
            f"Adaptive rounds: a group-sequential design, {sequential.DESIGN}; overall "
            f"alpha {self.alpha:g} per comparison whatever the look it stops at. Looks: "
            + ", ".join(f"{n} seeds alpha {a:.2g}" for n, a in looks)
            + ". A look's p is scaled by alpha / its alpha before the adjustment below.",
            f"Multiple testing: Benjamini-Hochberg (scipy.stats.false_discovery_control) "
            f"over all {n} comparisons with a p-value in this report.",
            f"Verdict: regression / improvement when the adjusted p < {self.alpha:g} and the "
            f"whole interval lies beyond the practical threshold ({self.thresholds.describe()})"
            f" on the bad / good side of the metric; no change when the whole interval lies "
            f"within +/- the threshold; otherwise inconclusive.",
        ]
        if counts:
            rounds = "/".join(map(str, counts))
            extra = (f"; inconclusive paired comparisons doubled their seeds up to "
                     f"{max_rounds}" if max_rounds else "")
            steps = "".join(f" Round {step}: {grew} cells to {'/'.join(map(str, to))} seeds."
                            for step, grew, to in self.adaptive_log)
            paras.append(f"Seeds per cell: {rounds}{extra}.{steps}")
        paras.extend(validation.summary(self.validation))
        return paras

"""The report: everything a rendered report shows, gathered once from run
dicts (the saved-run format) so the text, HTML and terminal renderings
agree: the run's identity and the command that reproduces it, the judged
findings, the violations with their traces, and the methodology (methods,
thresholds, adaptive rounds, validation figures).

A report speaks about the *candidates* (the policies named with
--tlbperf-policy, or every built-in when none was): its verdict, counts and
regressions are theirs. Reference policies (--tlbperf-reference) are shown
beside them and never counted (`pytest_tlbperf.selection.Roles`)."""

from __future__ import annotations

import re
import shlex

from pytest_tlbperf import selection
from pytest_tlbperf.result import Violation

from . import sequential, stats, validation, verdicts
from .thresholds import Thresholds


class ViolationEntry:
    """One violation kind seen in one cell: `status` is 'UNEXPECTED' (fails
    the run), 'expected' (declared by the policy), or 'LOST' (declared and
    shown by the test but no longer found: the oracle lost its teeth)."""

    __slots__ = ("test", "profile", "policy", "kind", "status", "seeds", "total", "first",
                 "seed", "role", "command")

    def __init__(self, test, profile, policy, kind, status, seeds, total, first, seed=None,
                 role=selection.CANDIDATE, command=""):
        if status not in ("UNEXPECTED", "expected", "LOST"):
            raise ValueError(f"unknown violation status {status!r}")
        self.test, self.profile, self.policy, self.kind = test, profile, policy, kind
        self.status, self.seeds, self.total, self.first = status, seeds, total, first
        self.seed = seed                 # the seed whose violation `first` is
        self.role = role                 # the policy's role in the run
        self.command = command           # a command that reproduces `first`

    @property
    def where(self) -> str:
        return f"{self.test}[{self.profile}] {self.policy}"

    @property
    def fails(self) -> bool:
        """Whether it fails the run: unexpected or lost, and not a reference
        policy's."""
        return self.status != "expected" and self.role != selection.REFERENCE

    def headline(self) -> str:
        ref = " [reference]" if self.role == selection.REFERENCE else ""
        if self.status == "LOST":
            return (f"{self.where}{ref}: {self.kind} LOST: declared in known_violations but "
                    f"no longer found -- the oracle has lost its teeth")
        first = f", first on seed {self.seed}" if self.seed is not None and self.total > 1 \
            else ""
        return (f"{self.where}{ref}: {self.kind} ({self.status}, {self.seeds}/{self.total} "
                f"seeds){first}")

    def trace(self) -> list:
        """The first violation of this kind, formatted: a head line and the
        events behind it (oldest first)."""
        return self.first.format().splitlines() if self.first else []


def violation_entries(run, roles=None) -> list:
    """Every violation kind of every cell, with its status, the seed of its
    first occurrence and a command that reproduces it; candidates' cells
    first, then the references'."""
    roles = roles or selection.Roles.from_options(run.get("options"))
    out = []
    for cell in sorted(run["cells"], key=lambda c: (
            roles.role(c["policy"]) == selection.REFERENCE, c["test"], c["profile"],
            c["policy"])):
        expected = set(cell.get("expected", ()))
        shows = set(cell.get("shows", ()))
        role = roles.role(cell["policy"])
        seen = {}
        for s in sorted(cell["seeds"], key=lambda s: s["seed"]):
            for v in s["violations"]:
                seen.setdefault(v["kind"], [0, Violation.from_dict(v), s["seed"]])
            for kind in {v["kind"] for v in s["violations"]}:
                seen[kind][0] += 1
        for kind, (n, first, seed) in sorted(seen.items()):
            status = "expected" if kind in expected else "UNEXPECTED"
            out.append(ViolationEntry(cell["test"], cell["profile"], cell["policy"], kind,
                                      status, n, len(cell["seeds"]), first, seed, role,
                                      reproduce(run, cell, seed)))
        for kind in sorted((expected & shows) - set(seen)):
            out.append(ViolationEntry(cell["test"], cell["profile"], cell["policy"], kind,
                                      "LOST", 0, len(cell["seeds"]), None, None, role,
                                      reproduce(run, cell, None)))
    return out


# options of the recorded pytest command that a reproduction leaves out or
# replaces: report files, saving, parallel workers, selection and the seeds
_DROP_WITH_VALUE = ("--tlbperf-html", "--tlbperf-text", "--tlbperf-json", "--tlbperf-export",
                    "--tlbperf-rounds", "--tlbperf-max-rounds", "-k", "-n", "--numprocesses",
                    "--junitxml", "--junit-xml", "--dist")
_DROP_FLAG = ("--tlbperf-autosave", "--lf", "--last-failed", "--ff", "--failed-first",
              "-x", "--exitfirst")
_DROP_OPTIONAL = ("--tlbperf-save",)          # takes a value only as --opt=VALUE
_K_IDENT = re.compile(r"^(\w|:|\+|-|\.|\[|\]|\\|/)+$")  # pytest's -k identifier


def _pytest_args(args) -> list:
    out, skip, optional_value = [], False, False
    for arg in args:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in _DROP_WITH_VALUE or name in _DROP_OPTIONAL or name in _DROP_FLAG:
            skip = "=" not in arg and name in _DROP_WITH_VALUE
            optional_value = "=" not in arg and name in _DROP_OPTIONAL
            continue
        if optional_value and not arg.startswith("-"):
            optional_value = False
            continue                     # --tlbperf-save NAME
        optional_value = False
        if re.match(r"^-n.|^-k.", arg):          # -n2, -nauto, -kEXPR
            continue
        out.append(arg)
    return out


def _simulate_line(run, cell, seeds) -> str:
    """`tlbperf simulate` for a cell whose workload is a built-in one with
    its default parameters on a built-in profile, or ''."""
    from pytest_tlbperf import profiles, workloads
    name = str(cell.get("workload", "")).split("(", 1)[0]
    builder = workloads.BUILDERS.get(name)
    if builder is None or repr(builder()) != cell.get("workload") \
            or cell["profile"] not in profiles.names():
        return ""
    engine = (run.get("options") or {}).get("engine")
    return shlex.join(["tlbperf", "simulate", "--policy", cell["policy"], "--workload", name,
                       "--profile", cell["profile"], "--seeds", str(seeds)]
                      + (["--engine", engine] if engine and engine != "auto" else []))


def reproduce(run, cell, seed) -> str:
    """A command that runs `cell` again on seeds 0..`seed` (every seed when
    None): `tlbperf simulate` when the workload is a built-in with default
    parameters, else the run's own pytest command narrowed with -k to the
    cell's test item (the cell's `nodeid`; a run saved before cells had
    one gets ''), without its report files, saving and workers."""
    opts = run.get("options") or {}
    where = opts.get("invocation_dir")
    prefix = f"cd {shlex.quote(where)} && " if where else ""
    seeds = (seed + 1) if seed is not None else max(len(cell["seeds"]), 1)
    sim = _simulate_line(run, cell, seeds)
    if sim:
        return prefix + sim
    cmd, nodeid = opts.get("command"), cell.get("nodeid")
    if not cmd or not nodeid or not isinstance(cmd, list):
        return ""
    item = nodeid.rsplit("::", 1)[-1]
    if _K_IDENT.match(item) and item not in ("and", "or", "not"):
        select = item
    else:
        # a parameter id pytest's -k cannot parse: the function and the cell
        select = f"{item.split('[', 1)[0]} and {cell['profile']}-{cell['policy']}"
    args = _pytest_args(cmd[1:])
    return prefix + shlex.join([cmd[0], *args, "-k", select, "--tlbperf-rounds", str(seeds),
                                "--tlbperf-max-rounds", str(seeds)])


def command_line(run) -> str:
    """The command that reproduces the run, as recorded by the plugin."""
    opts = run.get("options") or {}
    cmd = opts.get("command")
    if not cmd:
        return ""
    line = shlex.join(cmd) if isinstance(cmd, list) else str(cmd)
    where = opts.get("invocation_dir")
    return f"cd {shlex.quote(where)} && {line}" if where else line


def _test_function(test) -> str:
    """'test_madvise' of a cell's test label 'test_madvise[threads=2]#2'."""
    return test.split("[", 1)[0].split("#", 1)[0]


class Report:
    """One report: a run, optional reference runs (saved runs compared
    with), judged findings; `roles` says which policies are candidates and
    which reference policies."""

    def __init__(self, run, references=(), findings=None, thresholds=None,
                 alpha=verdicts.ALPHA, adaptive_log=None, validation_figures=None):
        self.run = run
        self.references = list(references)
        opts = run.get("options") or {}
        if thresholds is None:
            saved = opts.get("thresholds")
            thresholds = (Thresholds.from_dict(saved) if saved
                          else Thresholds())
        self.thresholds = thresholds
        self.alpha = alpha
        self.findings = findings if findings is not None else verdicts.compare_runs(
            run, self.references, thresholds, alpha)
        self.adaptive_log = adaptive_log if adaptive_log is not None \
            else opts.get("adaptive_rounds") or []
        self.roles = selection.Roles.from_options(opts)
        self.roles.baseline = run.get("baseline") or self.roles.baseline
        self.violations = violation_entries(run, self.roles)
        self.validation = validation_figures or validation.PUBLISHED
        self.policy_info = run.get("policies") or {}

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

    # -- candidates and references --------------------------------------------------
    def role(self, policy) -> str:
        return self.roles.role(policy)

    def counted(self, finding) -> bool:
        """Whether a finding speaks about a candidate (or the baseline
        against a saved run), not about a reference policy."""
        return self.role(finding.policy) != selection.REFERENCE

    def candidate_findings(self) -> list:
        return [f for f in self.findings if self.counted(f)]

    def reference_findings(self) -> list:
        return [f for f in self.findings if not self.counted(f)]

    def policies(self, role) -> list:
        """The run's policies of one role, in the order they were named."""
        present = {c["policy"] for c in self.run["cells"]}
        ordered = [p for p in self.roles.policies() if p in present] + sorted(present)
        seen = []
        for p in ordered:
            if p not in seen and self.role(p) == role:
                seen.append(p)
        return seen

    def subject(self) -> str:
        """Who the verdict is about: 'my_rfc.py', or every built-in."""
        cands = self.policies(selection.CANDIDATE)
        if self.roles.reviewing_all:
            return f"every registered policy ({len(cands)})"
        return ", ".join(cands) or "no candidate"

    # -- outcome ---------------------------------------------------------------
    def counts(self, findings=None) -> dict:
        """Verdict counts of the candidates' findings (or of `findings`)."""
        return verdicts.counts(self.candidate_findings() if findings is None else findings)

    def regressions(self) -> list:
        return [f for f in self.candidate_findings() if f.verdict == verdicts.REGRESSION]

    def unexpected(self) -> list:
        return [v for v in self.violations if v.fails]

    def status(self) -> str:
        """'fail' on a regression or an unexpected/lost violation, 'warn'
        when something is inconclusive, else 'pass'."""
        if self.regressions() or self.unexpected():
            return "fail"
        return "warn" if self.counts()[verdicts.INCONCLUSIVE] else "pass"

    @staticmethod
    def count_text(c) -> str:
        n = sum(c.values())
        parts = [f"{c[verdicts.REGRESSION]} regression{'s' * (c[verdicts.REGRESSION] != 1)}",
                 f"{c[verdicts.IMPROVEMENT]} improvement"
                 f"{'s' * (c[verdicts.IMPROVEMENT] != 1)}",
                 f"{c[verdicts.NO_CHANGE]} no change", f"{c[verdicts.INCONCLUSIVE]} inconclusive"]
        return f"{', '.join(parts)} of {n} comparison{'s' * (n != 1)}"

    def headline(self) -> str:
        """The candidates' verdict counts and unexpected violations."""
        bad = len(self.unexpected())
        viol = f"{bad} unexpected violation{'s' * (bad != 1)}" if bad else "no unexpected " \
            "violations"
        return f"{self.count_text(self.counts())}; {viol}"

    def reference_headline(self) -> str:
        """The reference policies' counts ('' without any): shown, not counted."""
        refs = self.reference_findings()
        if not refs and not self.policies(selection.REFERENCE):
            return ""
        return (f"reference policies ({', '.join(self.policies(selection.REFERENCE))}), "
                f"not counted: {self.count_text(self.counts(refs))}")

    # -- the profiles the candidates' knobs touch ------------------------------------
    def touched(self) -> list:
        """Per (candidate, profile) where its knobs differ from the
        baseline's in a way a test's own profiles do not show
        (`pytest_tlbperf.selection.touched`): {"policy", "profile", "knobs",
        "added": [tests run there too], "left_out": [(test, why)]}. Only
        tests this run has cells of; an added cell that did not run (the
        workload does not fit the machine) counts as left out."""
        cells = {(_test_function(c["test"]), c["profile"], c["policy"])
                 for c in self.run["cells"]}
        tests = {t for t, _, _ in cells}
        out = {}
        for e in (self.run.get("options") or {}).get("touched") or ():
            if e["test"] not in tests:
                continue
            item = out.setdefault((e["policy"], e["profile"]), {
                "policy": e["policy"], "profile": e["profile"], "spec": e.get("spec",
                                                                               e["profile"]),
                "knobs": e["knobs"], "added": [], "left_out": []})
            if e["status"] == selection.ADDED and (e["test"], e["profile"], e["policy"]) in cells:
                item["added"].append(e["test"])
            elif e["status"] == selection.ADDED:
                item["left_out"].append((e["test"], f"the workload does not fit "
                                                    f"{e['profile']} (skipped)"))
            else:
                item["left_out"].append((e["test"], e["why"]))
        return [out[k] for k in sorted(out)]

    def touched_lines(self) -> list:
        """One sentence per (candidate, profile) of `touched`, saying which
        tests also ran there and which were left out, with the option that
        adds them."""
        lines = []
        for t in self.touched():
            knobs = ", ".join(f"{k} {b} -> {c}" for k, (b, c) in t["knobs"].items())
            text = (f"{t['policy']}'s knobs differ from {self.baseline}'s on {t['profile']} "
                    f"({knobs})")
            if t["added"]:
                text += f"; also run there: {', '.join(sorted(set(t['added'])))}"
            if t["left_out"]:
                why = {}
                for test, reason in t["left_out"]:
                    why.setdefault(reason, []).append(test)
                text += "; left out: " + "; ".join(
                    f"{', '.join(sorted(set(tests)))} ({reason})" for reason, tests in
                    sorted(why.items()))
                text += f" -- add with --tlbperf-extra-profile {t['spec']}"
            lines.append(text + ".")
        return lines

    def same_knobs_lines(self) -> list:
        """One sentence per policy whose effective knobs equal another's
        (the baseline first) on some profiles: its runs there are that
        policy's, made once (`Session.run`), so against the baseline they
        are identical on every seed by construction, not by chance."""
        found = {}
        for cell in self.run["cells"]:
            if cell.get("same_knobs"):
                found.setdefault((cell["policy"], cell["same_knobs"]), set()).add(
                    cell["profile"])
        order = {p: i for i, p in enumerate(self.policies(selection.CANDIDATE)
                                            + self.policies(selection.REFERENCE))}
        return [f"{policy}'s knobs equal {other}'s on {', '.join(sorted(where))}: its runs "
                f"there are {other}'s, not run again"
                + (" (identical on every seed)" if other == self.baseline else "") + "."
                for (policy, other), where in sorted(
                    found.items(), key=lambda kv: (order.get(kv[0][0], len(order)), kv[0]))]

    # -- grouping for renderers ----------------------------------------------------
    def blocks(self) -> list:
        """[(test, profile, metric, reference, design, [findings])] in report
        order: paired blocks first, then each reference run's; within a
        (test, profile), metrics in the order the suite test lists them."""
        groups = {}
        order = {p: i for i, p in enumerate(self.policies(selection.BASELINE)
                                            + self.policies(selection.CANDIDATE)
                                            + self.policies(selection.REFERENCE))}
        for f in sorted(self.findings, key=lambda f: (not self.counted(f),
                                                      order.get(f.policy, len(order)))):
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
            f"over the {n} comparisons with a p-value in this report"
            + (" -- the candidates' as one family, the reference policies' as another, "
               "so asking for references never changes a candidate's verdict."
               if self.reference_findings() else "."),
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

"""The plain-text report: at most 80 columns, ASCII only, laid out like
the table in seed 002 (the baseline figure, then each candidate with its
change in percent) so it can be pasted into an LKML reply as it is.

It opens with the candidates' verdict and their regressions and
improvements, one line each, then the profiles their knobs touch. Then one
block per (suite test, profile, metric): a row per policy, the candidates
first and the reference policies after them (marked `[ref]`), one
statistic per column, named by a two-line header: the baseline's and the
candidate's medians over the seeds, the Hodges-Lehmann change, its 95%
interval, the Benjamini-Hochberg adjusted p, the seeds and the verdict.
"""

from __future__ import annotations

import math
import shlex
import textwrap

from pytest_tlbperf.selection import REFERENCE

from . import stats, verdicts

WIDTH = 80
COLUMNS = ((16, "<"), (8, ">"), (8, ">"), (7, ">"), (13, "<"), (6, ">"), (3, ">"), (12, "<"))
REF_MARK = " [ref]"
MAX_LISTED = 20          # regressions and improvements listed under the verdict


def wrap(text, width=WIDTH, **kw) -> list:
    """textwrap.wrap that never breaks inside an option or a name at a
    hyphen (--tlbperf-extra-profile, zen1-epyc)."""
    return textwrap.wrap(text, width, break_on_hyphens=False, **kw)


def num(value) -> str:
    """A median as a reviewer reads it: integers as integers, large values
    in 3 significant digits, small ones with one decimal."""
    if value is None:
        return "-"
    if abs(value) >= 1e8:
        return f"{value:.3g}"
    if value == int(value) or abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}"


def pct(ratio, sign=True) -> str:
    """ratio 0.86 -> '-14.0' (percent change), one decimal under 100%."""
    change = (ratio - 1) * 100
    text = f"{change:+.1f}" if abs(change) < 99.95 else f"{change:+.0f}"
    return text if sign else text.lstrip("+")


def factor(ratio) -> str:
    """ratio 38.2 -> 'x38.2': changes of 10x and more read better as factors."""
    return f"x{ratio:.3g}"


def _as_factor(finding) -> bool:
    c = finding.comparison
    return c.ratio is not None and max(
        v for v in [c.ratio] + list(c.ci or ()) if math.isfinite(v)) >= 10


def bounded(ci) -> bool:
    """An interval with both bounds finite and positive (with too few seeds
    the exact test rejects no ratio, and the interval is (0, inf))."""
    return ci is not None and ci[0] > 0 and math.isfinite(ci[1])


def change(finding) -> str:
    r = finding.comparison.ratio
    if r is None:
        return "n/a"
    return factor(r) if _as_factor(finding) else pct(r) + "%"


def interval(finding) -> str:
    ci = finding.comparison.ci
    if finding.comparison.all_identical:
        return "identical"           # every seed equal on both sides: no interval to show
    if ci is None:
        return "-"
    if not bounded(ci):
        return "unbounded"
    fmt = factor if _as_factor(finding) else pct
    return f"{fmt(ci[0])}..{fmt(ci[1])}"


def pvalue(p) -> str:
    if p is None:
        return "-"
    return "<1e-4" if p < 1e-4 else f"{p:.4f}"


def verdict_text(v: str) -> str:
    return "REGRESSION" if v == verdicts.REGRESSION else v


def cut(text: str, width: int) -> str:
    """Shorten to `width` with a trailing '~' (ASCII, for mail)."""
    return text if len(text) <= width else text[: width - 1] + "~"


def _row(cells) -> str:
    out = []
    for (width, align), cell in zip(COLUMNS, cells):
        cell = cut(str(cell), width)
        out.append(cell.ljust(width) if align == "<" else cell.rjust(width))
    return " ".join(out).rstrip()


def block(test, profile, metric, reference, design, findings, baseline, report=None) -> list:
    """One table: a header naming the cell and the metric, a two-line
    column header (the statistic, then what it is of), then a row per
    policy, reference policies marked [ref]."""
    f0 = findings[0]
    paired = design == stats.PAIRED
    how = (f"paired by seed vs {reference}" if paired else f"vs {reference}")
    head = [cut(f"{test}[{profile}]", WIDTH),
            cut(f"{metric} ({f0.unit}, {f0.better} is better), {how}", WIDTH)]
    left, right = (cut(baseline, 8), "this") if reference == baseline else ("then", "now")
    rows = [_row(["", "median", "median", "HL", "95% CI of", "BH-adj", "", ""]),
            _row(["policy", left, right, "change", "the change", "p", "n", "verdict"]),
            _row(["-" * w for w, _ in COLUMNS])]
    for f in findings:
        c = f.comparison
        n = c.n if paired else f"{c.n_candidate}"
        ref = report is not None and report.role(f.policy) == REFERENCE
        name = cut(f.policy, COLUMNS[0][0] - len(REF_MARK)) + REF_MARK if ref else f.policy
        rows.append(_row([name, num(f.baseline_median), num(f.candidate_median), change(f),
                          interval(f), pvalue(f.p_adjusted), n, verdict_text(f.verdict)]))
    return head + rows


def finding_lines(f, width=WIDTH) -> list:
    """'  REGRESSION   test_x[zen1-epyc] cr3_writes +290% [+281..+297]', on
    two lines when it does not fit on one: names are never cut."""
    head = f"  {verdict_text(f.verdict):<12} {f.test}[{f.profile}]"
    tail = f"{f.metric} {change(f)} [{interval(f)}]"
    if len(head) + 1 + len(tail) <= width:
        return [f"{head} {tail}"]
    return [cut(head, width), cut(" " * 15 + tail, width)]


def verdict_lines(report) -> list:
    """The candidates' verdict and the comparisons that changed: every
    regression, then every improvement, one line each (two when long), per
    candidate."""
    who = (f"reviewing {report.subject()} against" if report.roles.reviewing_all else
           f"candidate{'s' * (len(report.policies('candidate')) != 1)} {report.subject()} vs")
    lines = wrap(f"{who} baseline {report.baseline}: {report.headline()}", WIDTH)
    order = {verdicts.REGRESSION: 0, verdicts.IMPROVEMENT: 1}
    rank = {p: i for i, p in enumerate(report.policies("baseline")
                                       + report.policies("candidate"))}
    changed = sorted((f for f in report.candidate_findings() if f.verdict in order),
                     key=lambda f: (rank.get(f.policy, len(rank)), order[f.verdict], f.test,
                                    f.profile, f.metric))
    several = len({f.policy for f in changed}) > 1
    policy = None
    for f in changed[:MAX_LISTED]:
        if several and f.policy != policy:
            policy = f.policy
            lines.append(cut(f" {policy}:", WIDTH))
        lines += finding_lines(f)
    if len(changed) > MAX_LISTED:
        lines.append(f"  ... and {len(changed) - MAX_LISTED} more in the tables below")
    refs = report.reference_headline()
    if refs:
        lines += wrap(refs, WIDTH)
    return lines


def preamble(report) -> list:
    counts, max_rounds = report.rounds()
    seeds = "/".join(map(str, counts)) or "0"
    n = len([f for f in report.candidate_findings() if f.p_adjusted is not None])
    m = len([f for f in report.reference_findings() if f.p_adjusted is not None])
    family = f"{n} comparisons" + (f" (the {m} of the reference policies as a family of "
                                   f"their own)" if m else "")
    run = report.run
    lines = [f"tlbperf: {report.label}, model {run.get('model_version', '?')}, engine "
             f"{', '.join(run.get('engines', ())) or '?'}"]
    lines += verdict_lines(report)
    for line in report.touched_lines() + report.same_knobs_lines():
        lines += wrap(line, WIDTH)
    lines += wrap(
        f"seeds per cell: {seeds}"
        + (f" (inconclusive comparisons get doubled seeds, up to {max_rounds})"
           if max_rounds else ""), WIDTH)
    for ref in report.references:
        lines += wrap(f"compared with saved run {verdicts.run_label(ref)[4:]}: "
                               + pairing_summary(report, ref), WIDTH)
    legend = (f"Columns: median of each side over the seeds; HL change = the "
              f"Hodges-Lehmann estimate of the per-seed ratio candidate/baseline, minus 1 "
              f"(paired by seed; of the two samples when unpaired); its 95% CI, from "
              f"inverting the same exact signed-rank test (Mann-Whitney when unpaired): "
              f"'unbounded' when too few seeds differ for a finite one, 'identical' when "
              f"every seed gave the same value on both sides; BH-adj p: alpha-spending "
              f"across the adaptive looks, then Benjamini-Hochberg over {family}; "
              f"n: seeds. REGRESSION/improvement: BH-adj p < {report.alpha:g} and the whole "
              f"CI beyond {report.thresholds.describe()}; no change: CI within it, or "
              f"identical on enough seeds to be 95% sure they differ on at most "
              f"{verdicts.MAX_DIFFERING_SHARE:.0%} of seeds.")
    lines += [""] + wrap(legend, WIDTH)
    return lines


def pairing_summary(report, reference) -> str:
    """How the comparisons with a saved run were made: how many paired by
    seed, how many unpaired and why."""
    label = verdicts.run_label(reference)
    mine = [f for f in report.findings if f.reference == label]
    paired = sum(f.design == stats.PAIRED for f in mine)
    why = {}
    for f in mine:
        if f.design != stats.PAIRED:
            why[f.why or "no common seeds"] = why.get(f.why or "no common seeds", 0) + 1
    parts = [f"{paired} comparisons paired by seed (same programs)"] if paired else []
    parts += [f"{k} unpaired: {w}" for w, k in sorted(why.items())]
    return "; ".join(parts) or "no cell in common"


def violation_lines(report, traces=True, width=WIDTH) -> list:
    """Each violation kind per cell; for those that fail the run the trace
    of the first one and a command that reproduces its seed. A headline
    longer than `width` breaks after the cell's name."""
    lines = []
    for v in report.violations:
        head = v.headline()
        if len(head) > width:
            where, _, what = head.partition(": ")
            lines += [cut(f"{where}:", width)] + wrap(
                what, width, initial_indent="  ", subsequent_indent="  ")
        else:
            lines.append(head)
        if traces and v.status == "UNEXPECTED":
            lines.extend("  " + line for line in v.trace())
            if v.command:
                lines.append(f"  reproduce seed {v.seed}:")
                lines.extend(shell_lines(v.command, width, indent="    "))
    return lines


def render(report, violations=True, command=True) -> str:
    """The whole text report; the terminal summary leaves out the
    violations (it prints them with their own section) and the command
    (the one just typed)."""
    lines = preamble(report)
    for test, profile, metric, ref, design, findings in report.blocks():
        lines.append("")
        lines += block(test, profile, metric, ref, design, findings, report.baseline, report)
    if violations and report.violations:
        lines += ["", "violations:"]
        lines += violation_lines(report)
    cmd = report.command
    if cmd and command:
        lines += ["", "reproduce with:"] + shell_lines(cmd)
    return "\n".join(lines) + "\n"


def shell_lines(command: str, width: int = WIDTH, indent: str = "  ") -> list:
    """A shell command folded at spaces into lines that end in ' \\', so
    it still runs when pasted (a single word longer than a line stays
    whole). Words are re-quoted one by one, so a fold never lands inside
    a quoted argument."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = [w if w in ("&&", "||", ";", "|") else shlex.quote(w) for w in lexer]
    lines, current = [], indent
    for word in words:
        if current.strip() and len(current) + 1 + len(word) + 2 > width:
            lines.append(current + " \\")
            current = indent + "  " + word
        else:
            current = current + (" " if current.strip() else "") + word
    lines.append(current)
    return lines

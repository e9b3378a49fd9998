"""The plain-text report: at most 80 columns, ASCII only, laid out like
the table in seed 002 (the baseline figure, then each candidate with its
change in percent) so it can be pasted into an LKML reply as it is.

One block per (suite test, profile, metric): a row per candidate policy
with the baseline's and the candidate's medians, the change, its 95%
interval, the Benjamini-Hochberg adjusted p, the seeds and the verdict.
"""

from __future__ import annotations

import math
import shlex
import textwrap

from . import stats, verdicts

WIDTH = 80
COLUMNS = ((16, "<"), (8, ">"), (8, ">"), (7, ">"), (13, "<"), (6, ">"), (3, ">"), (12, "<"))


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
        return f"same on {finding.comparison.n}"       # identical on n of n seeds
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


def block(test, profile, metric, reference, design, findings, baseline) -> list:
    """One table: a header naming the cell and the metric, then a row per
    candidate."""
    f0 = findings[0]
    paired = design == stats.PAIRED
    how = (f"paired by seed vs {reference}" if paired else f"vs {reference}")
    head = [cut(f"{test}[{profile}]", WIDTH),
            cut(f"{metric} ({f0.unit}, {f0.better} is better), {how}", WIDTH)]
    left, right = (cut(baseline, 8), "this") if reference == baseline else ("then", "now")
    rows = [_row(["policy", left, right, "change", "95% CI", "p(adj)", "n", "verdict"]),
            _row(["-" * w for w, _ in COLUMNS])]
    for f in findings:
        c = f.comparison
        n = c.n if paired else f"{c.n_candidate}"
        rows.append(_row([f.policy, num(f.baseline_median), num(f.candidate_median), change(f),
                          interval(f), pvalue(f.p_adjusted), n, verdict_text(f.verdict)]))
    return head + rows


def preamble(report) -> list:
    counts, max_rounds = report.rounds()
    n = len([f for f in report.findings if f.p_adjusted is not None])
    seeds = "/".join(map(str, counts)) or "0"
    run = report.run
    lines = [f"tlbperf: {report.label}, model {run.get('model_version', '?')}, engine "
             f"{', '.join(run.get('engines', ())) or '?'}"]
    lines += textwrap.wrap(
        f"baseline {report.baseline}; seeds per cell: {seeds}"
        + (f" (inconclusive comparisons get doubled seeds, up to {max_rounds})"
           if max_rounds else ""), WIDTH)
    for ref in report.references:
        lines += textwrap.wrap(f"compared with saved run {verdicts.run_label(ref)[4:]}: "
                               + pairing_summary(report, ref), WIDTH)
    legend = (f"change = candidate/baseline - 1 in percent, the Hodges-Lehmann estimate "
              f"of the per-seed ratio when paired by seed, with the 95% CI that inverts "
              f"the same exact signed-rank test (Mann-Whitney when unpaired). p(adj): "
              f"alpha-spending across the adaptive looks, then Benjamini-Hochberg over "
              f"{n} comparisons. REGRESSION/improvement: p(adj) < {report.alpha:g} and the "
              f"whole CI beyond {report.thresholds.describe()}; no change: CI within it. "
              f"'same on n': identical on all n seeds, no change once that makes us 95% "
              f"sure they differ on at most {verdicts.MAX_DIFFERING_SHARE:.0%} of seeds.")
    lines += textwrap.wrap(legend, WIDTH)
    lines += textwrap.wrap(report.headline(), WIDTH)
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
    """Each violation kind per cell; the trace of the first one for those
    that fail the run. A headline longer than `width` breaks after the
    cell's name."""
    lines = []
    for v in report.violations:
        head = v.headline()
        if len(head) > width:
            where, _, what = head.partition(f"{v.where}: ")
            lines += [cut(f"{v.where}:", width)] + textwrap.wrap(
                what, width, initial_indent="  ", subsequent_indent="  ")
        else:
            lines.append(head)
        if traces and v.status == "UNEXPECTED":
            lines.extend("  " + line for line in v.trace())
    return lines


def render(report, violations=True, command=True) -> str:
    """The whole text report; the terminal summary leaves out the
    violations (it prints them with their own section) and the command
    (the one just typed)."""
    lines = preamble(report)
    for test, profile, metric, ref, design, findings in report.blocks():
        lines.append("")
        lines += block(test, profile, metric, ref, design, findings, report.baseline)
    if violations and report.violations:
        lines += ["", "violations:"]
        lines += violation_lines(report)
    cmd = report.command
    if cmd and command:
        lines += ["", "reproduce with:"] + shell_lines(cmd)
    return "\n".join(lines) + "\n"


def shell_lines(command: str, width: int = WIDTH) -> list:
    """A shell command folded at spaces into lines that end in ' \\', so
    it still runs when pasted (a single word longer than a line stays
    whole). Words are re-quoted one by one, so a fold never lands inside
    a quoted argument."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = [w if w in ("&&", "||", ";", "|") else shlex.quote(w) for w in lexer]
    lines, current = [], "  "
    for word in words:
        if current.strip() and len(current) + 1 + len(word) + 2 > width:
            lines.append(current + " \\")
            current = "    " + word
        else:
            current = current + (" " if current.strip() else "") + word
    lines.append(current)
    return lines

"""The HTML report: one self-contained file (inline CSS and SVG, no script,
no network), rendered by jinja2 with autoescaping from
`templates/report.html.j2`, readable from 800 px wide.

It opens with the verdict about the candidates and an overview matrix (a
row per suite test, profile and metric, a column per candidate and then
per reference policy, one cell per comparison coloured by its verdict and
linked to its details), then what each candidate changes (its docstring,
its knobs beside the baseline's per profile), the findings, the violations
with the seed and a command that reproduces each, and per (test, profile,
metric) two plots:

* per-seed values: a row per side, every seed a dot jittered inside its
  row (a strip plot: equal values do not hide each other), the median a
  tick;
* a forest plot on a log ratio axis: per policy its per-seed ratios as a
  strip, the Hodges-Lehmann estimate and its 95% interval, the +/-
  threshold band shaded; outliers beyond the clipped axis are drawn as
  arrows at its edge with their count.

This module only computes what the template draws.
"""

from __future__ import annotations

import functools
import math
import re
import statistics

import jinja2
from markupsafe import Markup, escape

from pytest_tlbperf import selection
from pytest_tlbperf.metrics import METRICS

from . import stats, text, verdicts
from .report import _test_function

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
VERDICT_ORDER = {verdicts.REGRESSION: 0, verdicts.IMPROVEMENT: 1, verdicts.INCONCLUSIVE: 2,
                 verdicts.NO_CHANGE: 3}
# the forest plot's axis follows an interval at most this factor beyond the
# estimates, the threshold band and the middle 80% of the seeds; what lies
# further is drawn at the edge and counted
CLIP = 4.0
NICE_RATIOS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.33, 0.5, 0.8, 0.9,
               0.95, 0.98, 1.0, 1.02, 1.05, 1.1, 1.25, 1.5, 2, 3, 4, 5, 10, 20, 50, 100, 200, 500,
               1000, 2000, 5000, 10000)


class _Environment(jinja2.Environment):
    """jinja2's environment, with `x.name` on a dict looked up as its key
    first. The context is plain dicts, and jinja2 tries the attribute first:
    each `row.verdict` raised and caught an AttributeError before reading
    the key: 91,000 of them on the built-in suites' report, whose template
    took 0.11 s with them and 0.07 s without. A name dict itself has
    (`items`, `values`) still goes to jinja2, so every lookup gives what it
    gave before."""

    _dict_names = frozenset(dir(dict))

    def getattr(self, obj, attribute):
        if type(obj) is dict and attribute not in self._dict_names:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


_env = _Environment(
    loader=jinja2.PackageLoader("pytest_tlbperf.reports", "templates"),
    autoescape=jinja2.select_autoescape(("html", "j2"), default=True),
    trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)


class Axis:
    """A 1-D scale from data to pixels, linear or log10."""

    def __init__(self, lo, hi, px_lo, px_hi, log=False):
        if log:
            lo, hi = math.log10(lo), math.log10(hi)
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        self.lo, self.hi, self.px_lo, self.px_hi, self.log = lo, hi, px_lo, px_hi, log

    def __call__(self, value) -> float:
        return self._px(math.log10(value) if self.log else value)

    def _px(self, v) -> float:
        """The pixel of v, a value already on the axis' scale (its log10 on a
        log axis)."""
        frac = (v - self.lo) / (self.hi - self.lo)
        return round(self.px_lo + frac * (self.px_hi - self.px_lo), 1)

    def contains(self, value) -> bool:
        return self.place(value) is not None

    def place(self, value) -> float | None:
        """self(value) where the axis covers value, else None: one
        logarithm per dot, of the report's 34,000."""
        if self.log:
            if value <= 0:
                return None
            value = math.log10(value)
        if not self.lo - 1e-9 <= value <= self.hi + 1e-9:
            return None
        return self._px(value)


def _nice_linear(lo, hi, count=5) -> list:
    span = hi - lo or abs(hi) or 1.0
    step = 10 ** math.floor(math.log10(span / count))
    for mult in (1, 2, 5, 10):
        if span / (step * mult) <= count:
            step *= mult
            break
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step) + 1)]


def _spaced(candidates, axis, min_px=48) -> list:
    """The candidates (in priority order) that keep `min_px` between labels."""
    taken, xs = [], []
    for value in candidates:
        x = axis.place(value)
        if x is not None and all(abs(x - t) >= min_px for t in xs):
            taken.append(value)
            xs.append(x)
    return sorted(taken)


def _ratio_ticks(axis, threshold) -> list:
    """1 first, then the threshold edges, then round ratios, as room allows."""
    first = [1.0, 1 - threshold, 1 + threshold]
    rest = sorted(NICE_RATIOS, key=lambda r: abs(math.log10(r)), reverse=True)
    return _spaced(first + rest, axis)


def compact(value) -> str:
    """Axis label: 1200000 -> '1.2M', 25000 -> '25k'."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e4, "k")):
        if abs(value) >= scale:
            div = 1e3 if suffix == "k" else scale
            return f"{value / div:.3g}{suffix}"
    return text.num(value)


def ratio_label(r) -> str:
    return text.factor(r) if r >= 10 else text.pct(r) + "%"


@functools.lru_cache(maxsize=256)
def _jitters(n, spread) -> tuple:
    """Deterministic vertical offsets for the n points of a strip: spread
    evenly in a low-discrepancy order (golden ratio), so points of equal
    value sit side by side instead of on top of each other. Cached: a
    report's strips hold a handful of seed counts and 34,000 dots."""
    if n <= 1:
        return (0.0,) * n
    return tuple(round(((i * 0.6180339887498949) % 1.0 - 0.5) * spread, 1) for i in range(n))


def _seed_ratios(finding) -> list:
    """(seed, candidate/baseline) per seed of a paired comparison, on the
    comparison's own scale (value + 1 when some value is 0)."""
    if not finding.seeds:
        return []
    plus = 1 if finding.comparison.scale == stats.LOG1 else 0
    return [(s, (c + plus) / (b + plus)) for s, b, c in
            zip(finding.seeds, finding.baseline, finding.candidate) if b + plus > 0 and
            c + plus > 0]


def _quantiles(values, *qs) -> list:
    ordered = sorted(values)
    return [ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] for q in qs]


LABEL = 22          # characters of a policy name the plots show (150 px)


def forest(findings, width=540, row=30) -> dict:
    """Geometry of one block's forest plot, on a log ratio axis: per policy
    its per-seed ratios as a jittered strip, the Hodges-Lehmann estimate
    (diamond) and its 95% interval (bar), the +/- threshold band shaded.

    The axis covers the estimates, the threshold band, the middle 80% of
    each policy's seeds, and the intervals up to a factor CLIP beyond the
    rest: a lone outlying seed or an interval end past that is drawn at the
    edge as an arrow with the count of what lies beyond, and the caption
    says so -- one wild seed cannot squash the rest, a cluster of seeds
    (vCPUs preempted on half the seeds) stays in view."""
    left, right, top = 150, width - 24, 26
    seed_ratios = [_seed_ratios(f) for f in findings]
    core = [1.0]
    for f, pairs in zip(findings, seed_ratios):
        t = f.threshold
        core += [1 - t, 1 + t]
        if f.comparison.ratio and f.comparison.ratio > 0:
            core.append(f.comparison.ratio)
        if pairs:
            core += _quantiles([r for _, r in pairs], 0.1, 0.9)
    lo, hi = min(core), max(core)
    for f in findings:
        for v in f.comparison.ci or ():
            if 0 < v < math.inf:
                lo, hi = min(lo, max(v, min(core) / CLIP)), max(hi, min(v, max(core) * CLIP))
    lo, hi = lo / 1.04, hi * 1.04
    axis = Axis(lo, hi, left, right, log=True)
    edge_lo, edge_hi = axis_lo(axis), axis_hi(axis)
    height = top + row * len(findings) + 36
    rows, clipped = [], 0
    for i, (f, ratios) in enumerate(zip(findings, seed_ratios)):
        c = f.comparison
        y = top + row * i + row / 2
        item = {"y": y, "label": text.cut(f.policy, LABEL), "verdict": f.verdict,
                "css": _css(f.verdict),
                "title": f"{f.policy}: {text.change(f)} [{text.interval(f)}], p(adj) "
                         f"{text.pvalue(f.p_adjusted)}, {f.verdict}",
                "beyond": []}
        low_out = [s for s, r in ratios if r < edge_lo]
        high_out = [s for s, r in ratios if r > edge_hi]
        jitter = _jitters(len(ratios), row * 0.6)
        item["seeds"] = _circles("seed", 2.2, [
            (x, round(y + jitter[k], 1), f"seed {seed}: {ratio_label(r)}")
            for k, (seed, r) in enumerate(ratios) if (x := axis.place(r)) is not None])
        for seeds_out, x, sign in ((low_out, left, -1), (high_out, right, 1)):
            if seeds_out:
                clipped += len(seeds_out)
                item["beyond"].append({"x": x, "y": y, "sign": sign, "n": len(seeds_out),
                                       "title": f"{len(seeds_out)} seed(s) beyond the axis: "
                                                + ", ".join(map(str, seeds_out))})
        if c.ratio is not None and c.ratio > 0:
            item["x"] = axis(c.ratio)           # the axis always covers the estimates
        elif c.ratio is not None:
            item["note"] = f"{text.change(f)}: off the log scale"
        else:
            item["note"] = "no ratio: the baseline is 0"
        if text.bounded(c.ci):
            x1, x2 = (axis(min(max(v, edge_lo), edge_hi)) for v in c.ci)
            item["x1"], item["x2"] = x1, x2
            item["cut_low"] = c.ci[0] < edge_lo
            item["cut_high"] = c.ci[1] > edge_hi
        rows.append(item)
    t = findings[0].threshold
    return {"width": width, "height": height, "left": left, "right": right, "top": top,
            "bottom": height - 30, "one": axis(1.0),
            "band": (axis(1 - t), axis(1 + t)),
            "ticks": [{"x": axis(r), "label": ratio_label(r)}
                      for r in _ratio_ticks(axis, t)],
            "rows": rows, "clipped": clipped,
            "cut": bool(clipped) or any(r.get("cut_low") or r.get("cut_high") for r in rows),
            "range": f"{ratio_label(edge_lo)} .. {ratio_label(edge_hi)}"}


def _circles(css, radius, dots) -> Markup:
    """The seeds' dots, [(x, y, title)] with each title already HTML (a
    number, or a label escaped once per strip), as SVG: made here, not in
    the template, because a report holds tens of thousands of them and the
    template's loop per dot was most of the report's rendering time."""
    return Markup("".join(f'<circle class="{css}" cx="{x}" cy="{y}" r="{radius}"><title>'
                          f'{title}</title></circle>' for x, y, title in dots))


def axis_lo(axis) -> float:
    return 10 ** axis.lo if axis.log else axis.lo


def axis_hi(axis) -> float:
    return 10 ** axis.hi if axis.log else axis.hi


def strips(findings, baseline, width=400, row=22) -> dict | None:
    """Geometry of one block's per-seed values: a row per side (the
    baseline, then each policy; 'then' and 'now' per policy against a saved
    run), every seed a dot jittered inside its row, the median a tick.
    Log axis when the values span more than 20x."""
    paired = findings[0].design == stats.PAIRED
    series = []
    if paired and findings[0].reference == baseline:
        series.append((baseline, findings[0].baseline, True))
        series += [(f.policy, f.candidate, False) for f in findings]
    else:
        for f in findings:
            series += [(f"{f.policy} then", f.baseline, True), (f"{f.policy} now",
                                                               f.candidate, False)]
    values = [v for _, vs, _ in series for v in vs]
    if not values:
        return None
    left, right, top = 150, width - 14, 8
    lo, hi = min(values), max(values)
    log = lo > 0 and hi / lo > 20
    if log:
        lo, hi = lo / 1.15, hi * 1.15
        ticks = [10 ** k for k in range(math.ceil(math.log10(lo)),
                                        math.floor(math.log10(hi)) + 1)]
    else:
        pad = (hi - lo) * 0.06 or abs(hi) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
        ticks = _nice_linear(lo, hi)
    axis = Axis(lo, hi, left, right, log)
    ticks = _spaced([v for v in ticks if axis.contains(v)], axis, 44)
    height = top + row * len(series) + 34
    rows = []
    for i, (label, vals, is_base) in enumerate(series):
        y = top + row * i + row / 2
        med = statistics.median(vals) if vals else None
        jitter, name = _jitters(len(vals), row * 0.6), escape(label)
        rows.append({"y": y, "label": text.cut(label, LABEL), "base": is_base,
                     "dots": _circles("seed base" if is_base else "seed", 2.6, [
                         (x, round(y + jitter[k], 1), f"{name}: {text.num(v)}")
                         for k, v in enumerate(vals) if (x := axis.place(v)) is not None]),
                     "median": axis.place(med) if med is not None else None,
                     "median_label": text.num(med)})
    return {"width": width, "height": height, "left": left, "right": right, "top": top,
            "bottom": height - 30, "log": log, "rows": rows,
            "ticks": [{"x": axis(v), "label": compact(v)} for v in ticks]}


def _css(verdict) -> str:
    return verdict.replace(" ", "-")


def _row(f, report, anchor) -> dict:
    c = f.comparison
    return {"test": f.test, "test_parts": breakable(f.test), "profile": f.profile,
            "metric": f.metric,
            "policy": f.policy, "anchor": anchor,
            "role": report.role(f.policy),
            "reference": f.reference, "design": f.design,
            "baseline": text.num(f.baseline_median), "candidate": text.num(f.candidate_median),
            "change": text.change(f), "ci": text.interval(f), "p": text.pvalue(f.p_adjusted),
            "p_raw": text.pvalue(c.p), "n": c.n if f.design == stats.PAIRED else
            f"{c.n_baseline}/{c.n_candidate}", "verdict": f.verdict, "css": _css(f.verdict),
            "note": "; ".join(x for x in (c.note, f.why) if x), "unit": f.unit,
            "better": f.better, "threshold": f"{100 * f.threshold:.3g}%"}


def _short(verdict) -> str:
    return {verdicts.REGRESSION: "regr.", verdicts.IMPROVEMENT: "impr.",
            verdicts.NO_CHANGE: "same", verdicts.INCONCLUSIVE: "?"}[verdict]


def matrix(report, blocks) -> dict:
    """The overview: a row per (suite test, profile, metric[, saved run]),
    a column per candidate then per reference policy, one cell per
    comparison coloured by its verdict, holding the change and linking to
    the block's details."""
    columns = [{"name": p, "role": selection.CANDIDATE}
               for p in report.policies(selection.CANDIDATE)]
    columns += [{"name": p, "role": selection.REFERENCE}
                for p in report.policies(selection.REFERENCE)]
    baseline_rows = any(f.policy == report.baseline for b in blocks for f in b["findings"])
    if baseline_rows:
        columns.insert(0, {"name": report.baseline, "role": selection.BASELINE})
    for col in columns:
        col["parts"] = breakable(col["name"])
    added = {(t["profile"], test) for t in report.touched() for test in t["added"]}
    groups = []
    for b in blocks:
        by_policy = {f.policy: f for f in b["findings"]}
        key = (b["test"], b["profile"], b["reference"])
        if not groups or groups[-1]["key"] != key:
            groups.append({"key": key, "test": b["test"], "profile": b["profile"],
                           "test_parts": breakable(b["test"]),
                           "reference": b["reference"] if b["reference"] != report.baseline
                           else "", "rows": [],
                           "added": (b["profile"], _test_function(b["test"])) in added})
        cells = []
        for col in columns:
            f = by_policy.get(col["name"])
            if f is None:
                cells.append(None)
                continue
            cells.append({"href": f"#{b['id']}", "css": _css(f.verdict), "text": text.change(f)
                          if not f.comparison.all_identical else "=",
                          "verdict": _short(f.verdict),
                          "title": f"{f.policy}, {b['test']}[{b['profile']}] {b['metric']}: "
                                   f"{text.change(f)} [{text.interval(f)}], p(adj) "
                                   f"{text.pvalue(f.p_adjusted)}, n {f.comparison.n}: "
                                   f"{f.verdict}"})
        groups[-1]["rows"].append({"metric": b["metric"], "cells": cells})
        counted = [VERDICT_ORDER[f.verdict] for f in b["findings"] if report.counted(f)]
        groups[-1]["severity"] = min([groups[-1].get("severity", len(VERDICT_ORDER))]
                                     + counted)
    # the candidates' regressions first, then improvements, inconclusive, no
    # change; the suite's order within each (sorted() is stable)
    groups.sort(key=lambda g: g["severity"])
    return {"columns": columns, "groups": groups, "rotate": len(columns) > 3}


def breakable(name) -> list:
    """A name cut into the pieces a line may break between: after '_', '.',
    '/', ':' and before '['."""
    return [p for p in re.split(r"(?<=[_./:])|(?=\[)", name) if p]


def knob_tables(report) -> list:
    """Per candidate: its docstring and a table of its knobs next to the
    baseline's, one column per set of profiles on which the pair of them
    is the same, the knobs that differ marked."""
    info = report.policy_info
    base = info.get(report.baseline)
    out = []
    for policy in report.policies(selection.CANDIDATE):
        mine = info.get(policy)
        if mine is None or base is None:
            out.append({"policy": policy, "doc": "", "source": "", "columns": [], "rows": []})
            continue
        groups = {}
        for prof, knobs in mine["knobs"].items():
            theirs = base["knobs"].get(prof)
            if theirs is None:
                continue
            key = (tuple(sorted(theirs.items())), tuple(sorted(knobs.items())))
            groups.setdefault(key, []).append(prof)
        keys = sorted(groups, key=lambda k: (k[0] == k[1], groups[k]))
        one_base = len({k[0] for k in keys}) == 1
        columns = []
        if one_base and keys:
            columns.append({"label": report.baseline, "profiles": "every profile",
                            "base": True, "values": dict(keys[0][0])})
        for k in keys:
            if not one_base:
                columns.append({"label": report.baseline, "profiles": ", ".join(groups[k]),
                                "base": True, "values": dict(k[0])})
            columns.append({"label": policy, "profiles": ", ".join(groups[k]), "base": False,
                            "values": dict(k[1]), "ref": dict(k[0]),
                            "same": k[0] == k[1]})
        names = list(next(iter(mine["knobs"].values()), {}))
        rows = []
        for name in names:
            cells = []
            for col in columns:
                value = col["values"].get(name)
                differs = not col["base"] and value != col["ref"].get(name)
                cells.append({"value": repr(value), "differs": differs})
            rows.append({"knob": name, "cells": cells,
                         "differs": any(c["differs"] for c in cells)})
        rows.sort(key=lambda r: not r["differs"])
        out.append({"policy": policy, "doc": mine.get("doc", ""),
                    "source": mine.get("file") or mine.get("class", ""),
                    "configure": mine.get("configure", False),
                    "columns": columns, "rows": rows,
                    "differs": sum(r["differs"] for r in rows)})
    return out


def context(report) -> dict:
    """Everything the template needs, computed here so the template only
    lays it out."""
    blocks = []
    for test, profile, metric, ref, design, findings in report.blocks():
        f0 = findings[0]
        blocks.append({"id": f"b{len(blocks)}", "test": test, "profile": profile,
                       "metric": metric, "reference": ref, "design": design,
                       "unit": f0.unit, "better": f0.better, "findings": findings,
                       "forest": forest(findings),
                       "strips": strips(findings, report.baseline)})
    row_of = {}             # the findings table shows the blocks' rows again
    for b in blocks:
        b["rows"] = [_row(f, report, b["id"]) for f in b["findings"]]
        row_of.update(zip(map(id, b["findings"]), b["rows"]))
    order = lambda r: (VERDICT_ORDER[r["verdict"]], r["design"] != stats.PAIRED,  # noqa: E731
                       r["test"], r["profile"], r["metric"], r["policy"])
    rows = sorted((row_of[id(f)] for f in report.candidate_findings()), key=order)
    ref_rows = sorted((row_of[id(f)] for f in report.reference_findings()), key=order)
    counts = report.counts()
    chips = report.count_text(counts).split(" of ")[0].split(", ")
    status = report.status()
    regressions = counts[verdicts.REGRESSION]
    bad = len(report.unexpected())
    who = report.subject()
    if status == "fail":
        banner = " and ".join(x for x in (
            f"{regressions} significant regression{'s' * (regressions != 1)}"
            if regressions else "",
            f"{bad} unexpected violation{'s' * (bad != 1)}" if bad else "") if x)
    elif status == "warn":
        banner = "No regression found; some comparisons are inconclusive"
    else:
        banner = "No regression, no unexpected violation"
    run = report.run
    meta = {"commit": run.get("commit", "unknown"), "dirty": bool(run.get("dirty")),
            "model_version": run.get("model_version", "?"),
            "engines": list(run.get("engines", ())), "created": run.get("created", "")}
    violations = [{"headline": v.headline(), "status": v.status, "trace": v.trace(),
                   "css": v.status.lower(), "seed": v.seed, "command": v.command,
                   "reference": v.role == selection.REFERENCE, "fails": v.fails}
                  for v in report.violations]
    toc = [("overview", "Overview"), ("candidates", "What the candidate changes"),
           ("summary", "Findings"), ("violations", f"Violations ({len(violations)})"),
           ("details", "Details per metric"), ("methodology", "Methodology"),
           ("reproduce", "Reproduce"), ("text", "Text report")]
    return {"title": f"tlbperf report: {report.label}", "label": report.label, "run": meta,
            "status": status, "banner": banner, "who": who,
            "reviewing_all": report.roles.reviewing_all,
            "headline": report.headline(), "reference_headline": report.reference_headline(),
            "counts": counts, "chips": chips, "rows": rows, "ref_rows": ref_rows, "blocks": blocks,
            "matrix": matrix(report, blocks), "knobs": knob_tables(report),
            "touched": report.touched_lines() + report.same_knobs_lines(), "toc": toc,
            "violations": violations,
            "methodology": report.methodology(), "command": report.command,
            "text": text.render(report, violations=False),
            "baseline": report.baseline,
            "references": [verdicts.run_label(r) for r in report.references],
            "thresholds": report.thresholds.describe(), "alpha": report.alpha}


def prepare() -> None:
    """Load what `write` needs before it is called: the template, compiled,
    and scipy.special, whose beta quantiles the methodology's validation
    rates take (`validation.summary`)."""
    from . import validation
    _env.get_template("report.html.j2")
    validation.summary()


def render(report) -> str:
    """The report as one HTML document."""
    return _env.get_template("report.html.j2").render(**context(report))


def write(report, fh) -> None:
    """`render(report)` written to `fh` as the template makes it: the
    document of the built-in suites is 5 MB, and holding it whole with its
    pieces was the peak of a session's memory (22 MB, issue 16)."""
    for chunk in _env.get_template("report.html.j2").generate(**context(report)):
        fh.write(chunk)


def trend(history, metric, width=760, height=280) -> dict:
    """Geometry of one metric's trend plot: each series as its value over
    its first value, one x step per run in git order, change points marked."""
    series = [s for s in history.series if s.metric == metric]
    left, right, top, bottom = 56, width - 110, 16, height - 66   # room for slanted commits
    n = len(history.runs)
    x = Axis(0, max(n - 1, 1), left, right)
    rel = []
    for s in series:
        first = next((v for v in s.values if v), None)
        rel.append([None if v is None or not first else v / first for v in s.values])
    vals = [v for r in rel for v in r if v is not None] or [1.0]
    lo, hi = min(vals + [1.0]), max(vals + [1.0])
    pad = (hi - lo) * 0.08 or 0.02
    y = Axis(lo - pad, hi + pad, bottom, top)
    lines, marks = [], []
    for i, (s, r) in enumerate(zip(series, rel)):
        color = PALETTE[i % len(PALETTE)]
        pts = " ".join(f"{x(k)},{y(v)}" for k, v in enumerate(r) if v is not None)
        lines.append({"points": pts, "color": color, "label": s.label,
                      "dots": [{"x": x(k), "y": y(v), "title": f"{history.commit(k)}: "
                                f"{text.num(s.values[k])}"} for k, v in enumerate(r)
                               if v is not None]})
        for p in s.points:
            if r[p.index] is not None:
                marks.append({"x": x(p.index), "y": y(r[p.index]), "color": color,
                              "title": f"{history.commit(p.index)}: {s.label} {metric} "
                                       f"{text.pct(p.ratio)}% ({text.num(p.before)} -> "
                                       f"{text.num(p.after)})"})
    ticks = [{"y": y(v), "label": text.pct(v) + "%"} for v in _nice_linear(lo - pad, hi + pad)
             if y.contains(v)]
    commits = [{"x": x(k), "label": text.cut(history.commit(k), 22)} for k in range(n)]
    return {"width": width, "height": height, "left": left, "right": right, "top": top,
            "bottom": bottom, "lines": lines, "marks": marks, "ticks": ticks,
            "commits": commits,
            "cuts": sorted({m["x"] for m in marks})}


def render_history(history) -> str:
    """`tlbperf history -o FILE.html`: one self-contained page."""
    metrics = sorted({s.metric for s in history.series})
    plots = [{"metric": m, "unit": METRICS[m].unit, "better": METRICS[m].better,
              "plot": trend(history, m)} for m in metrics]
    changes = [{"commit": history.commit(p.index), "metric": s.metric, "series": s.label,
                "change": text.pct(p.ratio) + "%", "before": text.num(p.before),
                "after": text.num(p.after), "p": text.pvalue(p.pvalue),
                "css": "regression" if (p.ratio > 1) == (METRICS[s.metric].better == "lower")
                else "improvement"} for s, p in history.changes()]
    from .history import MAX_PVALUE, render_text
    return _env.get_template("history.html.j2").render(
        title=f"tlbperf history: {len(history.runs)} runs", plots=plots, changes=changes,
        runs=[{"commit": history.commit(i), "id": r.get("id", "?")}
              for i, r in enumerate(history.runs)],
        skipped=[{"commit": r.get("commit", "?"), "id": r.get("id", "?"), "why": why}
                 for r, why in history.skipped],
        threshold=f"{history.threshold:.0%}", max_pvalue=f"{MAX_PVALUE:g}",
        text=render_text(history))

"""The HTML report: one self-contained file (inline CSS and SVG, no script,
no network), rendered by jinja2 with autoescaping from
`templates/report.html.j2`.

This module only computes what the template draws: the rows of the summary
table and the geometry of two plots per (test, profile, metric):

* paired per-seed points: candidate value against baseline value, one
  point per seed and policy, with the diagonal (no change) and the
  +/- threshold lines -- seeds above the diagonal got worse for a
  lower-is-better metric;
* a forest plot: each policy's ratio and its 95% interval on a log axis,
  with the +/- threshold band shaded, coloured by verdict.
"""

from __future__ import annotations

import math

import jinja2

from pytest_tlbperf.metrics import METRICS

from . import stats, text, verdicts

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
VERDICT_ORDER = {verdicts.REGRESSION: 0, verdicts.IMPROVEMENT: 1, verdicts.INCONCLUSIVE: 2,
                 verdicts.NO_CHANGE: 3}
NICE_RATIOS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 0.8, 0.9, 0.95, 0.98,
               1.0, 1.02, 1.05, 1.1, 1.25, 1.5, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000,
               5000, 10000)

_env = jinja2.Environment(
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
        v = math.log10(value) if self.log else value
        frac = (v - self.lo) / (self.hi - self.lo)
        return round(self.px_lo + frac * (self.px_hi - self.px_lo), 1)

    def contains(self, value) -> bool:
        if self.log and value <= 0:
            return False
        v = math.log10(value) if self.log else value
        return self.lo - 1e-9 <= v <= self.hi + 1e-9


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
    taken = []
    for value in candidates:
        x = axis(value)
        if axis.contains(value) and all(abs(x - axis(t)) >= min_px for t in taken):
            taken.append(value)
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


def forest(findings, width=560, row=22) -> dict:
    """Geometry of the forest plot of one block."""
    left, right, top = 150, width - 20, 24
    values = [1.0]
    for f in findings:
        c = f.comparison
        values += [v for v in ([c.ratio] + list(c.ci or ()))
                   if v is not None and 0 < v < math.inf]
        values += [1 - f.threshold, 1 + f.threshold]
    lo, hi = min(values) / 1.05, max(values) * 1.05
    axis = Axis(lo, hi, left, right, log=True)
    height = top + row * len(findings) + 34
    rows = []
    for i, f in enumerate(findings):
        c = f.comparison
        y = top + row * i + row / 2
        item = {"y": y, "label": f.policy, "verdict": f.verdict, "css": _css(f.verdict),
                "title": f"{f.policy}: {text.change(f)} [{text.interval(f)}], p(adj) "
                         f"{text.pvalue(f.p_adjusted)}, {f.verdict}"}
        if c.ratio is not None and c.ratio > 0:
            item["x"] = axis(c.ratio)
        elif c.ratio is not None:
            item["note"] = f"{text.change(f)}: off the log scale"
        else:
            item["note"] = "no ratio: the baseline is 0"
        if text.bounded(c.ci):
            item["x1"], item["x2"] = axis(c.ci[0]), axis(c.ci[1])
        rows.append(item)
    t = findings[0].threshold
    return {"width": width, "height": height, "left": left, "right": right, "top": top,
            "bottom": height - 30, "one": axis(1.0),
            "band": (axis(1 - t), axis(1 + t)),
            "ticks": [{"x": axis(r), "label": ratio_label(r)}
                      for r in _ratio_ticks(axis, t)],
            "rows": rows}


def scatter(findings, width=320, height=300) -> dict | None:
    """Geometry of the paired per-seed plot of one paired block: one point
    per (policy, seed) at (baseline value, candidate value)."""
    points = [(i, b, c, s) for i, f in enumerate(findings)
              for b, c, s in zip(f.baseline, f.candidate, f.seeds or ())]
    if not points:
        return None
    left, bottom, right, top = 56, height - 36, width - 12, 12
    vals = [v for _, b, c, _ in points for v in (b, c)]
    lo, hi = min(vals), max(vals)
    log = lo > 0 and hi / lo > 20
    if not log:
        pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
    else:
        lo, hi = lo / 1.2, hi * 1.2
    x = Axis(lo, hi, left, right, log)
    y = Axis(lo, hi, bottom, top, log)
    t = findings[0].threshold
    if log:
        ticks = [10 ** k for k in range(math.ceil(math.log10(lo)), math.floor(math.log10(hi)) + 1)]
    else:
        ticks = _nice_linear(lo, hi)
    ticks = _spaced([v for v in ticks if x.contains(v)], x, 40)
    guides = []
    for factor, dash in ((1.0, ""), (1 + t, "4 3"), (1 - t, "4 3")):
        a, b = lo, hi
        a2, b2 = a * factor, b * factor
        # clip the line y = factor * x to the plot square
        if factor > 1:
            b, b2 = hi / factor, hi
        elif factor < 1:
            a, a2 = lo / factor, lo
        if x.contains(a) and x.contains(b) and b > a:
            guides.append({"x1": x(a), "y1": y(a2), "x2": x(b), "y2": y(b2), "dash": dash})
    return {"width": width, "height": height, "left": left, "right": right, "top": top,
            "bottom": bottom, "log": log, "guides": guides,
            "ticks": [{"x": x(v), "y": y(v), "label": compact(v)} for v in ticks],
            "points": [{"x": x(b), "y": y(c), "color": PALETTE[i % len(PALETTE)],
                        "title": f"{findings[i].policy}, seed {s}: {text.num(b)} -> "
                                 f"{text.num(c)}"} for i, b, c, s in points],
            "legend": [{"label": f.policy, "color": PALETTE[i % len(PALETTE)]}
                       for i, f in enumerate(findings)]}


def _css(verdict) -> str:
    return verdict.replace(" ", "-")


def _row(f) -> dict:
    c = f.comparison
    parts = f.test.replace("[", "\0[").split("\0")
    return {"test": f.test, "test_parts": parts, "profile": f.profile, "metric": f.metric,
            "policy": f.policy,
            "reference": f.reference, "design": f.design,
            "baseline": text.num(f.baseline_median), "candidate": text.num(f.candidate_median),
            "change": text.change(f), "ci": text.interval(f), "p": text.pvalue(f.p_adjusted),
            "p_raw": text.pvalue(c.p), "n": c.n if f.design == stats.PAIRED else
            f"{c.n_baseline}/{c.n_candidate}", "verdict": f.verdict, "css": _css(f.verdict),
            "note": c.note, "unit": f.unit, "better": f.better,
            "threshold": f"{100 * f.threshold:.3g}%"}


def context(report) -> dict:
    """Everything the template needs, computed here so the template only
    lays it out."""
    rows = sorted((_row(f) for f in report.findings),
                  key=lambda r: (VERDICT_ORDER[r["verdict"]], r["design"] != stats.PAIRED,
                                 r["test"], r["profile"], r["metric"], r["policy"]))
    blocks = []
    for test, profile, metric, ref, design, findings in report.blocks():
        f0 = findings[0]
        blocks.append({"id": f"b{len(blocks)}", "test": test, "profile": profile,
                       "metric": metric, "reference": ref, "design": design,
                       "unit": f0.unit, "better": f0.better,
                       "forest": forest(findings),
                       "scatter": scatter(findings) if design == stats.PAIRED else None,
                       "rows": [_row(f) for f in findings]})
    counts = report.counts()
    status = report.status()
    regressions = counts[verdicts.REGRESSION]
    bad = len(report.unexpected())
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
    return {"title": f"tlbperf report: {report.label}", "label": report.label, "run": meta,
            "status": status, "banner": banner, "headline": report.headline(),
            "counts": counts, "rows": rows, "blocks": blocks,
            "violations": [{"headline": v.headline(), "status": v.status,
                            "trace": v.trace(), "css": v.status.lower()}
                           for v in report.violations],
            "methodology": report.methodology(), "command": report.command,
            "text": text.render(report, violations=False),
            "baseline": report.baseline,
            "references": [verdicts.run_label(r) for r in report.references],
            "thresholds": report.thresholds.describe(), "alpha": report.alpha}


def render(report) -> str:
    """The report as one HTML document."""
    return _env.get_template("report.html.j2").render(**context(report))


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

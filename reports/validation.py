"""The detector, validated rather than assumed (DESIGN §6): its
false-positive rate, its power and the coverage of its intervals, measured
on the modeled machine through the same pipeline a report uses (run dict ->
`verdicts.compare_runs` -> `adaptive.run_rounds`, with the group-sequential
design and Benjamini-Hochberg), at the default settings: 5 seeds, adaptive
rounds to 20, threshold 2%, alpha 0.05. `tlbperf validate` measures and
prints everything here; every report prints `summary()` of `PUBLISHED`.

Two set-ups, chosen for their noise (coefficient of variation across seeds,
measured on 30 seeds):

* `madvise`: `madvise_dontneed(iterations=50)` on haswell-4c (seed 002's
  loop) with `madvise_ns` (CV 1.2%), `ipis` (3.0%), `atomic_contention_ns`
  (2.9%) and `flush_latency_ns_p50` (7.3%);
* `kernel_build`: `kernel_build()` on skylake-2s, the noisy one:
  `makespan_ns` (4.2%), `tlb_misses` (4.2%), `cr3_writes` (6.1%) and
  `full_flushes` (8.0%). (Not `ops_per_sec`: kernel_build has no measured
  window, so it has none.)

Measurements:

* **A/A** (`AA_TRIALS` per set-up): `mainline` against itself on
  *different* seeds, paired by index (with common seeds the engine returns
  identical numbers and the test is never exercised), through the adaptive
  rounds. Once as a *one-metric* report per metric and once as a
  *many-metric* report of all four (BH across them). A false positive is a
  `regression` or `improvement` verdict; also counted: adjusted p < alpha
  alone (the test's own size, without the practical threshold). And
  *unpaired*: 10 seeds a side against a "saved run" of 10 other seeds.
* **Power**: `mainline` on haswell-4c against the same with
  `page_fault_cycles` raised by 40%, 15% and 5% (`Profile.with_changes`),
  common seeds, `madvise_ns`, adaptive rounds: how often `regression` is
  called. The fault is about 14% of the loop on haswell-4c (mmap_lock and
  the syscall take the rest), so +40% moves `madvise_ns` by about +5.5% (a
  clear regression), +15% by about +2.05% (just above the threshold), +5% by about
  +0.7% (below it: `regression` would be wrong).
* **Coverage** of the 95% interval at a fixed n = 10 and n = 20: how often
  it holds the truth, the Hodges-Lehmann estimate from 300 pairs and from
  1000 pairs, for every A/A metric (truth close to 0) and every injected
  cost. Both are printed because the 300-seed estimate is not exact enough
  for `madvise_ns`: its per-seed log ratio is a narrow spike with long
  tails, so the n = 20 interval is narrow and the 300-seed estimate's own
  error can show.

Each rate comes with its exact (Clopper-Pearson) binomial 95% interval, computed here and
held equal to `scipy.stats.binomtest`'s by a test.

Engine runs are drawn from per-set-up pools of seeds, each run once
(native engine when built: the figures are the same on either engine, bit
for bit); `tlbperf validate` takes about 30 seconds with the native engine
on one core of this project's 2-core machine.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from pytest_tlbperf import profiles, workloads
from pytest_tlbperf.engine import native
from pytest_tlbperf.fixture import ModeledMachine
from pytest_tlbperf.session import sample

from . import adaptive, stats, verdicts

POLICY = "mainline"
ROUNDS = 5
MAX_ROUNDS = 20
AA_TRIALS = 100
POWER_TRIALS = 60
TRUTH_SEEDS = (300, 1000)      # the truth: the HL estimate from this many pairs
UNPAIRED_SEEDS = 10
TEST = "validation"
COMMAND = "tlbperf validate"

SETUPS = {
    "madvise": ("madvise_dontneed", {"iterations": 50}, "haswell-4c",
                ("madvise_ns", "ipis", "atomic_contention_ns", "flush_latency_ns_p50")),
    "kernel_build": ("kernel_build", {}, "skylake-2s",
                     ("makespan_ns", "tlb_misses", "cr3_writes", "full_flushes")),
}
POWER_SETUP, POWER_METRIC = "madvise", "madvise_ns"
INJECTED = (("page_fault_cycles", 40), ("page_fault_cycles", 15), ("page_fault_cycles", 5))
# seed blocks, disjoint: truth pairs, A/A trials, power trials
TRUTH_BASE, AA_BASE, POWER_BASE = 0, 10_000, 50_000
TRUTH_GAP = 5_000             # A/A truth: seeds TRUTH_BASE + i against TRUTH_GAP + i

SETUP_TEXT = ("mainline; madvise_dontneed(iterations=50) on haswell-4c and kernel_build() on "
              "skylake-2s (metrics with CV 1-8%); 5 seeds, adaptive to 20; threshold 2%, "
              "alpha 0.05")

# What `tlbperf validate` measured; reports print these, and `tlbperf validate`
# exits 1 when a fresh measurement differs (everything is deterministic).
PUBLISHED = {'aa': [{'coverage': {'atomic_contention_ns': {'10/1000': 96,
                                               '10/300': 95,
                                               '20/1000': 94,
                                               '20/300': 96,
                                               'truth': {'1000': 1.00145, '300': 1.00088}},
                      'flush_latency_ns_p50': {'10/1000': 92,
                                               '10/300': 92,
                                               '20/1000': 92,
                                               '20/300': 95,
                                               'truth': {'1000': 1.00276, '300': 1.00033}},
                      'ipis': {'10/1000': 96,
                               '10/300': 96,
                               '20/1000': 99,
                               '20/300': 99,
                               'truth': {'1000': 1.0, '300': 1.0}},
                      'madvise_ns': {'10/1000': 95,
                                     '10/300': 95,
                                     '20/1000': 96,
                                     '20/300': 96,
                                     'truth': {'1000': 1.0008, '300': 1.00039}}},
         'many_metric': {'at_max_seeds': 400,
                         'comparisons': 400,
                         'false_positives': 0,
                         'median_seeds': 20.0,
                         'significant': 8},
         'metrics': ['madvise_ns', 'ipis', 'atomic_contention_ns', 'flush_latency_ns_p50'],
         'one_metric': {'at_max_seeds': 312,
                        'comparisons': 400,
                        'false_positives': 0,
                        'median_seeds': 20.0,
                        'significant': 11},
         'setup': 'madvise',
         'trials': 100,
         'unpaired': {'comparisons': 400, 'false_positives': 0, 'significant': 5}},
        {'coverage': {'cr3_writes': {'10/1000': 97,
                                     '10/300': 97,
                                     '20/1000': 96,
                                     '20/300': 96,
                                     'truth': {'1000': 1.00058, '300': 0.99938}},
                      'full_flushes': {'10/1000': 95,
                                       '10/300': 96,
                                       '20/1000': 96,
                                       '20/300': 96,
                                       'truth': {'1000': 1.002, '300': 1.0008}},
                      'makespan_ns': {'10/1000': 96,
                                      '10/300': 96,
                                      '20/1000': 96,
                                      '20/300': 98,
                                      'truth': {'1000': 0.99905, '300': 1.00237}},
                      'tlb_misses': {'10/1000': 95,
                                     '10/300': 95,
                                     '20/1000': 96,
                                     '20/300': 97,
                                     'truth': {'1000': 1.00384, '300': 1.00165}}},
         'many_metric': {'at_max_seeds': 400,
                         'comparisons': 400,
                         'false_positives': 0,
                         'median_seeds': 20.0,
                         'significant': 0},
         'metrics': ['makespan_ns', 'tlb_misses', 'cr3_writes', 'full_flushes'],
         'one_metric': {'at_max_seeds': 399,
                        'comparisons': 400,
                        'false_positives': 1,
                        'median_seeds': 20.0,
                        'significant': 12},
         'setup': 'kernel_build',
         'trials': 100,
         'unpaired': {'comparisons': 400, 'false_positives': 0, 'significant': 2}}],
 'power': [{'cost': 'page_fault_cycles',
            'coverage': {'10/1000': 58, '10/300': 58, '20/1000': 58, '20/300': 57},
            'detected': 60,
            'detected_at_fixed_20': 60,
            'median_seeds': 10.0,
            'percent': 40,
            'trials': 60,
            'truth': {'1000': 1.05492, '300': 1.05483}},
           {'cost': 'page_fault_cycles',
            'coverage': {'10/1000': 58, '10/300': 56, '20/1000': 58, '20/300': 56},
            'detected': 58,
            'detected_at_fixed_20': 58,
            'median_seeds': 10.0,
            'percent': 15,
            'trials': 60,
            'truth': {'1000': 1.02047, '300': 1.02039}},
           {'cost': 'page_fault_cycles',
            'coverage': {'10/1000': 54, '10/300': 54, '20/1000': 55, '20/300': 54},
            'detected': 0,
            'detected_at_fixed_20': 0,
            'median_seeds': 10.0,
            'percent': 5,
            'trials': 60,
            'truth': {'1000': 1.00679, '300': 1.00678}}],
 'setup': 'mainline; madvise_dontneed(iterations=50) on haswell-4c and kernel_build() on '
          'skylake-2s (metrics with CV 1-8%); 5 seeds, adaptive to 20; threshold 2%, alpha 0.05'}


class Pool:
    """Lazily run seeds of one machine and workload, each once."""

    def __init__(self, setup, engine, costs=None):
        builder, params, profile, _ = SETUPS[setup]
        prof = profiles.get(profile)
        if costs:
            prof = prof.with_changes(costs=costs)
        self.machine = ModeledMachine(prof, POLICY, engine)
        self.workload = workloads.BUILDERS[builder](**params)
        self.samples = {}

    def __call__(self, seed) -> dict:
        if seed not in self.samples:
            self.samples[seed] = sample(self.machine.run(self.workload, seed=seed))
        return self.samples[seed]

    def values(self, metric, seeds) -> list:
        return [self(s)["metrics"][metric] for s in seeds]


def _cell(label, samples, metrics, profile):
    return {"test": TEST, "profile": profile, "policy": label, "workload": "", "engine": "",
            "metrics": list(metrics), "expected": [], "shows": [], "rounds": ROUNDS,
            "seeds": samples}


class _Trial:
    """One small report: the baseline side and a candidate side, each a
    pool and a seed offset; the report's seed i is pool seed offset + i.
    Extended by the adaptive rounds like a session's cells."""

    def __init__(self, sides, metrics, profile):
        self.sides = sides                  # label -> (pool, offset)
        self.metrics, self.profile = metrics, profile
        self.samples = {label: [] for label in sides}
        self.initial = None

    def extend(self, key, seeds):
        pool, offset = self.sides[key[2]]
        have = self.samples[key[2]]
        added = 0
        while len(have) < seeds:
            s = dict(pool(offset + len(have)), seed=len(have))
            have.append(s)
            added += 1
        return added

    def as_run(self):
        return {"baseline": POLICY, "options": {"rounds": ROUNDS, "max_rounds": MAX_ROUNDS},
                "cells": [_cell(label, list(samples), self.metrics if label != POLICY else (),
                                self.profile) for label, samples in self.samples.items()]}

    def judge(self):
        findings = verdicts.compare_runs(self.as_run())
        if self.initial is None:
            self.initial = findings
        return findings

    def run(self):
        for label in self.sides:
            self.extend((TEST, self.profile, label), ROUNDS)
        findings, _ = adaptive.run_rounds(self.judge, self.extend, MAX_ROUNDS, POLICY)
        return findings


def _hl_truth(base, cand, metric, seeds_b, seeds_c) -> float:
    """The Hodges-Lehmann ratio from TRUTH_SEEDS pairs: the estimand."""
    b = np.array(base.values(metric, seeds_b), float)
    c = np.array(cand.values(metric, seeds_c), float)
    _, f = stats._scale(b, c)
    d = np.round(f(c) - f(b), stats.DECIMALS)
    return float(np.exp(np.median(stats._walsh(d))))


def _covers(base, cand, metric, seeds_b, seeds_c, truth) -> bool:
    c = stats.paired(base.values(metric, seeds_b), cand.values(metric, seeds_c))
    return c.ci is not None and c.ci[0] <= truth <= c.ci[1]


def _flagged(f) -> bool:
    return f.verdict in (verdicts.REGRESSION, verdicts.IMPROVEMENT)


def measure_aa(setup, engine, trials=AA_TRIALS, progress=None, truths=TRUTH_SEEDS) -> dict:
    """A/A on one set-up: one-metric and many-metric reports, unpaired, and
    the coverage of the 95% interval at n = 10 and 20."""
    _, _, profile, metrics = SETUPS[setup]
    pool = Pool(setup, engine)
    out = {"setup": setup, "metrics": list(metrics)}
    one = {"comparisons": 0, "false_positives": 0, "significant": 0, "seeds": []}
    many = {"comparisons": 0, "false_positives": 0, "significant": 0, "seeds": []}
    unpaired = {"comparisons": 0, "false_positives": 0, "significant": 0}
    cover = {m: {f"{n}/{k}": 0 for n in (10, 20) for k in truths} for m in metrics}
    truth = {m: {k: _hl_truth(pool, pool, m, range(TRUTH_BASE, TRUTH_BASE + k),
                              range(TRUTH_GAP, TRUTH_GAP + k)) for k in truths}
             for m in metrics}
    for t in range(trials):
        a, b = AA_BASE + 40 * t, AA_BASE + 40 * t + 20
        for report, wanted in [(many, metrics)] + [(one, (m,)) for m in metrics]:
            trial = _Trial({POLICY: (pool, a), "copy": (pool, b)}, wanted, profile)
            for f in trial.run():
                report["comparisons"] += 1
                report["false_positives"] += _flagged(f)
                report["significant"] += f.p_adjusted is not None and \
                    f.p_adjusted < verdicts.ALPHA
                report["seeds"].append(len(f.seeds))
        this = {"cells": [_cell("copy", [dict(pool(b + i), seed=i)
                                         for i in range(UNPAIRED_SEEDS)], metrics, profile)]}
        ref = {"id": "A/A", "commit": "-", "cells": [_cell("copy", [
            dict(pool(a + i), seed=i, program_digest=None) for i in range(UNPAIRED_SEEDS)],
            metrics, profile)]}
        for f in verdicts.judge(verdicts.unpaired_findings(this, ref)):
            unpaired["comparisons"] += 1
            unpaired["false_positives"] += _flagged(f)
            unpaired["significant"] += f.p_adjusted is not None and \
                f.p_adjusted < verdicts.ALPHA
        for m in metrics:
            for n in (10, 20):
                for k in truths:
                    cover[m][f"{n}/{k}"] += _covers(pool, pool, m, range(a, a + n),
                                                    range(b, b + n), truth[m][k])
        if progress and (t + 1) % 10 == 0:
            progress(f"A/A {setup}: {t + 1}/{trials} trials")
    for report in (one, many):
        seeds = report.pop("seeds")
        report["median_seeds"] = statistics.median(seeds)
        report["at_max_seeds"] = sum(n >= MAX_ROUNDS for n in seeds)
    out.update(one_metric=one, many_metric=many, unpaired=unpaired, trials=trials,
               coverage={m: dict(cover[m], truth={str(k): round(v, 5) for k, v in
                                                  truth[m].items()}) for m in metrics})
    return out


def measure_power(cost, percent, engine, trials=POWER_TRIALS, progress=None,
                  truths=TRUTH_SEEDS) -> dict:
    """Injected regression: `cost` of the profile +`percent`%, common seeds;
    how many reports call `madvise_ns` a regression (adaptive rounds, and at
    a fixed 20 seeds), the truth and the coverage at 10 and 20 seeds."""
    _, _, profile, _ = SETUPS[POWER_SETUP]
    value = profiles.get(profile).raw["costs"][cost]
    base = Pool(POWER_SETUP, engine)
    slow = Pool(POWER_SETUP, engine, {cost: round(value * (100 + percent) / 100)})
    truth = {k: _hl_truth(base, slow, POWER_METRIC, range(TRUTH_BASE, TRUTH_BASE + k),
                          range(TRUTH_BASE, TRUTH_BASE + k)) for k in truths}
    label = f"{cost}+{percent}%"
    detected = fixed = 0
    cover = {f"{n}/{k}": 0 for n in (10, 20) for k in truths}
    seeds_used = []
    for t in range(trials):
        s0 = POWER_BASE + 20 * t
        trial = _Trial({POLICY: (base, s0), label: (slow, s0)}, (POWER_METRIC,), profile)
        (finding,) = trial.run()
        detected += finding.verdict == verdicts.REGRESSION
        seeds_used.append(len(finding.seeds))
        seeds = range(s0, s0 + 20)
        once = verdicts.judge([verdicts.Finding(
            TEST, profile, POWER_METRIC, label, POLICY, base.values(POWER_METRIC, seeds),
            slow.values(POWER_METRIC, seeds), list(seeds),
            stats.paired(base.values(POWER_METRIC, seeds), slow.values(POWER_METRIC, seeds)))])
        fixed += once[0].verdict == verdicts.REGRESSION
        for n in (10, 20):
            for k in truths:
                cover[f"{n}/{k}"] += _covers(base, slow, POWER_METRIC, range(s0, s0 + n),
                                             range(s0, s0 + n), truth[k])
        if progress and (t + 1) % 20 == 0:
            progress(f"power {label}: {t + 1}/{trials} trials")
    return {"cost": cost, "percent": percent, "trials": trials,
            "truth": {str(k): round(v, 5) for k, v in truth.items()},
            "detected": detected, "detected_at_fixed_20": fixed,
            "median_seeds": statistics.median(seeds_used), "coverage": cover}


def default_engine() -> str:
    return "native" if native.available() else "python"


def measure(engine=None, progress=None) -> dict:
    """Every published figure, freshly measured."""
    engine = engine or default_engine()
    started = time.perf_counter()
    out = {"setup": SETUP_TEXT,
           "aa": [measure_aa(s, engine, progress=progress) for s in SETUPS],
           "power": [measure_power(c, p, engine, progress=progress) for c, p in INJECTED]}
    if progress:
        progress(f"validation measured in {time.perf_counter() - started:.0f} s "
                 f"({engine} engine)")
    return out


def rate(k, n) -> str:
    """'3/400 (0.8%, 95% CI 0.2-2.2%)': a rate with its exact binomial interval."""
    if not n:
        return "0/0"
    low, high = clopper_pearson(k, n)
    return f"{k}/{n} ({k / n:.1%}, 95% CI {low:.1%}-{high:.1%})"


def short_rate(k, n) -> str:
    """'91/100 [84-96%]': a rate and its exact binomial 95% interval, short."""
    low, high = clopper_pearson(k, n)
    return f"{k}/{n} [{low:.0%}-{high:.0%}]"


def clopper_pearson(k, n, confidence=0.95) -> tuple:
    """The exact (Clopper-Pearson) interval of a binomial proportion, from
    the beta quantiles as `scipy.stats.binomtest(k, n).proportion_ci(method=
    "exact")` takes them (tests/test_stats.py holds the two equal), without
    importing scipy.stats: a report's methodology prints these rates, and
    that import would double the session's memory (issue 16)."""
    from scipy.special import betaincinv
    alpha = (1 - confidence) / 2
    low = 0.0 if k == 0 else float(betaincinv(k, n - k + 1, alpha))
    high = 1.0 if k == n else float(betaincinv(k + 1, n - k, 1 - alpha))
    return low, high


def _coverage(c, trials) -> str:
    truths = sorted({int(key.split("/")[1]) for key in c if "/" in key})
    return "; ".join(f"vs {k}-seed truth: " + ", ".join(
        f"n={n} {short_rate(c[f'{n}/{k}'], trials)}" for n in (10, 20))
        for k in truths)


def table(figures) -> list:
    """What `tlbperf validate` prints: one line per measured rate."""
    big = max(figures["power"][0]["truth"], key=int) if figures["power"] else ""
    lines = [f"Validation: {figures['setup']}. `{COMMAND}` reproduces it.", "",
             "A/A (no change; false positives = regression or improvement, nominal <= 5%):"]
    for aa in figures["aa"]:
        lines.append(f"  {aa['setup']} ({', '.join(aa['metrics'])}), {aa['trials']} trials:")
        for key, what in (("one_metric", "one-metric reports"),
                          ("many_metric", "4-metric reports")):
            r = aa[key]
            lines.append(f"    {what}: false positives "
                         f"{rate(r['false_positives'], r['comparisons'])}; adjusted p < 0.05 "
                         f"alone {r['significant']}; median seeds {r['median_seeds']:g}, "
                         f"{r['at_max_seeds']} ended at 20")
        r = aa["unpaired"]
        lines.append(f"    unpaired, {UNPAIRED_SEEDS} seeds a side: false positives "
                     f"{rate(r['false_positives'], r['comparisons'])}")
        for m, c in aa["coverage"].items():
            lines.append(f"    95% CI coverage, {m} (truth {c['truth'][big] - 1:+.2%}): "
                         + _coverage(c, aa["trials"]))
    lines += ["", f"Injected regression ({POWER_SETUP}, {POWER_METRIC}, common seeds):"]
    for p in figures["power"]:
        lines.append(f"  {p['cost']} +{p['percent']}% (truth {p['truth'][big] - 1:+.2%}): "
                     f"called a regression {rate(p['detected'], p['trials'])} with adaptive "
                     f"rounds (median {p['median_seeds']:g} seeds), "
                     f"{p['detected_at_fixed_20']}/{p['trials']} at a fixed 20")
        lines.append("    95% CI coverage: " + _coverage(p["coverage"], p["trials"]))
    return lines


def summary(figures=None) -> list:
    """The methodology lines a report prints (shorter than `table`)."""
    fig = figures or PUBLISHED
    if not fig:
        return [f"Validation: not measured yet; run `{COMMAND}`."]
    big = str(TRUTH_SEEDS[-1])
    fp = sum(a[k]["false_positives"] for a in fig["aa"] for k in ("one_metric", "many_metric"))
    n = sum(a[k]["comparisons"] for a in fig["aa"] for k in ("one_metric", "many_metric"))

    def cov(key):
        hit = sum(c[key] for a in fig["aa"] for c in a["coverage"].values()) + \
            sum(p["coverage"][key] for p in fig["power"])
        total = sum(a["trials"] for a in fig["aa"] for _ in a["coverage"]) + \
            sum(p["trials"] for p in fig["power"])
        return rate(hit, total)
    strong = fig["power"][0]
    return [
        f"Validation ({fig['setup']}; `{COMMAND}` reproduces it):",
        f"A/A with adaptive rounds, one- and 4-metric reports: {rate(fp, n)} comparisons "
        f"called a regression or improvement.",
        "Coverage of the 95% interval: "
        + "; ".join(f"n={k}: {cov(f'{k}/{t}')} against the {t}-seed estimate"
                    for k in (10, 20) for t in TRUTH_SEEDS) + ".",
        f"Injected regression, {strong['cost']} +{strong['percent']}% ({POWER_METRIC} "
        f"{strong['truth'][big] - 1:+.1%}): called a regression "
        f"{rate(strong['detected'], strong['trials'])}."
        + "".join(f" +{p['percent']}% ({p['truth'][big] - 1:+.1%}): "
                  f"{p['detected']}/{p['trials']}." for p in fig["power"][1:]),
    ]

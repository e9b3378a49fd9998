"""From saved runs to verdicts: which comparisons a report makes, the
group-sequential and Benjamini-Hochberg adjustments across all of them, and
the rule that turns an effect, its interval and an adjusted p-value into
`regression`, `improvement`, `no change` or `inconclusive` (DESIGN §6).

A report is built from run dicts in the saved-run format (`Session.to_run`,
`Storage.load_file`), so `pytest --tlbperf`, `tlbperf report` and
`tlbperf compare` make the same comparisons from the same data:

* within one run, every candidate policy against the run's baseline, per
  (suite test, profile) and per metric the test shows: **paired** by seed;
* a run against a reference run (another commit, `--tlbperf-compare`,
  `tlbperf compare A B`), the same (test, profile, policy) cell on both
  sides: **paired** on the seeds both ran when every one of them executed
  the same program on both sides (`program_digest`: same workload, profile
  and seed, so common random numbers hold across the commits); otherwise
  **unpaired**, and the finding's note says why (no digests in an old saved
  run, programs that differ, no common seeds).

Each finding's p-value is first put on the scale of the group-sequential
design of the adaptive rounds (`sequential`), then adjusted with
Benjamini-Hochberg across the whole report.
"""

from __future__ import annotations

import statistics

from pytest_tlbperf.metrics import METRICS

from . import sequential, stats
from .thresholds import Thresholds

ALPHA = 0.05
# "no change" for samples identical on every seed needs the 95% upper bound
# on the share of seeds where they differ (stats.differing_bound) at most this:
# 20 identical seeds give 13.9%, 10 give 25.9%, 5 give 45%
MAX_DIFFERING_SHARE = 0.15
REGRESSION, IMPROVEMENT, NO_CHANGE, INCONCLUSIVE = (
    "regression", "improvement", "no change", "inconclusive")
VERDICTS = (REGRESSION, IMPROVEMENT, NO_CHANGE, INCONCLUSIVE)


def verdict(comparison, p_adjusted, better: str, threshold: float, alpha: float = ALPHA) -> str:
    """The verdict for one comparison.

    `better` is the metric's better direction ("lower" or "higher"), so a
    ratio above 1 is bad for a lower-is-better metric and good for a
    higher-is-better one. With t the threshold:

    * regression / improvement: p_adjusted < alpha AND the whole interval
      lies beyond the threshold on the bad / good side, i.e. low > 1 + t
      (or high < 1 - t); strictly beyond, so an interval that touches
      1 + t is not enough;
    * no change: the whole interval lies inside [1 - t, 1 + t] (bounds
      included), significant or not -- a significant 0.5% is no change;
    * inconclusive: anything else (too wide, or straddling the threshold,
      or no interval).

    Samples identical on every seed (`comparison.all_identical`) are `no
    change` only when the 95% upper bound on the share of seeds on which
    they differ is at most MAX_DIFFERING_SHARE, else inconclusive (the
    adaptive rounds then add seeds).

    When no ratio exists (no values), the verdict follows the test alone
    (p_adjusted < alpha and the sign of the change), else inconclusive."""
    if better not in ("lower", "higher"):
        raise ValueError(f"better must be 'lower' or 'higher', not {better!r}")
    if comparison.all_identical:
        bound = stats.differing_bound(comparison.n)
        return NO_CHANGE if bound <= MAX_DIFFERING_SHARE else INCONCLUSIVE
    significant = p_adjusted is not None and p_adjusted < alpha
    worse_when_up = better == "lower"
    if comparison.ratio is None:
        if significant and comparison.direction:
            up = comparison.direction > 0
            return REGRESSION if up == worse_when_up else IMPROVEMENT
        return INCONCLUSIVE
    if comparison.ci is None:
        return INCONCLUSIVE
    low, high = comparison.ci
    up_beyond, down_beyond = low > 1 + threshold, high < 1 - threshold
    if significant and (up_beyond or down_beyond):
        return REGRESSION if up_beyond == worse_when_up else IMPROVEMENT
    if 1 - threshold <= low and high <= 1 + threshold:
        return NO_CHANGE
    return INCONCLUSIVE


class Finding:
    """One comparison of a report: (suite test, profile, metric, candidate
    policy) against a reference -- the run's baseline policy (paired) or
    the same cell of another run (paired where the programs match, else
    unpaired) -- with its statistics, adjusted p-value and verdict. `seeds`
    lists the seeds of a paired comparison in the order of `baseline` and
    `candidate`; `look_alpha` is the alpha its look of the group-sequential
    design may spend, `p_sequential` its p on that design's scale, `why`
    how it was made when that needs saying: the reason a comparison with a
    saved run is unpaired, or whose runs a policy with equal knobs has."""

    __slots__ = ("test", "profile", "metric", "policy", "reference", "baseline", "candidate",
                 "seeds", "comparison", "p_adjusted", "threshold", "verdict", "look_alpha",
                 "p_sequential", "why")

    def __init__(self, test, profile, metric, policy, reference, baseline, candidate, seeds,
                 comparison, look_alpha=ALPHA, why=""):
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}")
        self.test, self.profile, self.metric, self.policy = test, profile, metric, policy
        self.reference = reference
        self.baseline, self.candidate = list(baseline), list(candidate)
        self.seeds = list(seeds) if seeds is not None else None
        self.comparison = comparison
        self.look_alpha = look_alpha      # alpha this look may spend (sequential)
        self.p_sequential = None
        self.why = why                    # unpaired with a saved run: why; equal knobs: whose
        self.p_adjusted = None
        self.threshold = None
        self.verdict = INCONCLUSIVE

    @property
    def design(self) -> str:
        return self.comparison.design

    @property
    def better(self) -> str:
        return METRICS[self.metric].better

    @property
    def unit(self) -> str:
        return METRICS[self.metric].unit

    @property
    def baseline_median(self):
        return statistics.median(self.baseline) if self.baseline else None

    @property
    def candidate_median(self):
        return statistics.median(self.candidate) if self.candidate else None

    @property
    def key(self) -> tuple:
        return (self.test, self.profile, self.metric, self.policy, self.reference)

    def to_dict(self) -> dict:
        return {"test": self.test, "profile": self.profile, "metric": self.metric,
                "policy": self.policy, "reference": self.reference,
                "design": self.design, "seeds": self.seeds,
                "baseline": self.baseline, "candidate": self.candidate,
                "comparison": self.comparison.to_dict(), "look_alpha": self.look_alpha,
                "p_sequential": self.p_sequential, "why": self.why,
                "p_adjusted": self.p_adjusted,
                "threshold": self.threshold, "verdict": self.verdict}

    def __repr__(self):
        return (f"<Finding {self.test}[{self.profile}] {self.policy} {self.metric} vs "
                f"{self.reference}: {self.verdict}>")


# The adaptive rounds judge the same report several times, and most of its
# comparisons have not changed since the last look: each test's result is kept
# by its samples (Comparison is not modified after construction, so sharing
# one is safe). A pytest-xdist worker has judged its own comparison groups'
# rounds already and hands what it computed to the controller (`computed`,
# `preload`), so the controller's judgements only merge.
_COMPUTED = {stats.PAIRED: {}, stats.UNPAIRED: {}}
_KEPT = 1 << 14
_FRESH = {}         # (design, b, c) -> a comparison computed here, not yet taken by `computed`


def _computed(design: str, b: tuple, c: tuple):
    table = _COMPUTED[design]
    hit = table.get((b, c))
    if hit is None:
        hit = table[(b, c)] = (stats.paired if design == stats.PAIRED else stats.unpaired)(b, c)
        _FRESH[design, b, c] = hit
        if len(table) > _KEPT:
            _FRESH.pop((design, *next(iter(table))), None)
            del table[next(iter(table))]
    return hit


def _paired(b: tuple, c: tuple):
    return _computed(stats.PAIRED, b, c)


def _unpaired(b: tuple, c: tuple):
    return _computed(stats.UNPAIRED, b, c)


def computed() -> dict:
    """The comparisons this process computed since the last call, JSON-able:
    {design: [[b, c, values]]}. A pytest-xdist worker sends each comparison
    group's with the group, so none goes twice."""
    out = {design: [] for design in _COMPUTED}
    for (design, b, c), comparison in _FRESH.items():
        out[design].append([list(b), list(c), comparison.values()])
    _FRESH.clear()
    return out


def preload(data) -> None:
    """Take another process's `computed()`: the same samples give the same
    comparison, so a judgement here is the one it would have made."""
    for design, table in _COMPUTED.items():
        for b, c, values in (data or {}).get(design, ()):
            table.setdefault((tuple(b), tuple(c)), stats.Comparison(*values))


def _adaptive(run):
    """(default initial seeds, max_rounds) of the run's adaptive rounds; a
    run that does not record its cells' first look (format 1) is taken to
    have started at the default rounds."""
    opts = run.get("options") or {}
    max_rounds = opts.get("max_rounds")
    return opts.get("rounds") or (sequential.DEFAULT_INITIAL if max_rounds else None), \
        max_rounds


def _initial(cell, default):
    """Seeds the cell's test ran before any adaptive round."""
    return cell.get("rounds") or default or len(cell["seeds"])


def paired_findings(run, alpha=ALPHA) -> list:
    """Every candidate policy against the run's baseline policy, per
    (test, profile) and per shown metric, paired on the seeds both ran; each
    with the alpha its look may spend (`sequential.look_alpha`)."""
    baseline = run.get("baseline")
    default_rounds, max_rounds = _adaptive(run)
    by_group = {}
    for cell in run["cells"]:
        by_group.setdefault((cell["test"], cell["profile"]), {})[cell["policy"]] = cell
    out = []
    for (test, profile), cells in sorted(by_group.items()):
        base = cells.get(baseline)
        if base is None:
            continue
        base_by_seed = {s["seed"]: s["metrics"] for s in base["seeds"]}
        for policy, cell in sorted(cells.items()):
            if policy == baseline:
                continue
            cand_by_seed = {s["seed"]: s["metrics"] for s in cell["seeds"]}
            initial = min(_initial(base, default_rounds), _initial(cell, default_rounds))
            same = cell.get("same_knobs")
            why = (f"knobs equal {same}'s on {profile}: its runs are {same}'s" if same
                   else "")
            for metric in cell.get("metrics", ()):
                seeds = sorted(s for s in set(base_by_seed) & set(cand_by_seed)
                               if metric in base_by_seed[s] and metric in cand_by_seed[s])
                b = [base_by_seed[s][metric] for s in seeds]
                c = [cand_by_seed[s][metric] for s in seeds]
                out.append(Finding(test, profile, metric, policy, baseline, b, c, seeds,
                                   _paired(tuple(b), tuple(c)),
                                   sequential.look_alpha(len(seeds), initial, max_rounds,
                                                         alpha), why=why))
    return out


def run_label(run) -> str:
    """How a report names a saved run: 'run 0003 (v6.1-42-gabc)'."""
    ident = run.get("id") or run.get("name") or "?"
    return f"run {ident} ({run.get('commit', 'unknown')})"


def pairing(then_samples, now_samples) -> tuple:
    """(common seeds, why not paired or "") for one cell in a saved run and
    in this one: paired when they share seeds and every shared seed ran the
    same program on both sides (equal `program_digest`)."""
    then = {s["seed"]: s.get("program_digest") for s in then_samples}
    now = {s["seed"]: s.get("program_digest") for s in now_samples}
    common = sorted(set(then) & set(now))
    if not common:
        return common, "no seeds in common"
    if any(then[s] is None or now[s] is None for s in common):
        return common, "no program digests in the saved run (saved before format 2)"
    differ = [s for s in common if then[s] != now[s]]
    if differ:
        return common, (f"programs differ on {len(differ)} of {len(common)} common seeds "
                        f"(the workload, profile or program builder changed)")
    return common, ""


def unpaired_findings(run, reference, alpha=ALPHA) -> list:
    """The same (test, profile, policy) cell in `reference` and in `run`,
    per metric the run's cell shows: paired on the common seeds where
    their programs match (`pairing`), else unpaired with the reason in
    `Finding.why`. One look each: the saved side cannot grow."""
    label = run_label(reference)
    ref = {(c["test"], c["profile"], c["policy"]): c for c in reference["cells"]}
    out = []
    for cell in sorted(run["cells"], key=lambda c: (c["test"], c["profile"], c["policy"])):
        other = ref.get((cell["test"], cell["profile"], cell["policy"]))
        if other is None:
            continue
        common, why = pairing(other["seeds"], cell["seeds"])
        then_by_seed = {s["seed"]: s["metrics"] for s in other["seeds"]}
        now_by_seed = {s["seed"]: s["metrics"] for s in cell["seeds"]}
        for metric in cell.get("metrics", ()):
            if not why:
                seeds = [s for s in common if metric in then_by_seed[s]
                         and metric in now_by_seed[s]]
                b = [then_by_seed[s][metric] for s in seeds]
                c = [now_by_seed[s][metric] for s in seeds]
                comparison = _paired(tuple(b), tuple(c))
                out.append(Finding(cell["test"], cell["profile"], metric, cell["policy"],
                                   label, b, c, seeds, comparison, alpha))
                continue
            then = [(s["seed"], s["metrics"][metric]) for s in other["seeds"]
                    if metric in s["metrics"]]
            now = [(s["seed"], s["metrics"][metric]) for s in cell["seeds"]
                   if metric in s["metrics"]]
            b, c = [v for _, v in then], [v for _, v in now]
            if now and then == now:
                # same seeds, same values: the deterministic engine says the
                # cell did not change between the runs
                comparison = stats.identical(stats.UNPAIRED, len(b), len(c),
                                             f"identical on all {len(c)} seeds in both runs")
            else:
                comparison = _unpaired(tuple(b), tuple(c))
            out.append(Finding(cell["test"], cell["profile"], metric, cell["policy"], label,
                               b, c, None, comparison, alpha, why=why))
    return out


def judge(findings, thresholds=None, alpha=ALPHA, family=None) -> list:
    """Put every finding's p on the sequential design's scale
    (`sequential.sequential_p` with the alpha its look may spend), adjust
    those with Benjamini-Hochberg across the whole list (`stats.adjust`) --
    or within each family when `family(finding)` names one -- and set each
    verdict; returns the list."""
    thresholds = thresholds or Thresholds()
    for f in findings:
        f.p_sequential = sequential.sequential_p(f.comparison.p, f.look_alpha, alpha)
    families = {}
    for i, f in enumerate(findings):
        families.setdefault(family(f) if family else None, []).append(i)
    adjusted = [None] * len(findings)
    for members in families.values():
        for i, q in zip(members, stats.adjust([findings[i].p_sequential for i in members])):
            adjusted[i] = q
    for finding, q in zip(findings, adjusted):
        finding.p_adjusted = q
        finding.threshold = thresholds(finding.metric)
        finding.verdict = verdict(finding.comparison, q, finding.better, finding.threshold,
                                  alpha)
    return findings


def reference_family(run):
    """`judge`'s family for a run's findings: the reference policies'
    comparisons (--tlbperf-reference) are adjusted as a family of their own,
    so asking for references never changes a candidate's verdict."""
    from pytest_tlbperf.selection import REFERENCE, Roles
    roles = Roles.from_options(run.get("options"))
    return lambda finding: roles.role(finding.policy) == REFERENCE


def compare_runs(run, references=(), thresholds=None, alpha=ALPHA) -> list:
    """All findings of one report: the run's paired policy comparisons,
    then the run against each reference run; the candidates' judged as one
    family, the reference policies' as another."""
    findings = paired_findings(run, alpha)
    for reference in references:
        findings += unpaired_findings(run, reference, alpha)
    return judge(findings, thresholds, alpha, reference_family(run))


def counts(findings) -> dict:
    out = {v: 0 for v in VERDICTS}
    for f in findings:
        out[f.verdict] += 1
    return out
